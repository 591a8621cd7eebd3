"""Argument checks and building blocks shared by the model zoo."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import nn

from .._errors import expected

INPUT_SIZES = (28, 32)
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise expected(name, "a positive int", value)
    return value


def check_rate(value: object, name: str = "dropout") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise expected(name, "a dropout rate in [0, 1)", value)
    return float(value)


def check_input_size(value: object) -> int:
    if value not in INPUT_SIZES or isinstance(value, bool):
        raise expected("input_size", f"one of {INPUT_SIZES} (image side length)", value)
    return int(value)  # type: ignore[arg-type]


def check_common(in_channels: object, num_classes: object, input_size: object) -> None:
    check_positive_int("in_channels", in_channels)
    check_positive_int("num_classes", num_classes)
    check_input_size(input_size)


def resolve_placement(placement: object, choices: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """Turn ``placement`` (one choice, or an iterable of choices) into the set of dropout spots.

    ``choices`` maps each accepted word to the spots it switches on, e.g. for LeNet
    ``{"fc": {"fc_hidden", "last"}, "last": {"last"}, ...}``.
    """
    words = [placement] if isinstance(placement, str) else placement
    if not isinstance(words, Iterable) or isinstance(words, bytes | Mapping):
        raise expected("placement", f"one of {sorted(choices)} or a list of them", placement)
    spots: set[str] = set()
    for word in words:
        if word not in choices:
            raise expected("placement", f"one of {sorted(choices)} or a list of them", placement)
        spots |= choices[word]
    return frozenset(spots)


def activation(name: object) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise expected("activation", f"one of {sorted(_ACTIVATIONS)}", name)
    return _ACTIVATIONS[name]()  # type: ignore[index]


def check_hidden(hidden: object) -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if not isinstance(hidden, Iterable) or isinstance(hidden, str):
        raise expected("hidden", "a sequence of positive ints (hidden layer widths)", hidden)
    sizes = tuple(hidden)
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in sizes):
        raise expected("hidden", "a sequence of positive ints (hidden layer widths)", hidden)
    return sizes


def mlp_trunk(
    in_features: int,
    hidden: tuple[int, ...],
    dropout: float,
    *,
    input_dropout: bool,
    hidden_dropout: bool,
    act: str,
) -> nn.Sequential:
    """``[Dropout] Linear act [Dropout] Linear act [Dropout] ...`` (no output layer).

    Input dropout acts on the features before the first Linear; hidden dropout after every
    hidden activation (so it feeds the next Linear, including the output layer).
    """
    layers: list[nn.Module] = []
    if input_dropout:
        layers.append(nn.Dropout(dropout))
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), activation(act)]
        if hidden_dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    if not layers:
        layers.append(nn.Identity())
    return nn.Sequential(*layers)


# Placements of conv + fully connected networks (LeNet-5, ConvNet, VGG).
CONV_FC_PLACEMENTS = {
    "fc": frozenset({"fc_hidden", "last"}),
    "last": frozenset({"last"}),
    "conv": frozenset({"conv"}),
    "all": frozenset({"conv", "fc_hidden", "last"}),
    "none": frozenset(),
}
