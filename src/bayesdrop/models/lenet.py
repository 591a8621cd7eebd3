"""LeNet-5 and a small VGG-like ConvNet, with dropout rate and placement as parameters."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import CONV_FC_PLACEMENTS, check_common, check_positive_int, check_rate, resolve_placement

__all__ = ["LeNet5", "ConvNet"]


class LeNet5(nn.Module):
    """LeNet-5: conv trunk, then fully connected layers with dropout after them.

    ``conv(5x5, 6) ReLU maxpool [D] conv(5x5, 16) ReLU maxpool [D] flatten``
    ``fc(400 -> 120) ReLU [D] fc(120 -> 84) ReLU [D] fc(84 -> num_classes)``.
    28x28 inputs get 2 pixels of padding in the first convolution, so both input sizes reach
    the same 16x5x5 features and the same 61,706 parameters (1 channel, 10 classes).

    Args:
        in_channels: image channels.
        num_classes: outputs (logits).
        input_size: 28 or 32.
        dropout: the dropout rate p of every dropout layer.
        placement: where the dropout layers [D] go: ``"fc"`` (after both hidden fully
            connected layers, the default), ``"last"`` (only before the last layer), ``"conv"``
            (after each conv block), ``"all"``, ``"none"``, or a list of these.

    Shapes: input ``(B, in_channels, input_size, input_size)``, output ``(B, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
        dropout: float = 0.5,
        placement: str | list[str] = "fc",
    ) -> None:
        super().__init__()
        check_common(in_channels, num_classes, input_size)
        p = check_rate(dropout)
        spots = resolve_placement(placement, CONV_FC_PLACEMENTS)
        conv_drop = [nn.Dropout(p)] if "conv" in spots else []
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0),
            nn.ReLU(),
            nn.MaxPool2d(2),
            *conv_drop,
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            *([nn.Dropout(p)] if "conv" in spots else []),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            *([nn.Dropout(p)] if "fc_hidden" in spots else []),
            nn.Linear(120, 84),
            nn.ReLU(),
            *([nn.Dropout(p)] if "last" in spots else []),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits."""
        return self.classifier(torch.flatten(self.features(x), 1))


class ConvNet(nn.Module):
    """A small ConvNet (two conv blocks of two 3x3 convolutions, one hidden dense layer).

    ``[conv3x3(w) ReLU conv3x3(w) ReLU maxpool [D]] [conv3x3(2w) ReLU conv3x3(2w) ReLU maxpool
    [D]] flatten fc(hidden) ReLU [D] fc(num_classes)``.

    Args:
        in_channels, num_classes, input_size: as :class:`LeNet5`.
        dropout: dropout rate.
        placement: ``"fc"`` (after the hidden dense layer, the default; ``"last"`` is the same
            spot), ``"conv"`` (after each conv block), ``"all"``, ``"none"``, or a list.
        width: channels of the first block (the second has twice as many).
        hidden: units of the hidden dense layer.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
        dropout: float = 0.5,
        placement: str | list[str] = "fc",
        width: int = 32,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        check_common(in_channels, num_classes, input_size)
        check_positive_int("width", width)
        check_positive_int("hidden", hidden)
        p = check_rate(dropout)
        spots = resolve_placement(placement, CONV_FC_PLACEMENTS)

        def block(cin: int, cout: int) -> list[nn.Module]:
            layers: list[nn.Module] = [
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            return layers + ([nn.Dropout(p)] if "conv" in spots else [])

        self.features = nn.Sequential(*block(in_channels, width), *block(width, 2 * width))
        side = input_size // 4
        self.classifier = nn.Sequential(
            nn.Linear(2 * width * side * side, hidden),
            nn.ReLU(),
            *([nn.Dropout(p)] if spots & {"fc_hidden", "last"} else []),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits."""
        return self.classifier(torch.flatten(self.features(x), 1))
