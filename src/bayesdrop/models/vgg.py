"""VGG-style networks with BatchNorm for 28x28 and 32x32 images."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._errors import expected
from ._common import CONV_FC_PLACEMENTS, check_common, check_positive_int, check_rate, resolve_placement

__all__ = ["VGG"]

# Channel multipliers of the base width per conv layer, "M" = max pool (VGG paper configs).
_CONFIGS: dict[int, list[int | str]] = {
    11: [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    13: [1, 1, "M", 2, 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    16: [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"],
}


class VGG(nn.Module):
    """VGG-11/13/16 with BatchNorm (``conv3x3 BN ReLU`` layers, max pools), for small images.

    Features of the VGG configuration scaled by ``width`` (64 = the paper's channels); 28x28
    inputs skip the fifth max pool (their feature map is already 1x1 after four). Then global
    average pooling and the classifier
    ``fc(hidden) ReLU [D] fc(hidden) ReLU [D] fc(num_classes)``.

    Args:
        in_channels, num_classes, input_size: image channels (default 1), outputs (10), side
            (28, the default, or 32).
        dropout: dropout rate.
        placement: ``"fc"`` (after both hidden dense layers, the default), ``"last"`` (before
            the output layer only), ``"conv"`` (after each max pool), ``"all"``, ``"none"``, or
            a list.
        depth: 11, 13 or 16.
        width: channels of the first conv layer (64 in VGG; 16 gives a small, fast network).
        hidden: units of the two hidden dense layers.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
        dropout: float = 0.5,
        placement: str | list[str] = "fc",
        depth: int = 11,
        width: int = 64,
        hidden: int = 512,
    ) -> None:
        super().__init__()
        check_common(in_channels, num_classes, input_size)
        if depth not in _CONFIGS or isinstance(depth, bool):
            raise expected("depth", f"one of {sorted(_CONFIGS)}", depth)
        check_positive_int("width", width)
        check_positive_int("hidden", hidden)
        p = check_rate(dropout)
        spots = resolve_placement(placement, CONV_FC_PLACEMENTS)
        config = list(_CONFIGS[depth])
        if input_size == 28:  # 28 -> 14 -> 7 -> 3 -> 1: a fifth pool would leave nothing
            config = config[:-1]
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                if "conv" in spots:
                    layers.append(nn.Dropout(p))
            else:
                out = width * int(item)
                layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
                channels = out
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(),
            *([nn.Dropout(p)] if "fc_hidden" in spots else []),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            *([nn.Dropout(p)] if "last" in spots else []),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits."""
        return self.classifier(torch.flatten(self.features(x), 1))
