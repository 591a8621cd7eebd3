"""The model zoo: LeNet-5, Gal et al.'s active-learning CNN, MLPs, a small ConvNet, ResNet-18,
DenseNet and VGG, each with the dropout rate (and placement) as parameters, all
``torch.fx``-traceable."""

from __future__ import annotations

from .densenet import DenseNet
from .gal import GalCNN
from .lenet import ConvNet, LeNet5
from .mlp import MLP, RegressionMLP, Standardized
from .registry import create_model, list_models
from .resnet import BasicBlock, ResNet18
from .vgg import VGG

__all__ = [
    "BasicBlock",
    "ConvNet",
    "DenseNet",
    "GalCNN",
    "LeNet5",
    "MLP",
    "RegressionMLP",
    "ResNet18",
    "Standardized",
    "VGG",
    "create_model",
    "list_models",
]
