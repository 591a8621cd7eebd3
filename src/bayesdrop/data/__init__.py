"""Data sets for uncertainty experiments: MNIST, Fashion-MNIST, digits, CO2, UCI; transforms.

Everything returns plain tensors (images ``(N, 1, 28, 28)`` float32 in [0, 1], labels int64).
scikit-learn is imported only when the digits are loaded.
"""

from __future__ import annotations

from typing import Any

from ._idx import parse_idx, read_idx
from ._locate import cache_dir, shared_data_root
from .mnist import (
    FASHION_MNIST_CLASSES,
    OODPair,
    load_fashion_mnist,
    load_mnist,
    load_mnist_test_split,
    load_ood_pair,
)
from .registry import DatasetSplits, list_datasets, load_dataset
from .small import CO2Data, load_co2, load_digits
from .splits import make_loader, subsample, train_val_split
from .transforms import add_noise, morph, noise_series, rotate, rotation_series

__all__ = [
    "CO2Data",
    "DatasetSplits",
    "FASHION_MNIST_CLASSES",
    "OODPair",
    "UCI_DATASETS",
    "add_noise",
    "cache_dir",
    "shared_data_root",
    "list_datasets",
    "load_co2",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_test_split",
    "load_ood_pair",
    "load_uci",
    "make_loader",
    "morph",
    "noise_series",
    "parse_idx",
    "read_idx",
    "rotate",
    "rotation_series",
    "subsample",
    "train_val_split",
]

_FROM_UCI = ("load_uci", "UCI_DATASETS")


def __getattr__(name: str) -> Any:
    """Lazily re-export ``load_uci`` and ``UCI_DATASETS`` from :mod:`bayesdrop.data.uci`."""
    if name in _FROM_UCI:
        from . import uci

        return getattr(uci, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
