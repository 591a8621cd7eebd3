"""Multilayer perceptrons: a classifier and a regression net with an optional variance head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._errors import expected
from ._common import (
    check_common,
    check_hidden,
    check_positive_int,
    check_rate,
    mlp_trunk,
    resolve_placement,
)

__all__ = ["MLP", "RegressionMLP", "Standardized"]

_MLP_CHOICES = {
    "input": frozenset({"input"}),
    "hidden": frozenset({"hidden"}),
    "both": frozenset({"input", "hidden"}),
    "all": frozenset({"input", "hidden"}),
    "none": frozenset(),
}


class MLP(nn.Module):
    """A fully connected classifier; images are flattened.

    ``flatten [D_in] fc(h1) act [D] fc(h2) act [D] ... fc(num_classes)``.

    Args:
        in_channels, input_size: image shape, used for the number of inputs when
            ``in_features`` is None (``in_channels * input_size**2``).
        num_classes: outputs (logits).
        dropout: dropout rate.
        placement: ``"hidden"`` (after every hidden layer, the default), ``"input"`` (on the
            inputs only), ``"both"`` (alias ``"all"``), ``"none"``, or a list.
        hidden: hidden layer widths.
        in_features: number of inputs for vector data (overrides the image shape).
        activation: ``"relu"``, ``"tanh"`` or ``"gelu"``.

    Shapes: input ``(B, *)`` with ``in_features`` elements per row; output ``(B, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
        dropout: float = 0.5,
        placement: str | list[str] = "hidden",
        hidden: Sequence[int] = (512, 512),
        in_features: int | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        check_common(in_channels, num_classes, input_size)
        if in_features is None:
            in_features = in_channels * input_size * input_size
        check_positive_int("in_features", in_features)
        sizes = check_hidden(hidden)
        p = check_rate(dropout)
        spots = resolve_placement(placement, _MLP_CHOICES)
        self.trunk = mlp_trunk(
            in_features,
            sizes,
            p,
            input_dropout="input" in spots,
            hidden_dropout="hidden" in spots,
            act=activation,
        )
        self.head = nn.Linear(sizes[-1] if sizes else in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, *)`` -> ``(B, num_classes)`` logits."""
        return self.head(self.trunk(torch.flatten(x, 1)))


class RegressionMLP(nn.Module):
    """A regression MLP (as in Gal & Ghahramani's UCI and CO2 experiments), optionally
    heteroscedastic.

    ``[D_in] fc(h1) act [D] ... fc(out_features)``; with ``heteroscedastic=True`` a second
    linear head gives the noise variance ``softplus(raw) + min_variance``.

    The UCI net of the paper is ``RegressionMLP(in_features=13, hidden=(50,), dropout=p,
    placement="both")``; the CO2 net is ``RegressionMLP(1, hidden=(1024,) * 4, dropout=0.1,
    placement="hidden")``.

    Args:
        in_features: inputs per example.
        hidden: hidden layer widths.
        out_features: outputs per example.
        dropout: dropout rate.
        placement: ``"both"`` (inputs and hidden layers, the default, as in the UCI
            experiments), ``"input"``, ``"hidden"``, ``"none"``, or a list.
        activation: ``"relu"``, ``"tanh"`` or ``"gelu"``.
        heteroscedastic: also predict a variance.
        min_variance: floor added to the predicted variance (> 0 keeps the likelihood finite).

    Shapes: input ``(B, in_features)``; output ``(B, out_features)`` mean, or a tuple
    ``(mean, var)`` of two ``(B, out_features)`` tensors when heteroscedastic.
    """

    def __init__(
        self,
        in_features: int = 1,
        hidden: Sequence[int] = (50,),
        out_features: int = 1,
        dropout: float = 0.05,
        placement: str | list[str] = "both",
        activation: str = "relu",
        heteroscedastic: bool = False,
        min_variance: float = 1e-6,
    ) -> None:
        super().__init__()
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        sizes = check_hidden(hidden)
        p = check_rate(dropout)
        spots = resolve_placement(placement, _MLP_CHOICES)
        if not isinstance(heteroscedastic, bool):
            raise expected("heteroscedastic", "a bool", heteroscedastic)
        if isinstance(min_variance, bool) or not isinstance(min_variance, int | float):
            raise expected("min_variance", "a number >= 0", min_variance)
        if not min_variance >= 0:
            raise expected("min_variance", "a number >= 0", min_variance)
        self.heteroscedastic = heteroscedastic
        self.min_variance = float(min_variance)
        self.trunk = mlp_trunk(
            in_features,
            sizes,
            p,
            input_dropout="input" in spots,
            hidden_dropout="hidden" in spots,
            act=activation,
        )
        width = sizes[-1] if sizes else in_features
        self.head = nn.Linear(width, out_features)
        self.var_head = nn.Linear(width, out_features) if heteroscedastic else None

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """``(B, in_features)`` -> mean ``(B, out_features)``, or ``(mean, var)``."""
        h = self.trunk(torch.flatten(x, 1))
        mean = self.head(h)
        if self.var_head is None:
            return mean
        return mean, F.softplus(self.var_head(h)) + self.min_variance


class Standardized(nn.Module):
    """A regression net that sees standardised inputs and answers in the data's units.

    ``forward(x) = net((x - x_shift) / x_scale) * y_scale + y_shift``; a ``(mean, var)`` head
    becomes ``(mean * y_scale + y_shift, var * y_scale^2)``. Trained with the squared error in
    the data's units, a model precision ``tau`` (and the prior weight decay derived from it)
    is then in those units too, as in Gal & Ghahramani's UCI experiments.

    Args:
        net: the regression network, ``(B, Q)`` -> ``(B, out)`` or a ``(mean, var)`` tuple.
        x: ``(N, Q)`` training inputs (their mean and std are stored as buffers; constant
            columns get scale 1).
        y: ``(N, out)`` or ``(N,)`` training targets.
    """

    def __init__(self, net: nn.Module, x: Tensor, y: Tensor) -> None:
        super().__init__()
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] < 2:
            raise expected("x", "training inputs (N, Q) with N >= 2", getattr(x, "shape", type(x).__name__))
        y2 = y.reshape(len(y), -1) if isinstance(y, Tensor) else None
        if y2 is None or y2.shape[0] != x.shape[0]:
            raise expected("y", f"training targets with {x.shape[0]} rows", getattr(y, "shape", type(y).__name__))
        self.net = net
        x_scale, y_scale = x.std(0), y2.std(0)
        self.register_buffer("x_shift", x.mean(0))
        self.register_buffer("x_scale", torch.where(x_scale > 0, x_scale, torch.ones_like(x_scale)))
        self.register_buffer("y_shift", y2.mean(0))
        self.register_buffer("y_scale", torch.where(y_scale > 0, y_scale, torch.ones_like(y_scale)))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """``(B, Q)`` -> ``(B, out)`` mean in the data's units, or ``(mean, var)``."""
        out = self.net((x - self.x_shift) / self.x_scale)
        if isinstance(out, tuple):
            mean, var = out
            return mean * self.y_scale + self.y_shift, var * self.y_scale**2
        return out * self.y_scale + self.y_shift
