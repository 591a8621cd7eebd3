"""The CNN of Gal, Islam & Ghahramani (2017), "Deep Bayesian Active Learning with Image Data"."""

from __future__ import annotations

from torch import Tensor, nn

from ._common import check_common, check_positive_int, check_rate

__all__ = ["GalCNN"]


class GalCNN(nn.Module):
    """``conv(4x4, 32) ReLU conv(4x4, 32) ReLU maxpool(2) dropout(0.25) flatten
    dense(128) ReLU dropout(0.5) dense(num_classes)``, as in the paper's Keras code (valid
    convolutions: 28 px -> 25 -> 22 -> 11, so 32 x 11 x 11 = 3,872 features).

    Args:
        in_channels: image channels.
        num_classes: outputs (logits).
        input_size: 28 or 32.
        dropout: the rate before the last layer (0.5 in the paper).
        conv_dropout: the rate after the pooling (0.25 in the paper).
        filters: convolution channels (32).
        hidden: dense units (128).

    Shapes: input ``(B, in_channels, input_size, input_size)``, output ``(B, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
        dropout: float = 0.5,
        conv_dropout: float = 0.25,
        filters: int = 32,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        check_common(in_channels, num_classes, input_size)
        check_positive_int("filters", filters)
        check_positive_int("hidden", hidden)
        side = (input_size - 6) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, filters, 4),
            nn.ReLU(),
            nn.Conv2d(filters, filters, 4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(check_rate(conv_dropout, "conv_dropout")),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(filters * side * side, hidden),
            nn.ReLU(),
            nn.Dropout(check_rate(dropout)),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
