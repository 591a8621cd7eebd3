"""A small DenseNet-BC for 28x28 and 32x32 images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._errors import expected
from ._common import check_common, check_positive_int, check_rate, resolve_placement

__all__ = ["DenseNet"]

_DENSE_CHOICES = {
    "last": frozenset({"last"}),
    "blocks": frozenset({"blocks"}),
    "all": frozenset({"blocks", "last"}),
    "none": frozenset(),
}


class _DenseLayer(nn.Module):
    """``BN ReLU conv1x1(4k) BN ReLU conv3x3(k) [D]``, output concatenated to the input."""

    def __init__(self, in_channels: int, growth: int, dropout: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth),
            nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
            dropout,
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    """A small DenseNet-BC: bottleneck dense layers, transitions with compression 0.5.

    Stem ``conv3x3(2k)``; dense blocks of ``block_config`` layers of growth ``k``, separated
    by transitions ``BN ReLU conv1x1 avgpool2``; then ``BN ReLU`` global average pooling
    ``[D] fc(num_classes)``.

    Args:
        in_channels, num_classes, input_size: image channels (default 1), outputs (10), side
            (28, the default, or 32).
        dropout: dropout rate.
        placement: ``"last"`` (before the classifier, the default), ``"blocks"`` (after every
            dense layer's 3x3 convolution, as in the DenseNet paper), ``"all"``, ``"none"``,
            or a list.
        growth: growth rate k.
        block_config: number of dense layers per block.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
        dropout: float = 0.2,
        placement: str | list[str] = "last",
        growth: int = 12,
        block_config: Sequence[int] = (6, 6, 6),
    ) -> None:
        super().__init__()
        check_common(in_channels, num_classes, input_size)
        check_positive_int("growth", growth)
        blocks = tuple(block_config) if not isinstance(block_config, str | int) else ()
        if not blocks or not all(isinstance(b, int) and b > 0 for b in blocks):
            raise expected("block_config", "a non-empty sequence of positive ints", block_config)
        p = check_rate(dropout)
        spots = resolve_placement(placement, _DENSE_CHOICES)
        channels = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
        for i, n_layers in enumerate(blocks):
            for _ in range(n_layers):
                drop = nn.Dropout(p) if "blocks" in spots else nn.Identity()
                layers.append(_DenseLayer(channels, growth, drop))
                channels += growth
            if i < len(blocks) - 1:
                out = channels // 2
                layers += [
                    nn.BatchNorm2d(channels),
                    nn.ReLU(),
                    nn.Conv2d(channels, out, 1, bias=False),
                    nn.AvgPool2d(2),
                ]
                channels = out
        layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1)]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(p) if "last" in spots else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits."""
        return self.fc(self.dropout(torch.flatten(self.features(x), 1)))
