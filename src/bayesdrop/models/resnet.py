"""ResNet-18 for small images (CIFAR-style stem), with dropout before the classifier."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import check_common, check_positive_int, check_rate, resolve_placement

__all__ = ["ResNet18", "BasicBlock"]

_BLOCK_CHOICES = {
    "last": frozenset({"last"}),
    "blocks": frozenset({"blocks"}),
    "all": frozenset({"blocks", "last"}),
    "none": frozenset(),
}


class BasicBlock(nn.Module):
    """``conv3x3 BN ReLU conv3x3 BN (+ shortcut) ReLU``; the shortcut is a 1x1 conv + BN when
    the shape changes, else the identity."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (BasicBlocks [2, 2, 2, 2]) for 28x28 and 32x32 images.

    Stem ``conv3x3(width) BN ReLU`` (no max pool, as usual for small images), four stages of
    widths ``width * (1, 2, 4, 8)`` with strides ``(1, 2, 2, 2)``, global average pooling,
    ``[D] fc(num_classes)``. With ``width=64``, 3 channels and 10 classes this is the usual
    11.2M-parameter CIFAR ResNet-18.

    Args:
        in_channels, num_classes, input_size: image channels (default 1), outputs (10), side
            (28, the default, or 32).
        dropout: dropout rate.
        placement: ``"last"`` (before the classifier, the default), ``"blocks"`` (after each
            stage), ``"all"``, ``"none"``, or a list.
        width: channels of the first stage (64 in the standard network).

    Shapes: input ``(B, in_channels, input_size, input_size)``, output ``(B, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
        dropout: float = 0.5,
        placement: str | list[str] = "last",
        width: int = 64,
    ) -> None:
        super().__init__()
        check_common(in_channels, num_classes, input_size)
        check_positive_int("width", width)
        p = check_rate(dropout)
        spots = resolve_placement(placement, _BLOCK_CHOICES)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        stages: list[nn.Module] = []
        in_planes = width
        for i, stride in enumerate((1, 2, 2, 2)):
            planes = width * 2**i
            stages += [BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)]
            if "blocks" in spots:
                stages.append(nn.Dropout(p))
            in_planes = planes
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(p) if "last" in spots else nn.Identity()
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits."""
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(x, 1)))
