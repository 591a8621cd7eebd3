"""Regression plots: predictive mean with aleatoric and total bands; interval calibration."""

from __future__ import annotations

import os
from typing import Any

import torch

from .._errors import BayesdropError, expected
from ..metrics._validation import as_float
from ..prediction import Prediction
from ._common import finish, new_figure

__all__ = ["regression_bands", "regression_calibration"]


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


def _regression_mean(pred: Any) -> torch.Tensor:
    """``(N,)`` predictive mean of a regression Prediction with one output per point."""
    if not isinstance(pred, Prediction) or pred.task != "regression":
        got = pred.task if isinstance(pred, Prediction) else type(pred).__name__
        raise expected("pred", "a regression bayesdrop.Prediction", got)
    return _column(pred.mean, "pred.mean")


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
    mean = _regression_mean(pred)
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


def regression_calibration(
    pred: Prediction,
    targets: Any,
    *,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Calibration of a regression prediction of any input dimension, in two panels.

    Left: the share of targets inside the central interval of N(mean, total variance) against
    the interval's nominal level (5% to 95%; on the diagonal when calibrated, below it when
    over-confident) — the curve behind ``picp_<level>`` of ``metrics.evaluate``. Right: the
    absolute error of each test point against its predictive standard deviation (aleatoric +
    epistemic), with the line ``|error| = sd``: uncertainty that tracks the error rises with it.

    Args:
        pred: a regression :class:`bayesdrop.Prediction` of N points with one output.
        targets: ``(N,)`` or ``(N, 1)`` test targets.
        title: figure title.
        path: save the figure there (.png, .svg or .pdf), atomically.

    Returns:
        The matplotlib Figure.
    """
    from ..metrics import picp

    mean = _regression_mean(pred)
    n = mean.numel()
    y = _column(targets, "targets", n)
    total = _column(pred.total, "pred.total", n)
    if not bool((total > 0).all()):
        raise BayesdropError(
            "Argument `pred` needs a positive predictive variance for every point (sample with "
            "samples >= 2, or give the model a precision tau / a variance head)."
        )
    levels = [i / 20 for i in range(1, 20)]
    observed = [picp(mean, total, y, level) for level in levels]
    error = (y - mean).abs().numpy()
    sd = total.sqrt().numpy()

    fig = new_figure((9.6, 3.8))
    left, right = fig.subplots(1, 2)
    left.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="calibrated")
    left.plot(levels, observed, marker="o", ms=3.5, color="#0B3C5D", lw=1.6, label="observed")
    left.fill_between(levels, levels, observed, color="#F4A261", alpha=0.35, lw=0)
    left.set(xlabel="nominal level of the central interval", ylabel="share of targets inside", xlim=(0, 1), ylim=(0, 1))
    left.set_title("Interval calibration", fontsize=10)
    left.legend(fontsize=8, frameon=False, loc="upper left")
    left.grid(alpha=0.3)
    right.scatter(sd, error, s=7, alpha=0.5, color="#5B8DB8", lw=0)
    top = float(max(sd.max(), error.max())) * 1.05
    right.plot([0, top], [0, top], color="0.5", lw=1, ls="--", label="|error| = sd")
    right.set(xlabel="predictive standard deviation", ylabel="|target - mean|", xlim=(0, top), ylim=(0, top))
    right.set_title("Error against uncertainty", fontsize=10)
    right.legend(fontsize=8, frameon=False, loc="upper left")
    right.grid(alpha=0.3)
    fig.suptitle(title or f"Regression calibration (N = {n}, T = {pred.n_samples})", fontsize=11)
    return finish(fig, path)
