"""Models by name: ``create_model`` and ``list_models`` (for configs and the CLI)."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .._errors import BayesdropError, expected
from .densenet import DenseNet
from .gal import GalCNN
from .lenet import ConvNet, LeNet5
from .mlp import MLP, RegressionMLP
from .resnet import ResNet18
from .vgg import VGG

__all__ = ["create_model", "list_models"]

_MODELS: dict[str, tuple[type[nn.Module], str]] = {
    "lenet5": (LeNet5, "LeNet-5: 2 conv + 3 fully connected layers, dropout after the fully "
               "connected layers (61.7k params)"),
    "gal_cnn": (GalCNN, "the CNN of Gal et al. 2017 (active learning): 2 conv 4x4 (32), max pool, "
                "dropout 0.25, dense 128, dropout 0.5"),
    "convnet": (ConvNet, "small ConvNet: 2 blocks of 2 conv3x3 + max pool, dense 128, "
                "dropout before the output"),
    "mlp": (MLP, "MLP classifier on flattened inputs, dropout on inputs and/or hidden layers"),
    "regression_mlp": (RegressionMLP, "regression MLP (UCI: 50 hidden units, dropout on "
                       "inputs and hidden layer), optional heteroscedastic (mean, var) head"),
    "resnet18": (ResNet18, "ResNet-18 with BasicBlocks and BatchNorm, CIFAR-style stem, "
                 "dropout before the classifier (11.2M params at width 64)"),
    "densenet": (DenseNet, "small DenseNet-BC (growth 12, blocks 6-6-6), dropout before the "
                 "classifier or in every dense layer"),
    "vgg": (VGG, "VGG-11/13/16 with BatchNorm, dropout after the hidden dense layers"),
}  # fmt: skip


def list_models() -> dict[str, str]:
    """Every model name with a one-line description."""
    return {name: description for name, (_cls, description) in _MODELS.items()}


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by name.

    Args:
        name: one of :func:`list_models` (``-`` and ``_`` are interchangeable).
        **kwargs: the model's constructor arguments, e.g. ``in_channels``, ``num_classes``,
            ``input_size``, ``dropout``, ``placement``.

    Raises:
        BayesdropError: unknown name (lists the choices), unknown or invalid arguments.
    """
    key = name.replace("-", "_").lower() if isinstance(name, str) else name
    if key not in _MODELS:
        raise expected("name", f"one of {sorted(_MODELS)}", name)
    cls = _MODELS[key][0]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise BayesdropError(f"Model {key!r} got unknown argument(s) {unknown}; it accepts {accepted}.")
    return cls(**kwargs)
