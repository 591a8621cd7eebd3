"""Regression plot: predictive mean with aleatoric and total (aleatoric + epistemic) bands."""

from __future__ import annotations

import os
from typing import Any

import torch

from .._errors import BayesdropError, expected
from ..metrics._validation import as_float
from ..prediction import Prediction
from ._common import finish, new_figure

__all__ = ["regression_bands"]


def _column(x: Any, name: str, n: int | None = None) -> torch.Tensor:
    t = as_float(x, name, min_ndim=1)
    if t.dim() > 1:
        if t[0].numel() != 1:
            raise BayesdropError(
                f"Expected argument `{name}` to hold one value per point ((N,) or (N, 1)), but "
                f"got shape {tuple(t.shape)}."
            )
        t = t.reshape(-1)
    if n is not None and t.numel() != n:
        raise BayesdropError(f"Expected argument `{name}` to have length {n}, but got length {t.numel()}.")
    return t


def regression_bands(
    x: Any,
    pred: Prediction,
    *,
    targets: Any = None,
    train_x: Any = None,
    train_y: Any = None,
    k: float = 2.0,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Predictive mean of a 1-D regression with two bands of ``k`` standard deviations:
    aleatoric (inner, ``mean +- k sqrt(aleatoric)``) and total (outer, ``mean +- k
    sqrt(aleatoric + epistemic)``); the space between them is the epistemic part. When the
    prediction has no aleatoric part (no tau, no variance head), the one band is epistemic.

    Args:
        x: ``(N,)`` or ``(N, 1)`` input coordinate of each test point (the x axis).
        pred: a regression :class:`bayesdrop.Prediction` of those N points with one output.
        targets: ``(N,)`` test targets to scatter, or None.
        train_x: training inputs to scatter, or None.
        train_y: training targets, with ``train_x``.
        k: band half-width in standard deviations.
        title: figure title.
        path: save the figure there (.png, .svg or .pdf), atomically.

    Returns:
        The matplotlib Figure.
    """
    if not isinstance(pred, Prediction) or pred.task != "regression":
        got = pred.task if isinstance(pred, Prediction) else type(pred).__name__
        raise expected("pred", "a regression bayesdrop.Prediction", got)
    mean = _column(pred.mean, "pred.mean")
    n = mean.numel()
    xs = _column(x, "x", n)
    ale = _column(pred.aleatoric, "pred.aleatoric", n).clamp_min(0)
    epi = _column(pred.epistemic, "pred.epistemic", n).clamp_min(0)
    if not isinstance(k, int | float) or isinstance(k, bool) or k <= 0:
        raise expected("k", "a positive number", k)
    order = xs.argsort()
    xs, mean, ale, epi = xs[order].numpy(), mean[order], ale[order], epi[order]
    total_sd, ale_sd = (ale + epi).sqrt(), ale.sqrt()
    has_aleatoric = bool((ale > 0).any())

    fig = new_figure((6.4, 3.8))
    ax = fig.subplots()
    outer = "total (aleatoric + epistemic)" if has_aleatoric else "epistemic"
    ax.fill_between(
        xs,
        (mean - k * total_sd).numpy(),
        (mean + k * total_sd).numpy(),
        color="#F4A261",
        alpha=0.45,
        lw=0,
        label=f"{outer} ±{k:g}σ",
    )
    if has_aleatoric:
        ax.fill_between(
            xs,
            (mean - k * ale_sd).numpy(),
            (mean + k * ale_sd).numpy(),
            color="#5B8DB8",
            alpha=0.6,
            lw=0,
            label=f"aleatoric ±{k:g}σ",
        )
    if train_x is not None:
        if train_y is None:
            raise BayesdropError("Argument `train_x` needs `train_y`: pass both to scatter them.")
        tx = _column(train_x, "train_x")
        ty = _column(train_y, "train_y", tx.numel())
        ax.scatter(tx.numpy(), ty.numpy(), s=6, color="0.2", alpha=0.6, label="training data", zorder=3)
    if targets is not None:
        ty = _column(targets, "targets", n)[order]
        ax.scatter(xs, ty.numpy(), s=6, color="#C44E52", alpha=0.6, label="test targets", zorder=3)
    ax.plot(xs, mean.numpy(), color="#0B3C5D", lw=1.6, label="predictive mean", zorder=4)
    ax.set(xlabel="x", ylabel="y")
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"Predictive mean and uncertainty (T = {pred.n_samples})", fontsize=11)
    return finish(fig, path)
