"""Layers that bring their own stochasticity."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._errors import BayesdropError, expected

__all__ = ["ConcreteDropout", "concrete_regularization"]


class ConcreteDropout(nn.Module):
    """Dropout with a learned rate (Gal, Hron & Kendall, 2017), applied to a layer's input.

    In training mode the Bernoulli mask is relaxed to a Concrete distribution so that the rate
    gets gradients; add :func:`concrete_regularization` of the model to the loss. In eval mode
    it is a plain ``F.dropout`` at the learned rate, which ``bayesdrop.wrap`` samples.

    >>> layer = ConcreteDropout(nn.Linear(4, 2), init_p=0.2)
    >>> layer(torch.ones(3, 4)).shape
    torch.Size([3, 2])
    >>> round(layer.p.item(), 4)
    0.2

    Args:
        layer: module applied after the dropout (its weights enter the regulariser), or None.
        init_p: initial dropout rate, in (0, 1).
        temperature: temperature of the Concrete relaxation.
        weight_regularizer: ``l^2 / (tau N)`` in the paper's notation.
        dropout_regularizer: ``2 / (tau N)``.
    """

    def __init__(
        self,
        layer: nn.Module | None = None,
        init_p: float = 0.1,
        temperature: float = 0.1,
        weight_regularizer: float = 1e-6,
        dropout_regularizer: float = 1e-5,
    ) -> None:
        super().__init__()
        if not 0.0 < init_p < 1.0:
            raise expected("init_p", "in the open interval (0, 1)", init_p)
        if temperature <= 0:
            raise expected("temperature", "positive", temperature)
        self.layer = layer
        self.temperature = temperature
        self.weight_regularizer = weight_regularizer
        self.dropout_regularizer = dropout_regularizer
        self.p_logit = nn.Parameter(torch.tensor(math.log(init_p) - math.log1p(-init_p)))
        self.input_features: int | None = None

    @property
    def p(self) -> Tensor:
        """The current dropout rate (a 0-d tensor with gradient)."""
        return torch.sigmoid(self.p_logit)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, F, ...)``; returns ``layer(dropout(x))``."""
        self.input_features = int(x.shape[1]) if x.dim() > 1 else int(x.shape[0])
        if self.training:
            eps = 1e-7
            p = self.p
            u = torch.rand_like(x)
            drop = torch.sigmoid(
                (torch.log(p + eps) - torch.log1p(-p + eps) + torch.log(u + eps) - torch.log1p(-u + eps))
                / self.temperature
            )
            x = x * (1 - drop) / (1 - p)
        else:
            x = F.dropout(x, float(self.p.detach()), training=False)
        return x if self.layer is None else self.layer(x)

    def regularization(self) -> Tensor:
        """Weight term ``wr * ||W||^2 / (1 - p)`` plus entropy term ``dr * F * (p log p + (1-p) log(1-p))``."""
        if self.input_features is None:
            raise BayesdropError("ConcreteDropout.regularization() needs one forward pass first.")
        p = self.p
        squares = sum((w**2).sum() for w in self.layer.parameters()) if self.layer is not None else 0.0
        weight_term = self.weight_regularizer * squares / (1 - p)
        entropy_term = p * torch.log(p) + (1 - p) * torch.log1p(-p)
        return weight_term + self.dropout_regularizer * self.input_features * entropy_term


def concrete_regularization(model: nn.Module) -> Tensor:
    """Sum of the regularisers of every ConcreteDropout layer in ``model`` (add it to the loss)."""
    terms = [m.regularization() for m in model.modules() if isinstance(m, ConcreteDropout)]
    if not terms:
        raise BayesdropError(
            f"Expected argument `model` to contain ConcreteDropout layers, but {type(model).__name__} has none."
        )
    return torch.stack([torch.as_tensor(t) for t in terms]).sum()
