"""Input checks shared by every metric: one place, one message template.

Every public metric converts and checks its tensor arguments here, then computes in float64.
Messages follow ``bayesdrop._errors.expected``: the argument, what was expected, what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._errors import BayesdropError, expected

__all__: list[str] = []


def _describe(x: Tensor) -> str:
    return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"


def as_tensor(x: Any, name: str) -> Tensor:
    """Tensor, NumPy array or nested list -> tensor (no copy for tensors)."""
    if isinstance(x, Tensor):
        return x.detach()
    if isinstance(x, np.ndarray | list | tuple | float | int | np.generic):
        try:
            return torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise expected(name, "a tensor or an array of numbers", type(x).__name__) from err
    raise expected(name, "a torch.Tensor or a NumPy array", type(x).__name__)


def as_float(x: Any, name: str, *, ndim: int | None = None, min_ndim: int | None = None) -> Tensor:
    """Convert to a non-empty, finite float64 tensor with the given number of dimensions."""
    t = as_tensor(x, name)
    if t.is_complex():
        raise expected(name, "a real-valued tensor", _describe(t))
    if ndim is not None and t.dim() != ndim:
        raise BayesdropError(f"Expected argument `{name}` to have {ndim} dimension(s), but got shape {tuple(t.shape)}.")
    if min_ndim is not None and t.dim() < min_ndim:
        raise BayesdropError(
            f"Expected argument `{name}` to have at least {min_ndim} dimension(s), but got shape {tuple(t.shape)}."
        )
    if t.numel() == 0:
        raise expected(name, "a non-empty tensor", f"an empty tensor of shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    check_finite(t, name)
    return t


def check_finite(t: Tensor, name: str) -> None:
    """Raise when ``t`` holds NaN or infinite values, saying how many and where the first is."""
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(bad.sum()) - n_nan
        first = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise BayesdropError(
            f"Expected argument `{name}` to be finite, but got {n_nan} NaN and {n_inf} infinite "
            f"value(s) (first at index {first})."
        )


def _prob_atol(dtype: torch.dtype) -> float:
    return 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4


def check_probs(probs: Any, name: str = "probs") -> Tensor:
    """``(N, C)`` probabilities, rows summing to 1 within a dtype-aware tolerance -> float64."""
    raw = as_tensor(probs, name)
    atol = _prob_atol(raw.dtype)
    p = as_float(raw, name, ndim=2)
    if p.shape[1] < 2:
        raise expected(name, "an (N, C) tensor with C >= 2 classes", _describe(p))
    lo, hi = float(p.min()), float(p.max())
    if lo < -atol or hi > 1 + atol:
        raise BayesdropError(
            f"Expected argument `{name}` to hold probabilities in [0, 1], but got values in "
            f"[{lo:.4g}, {hi:.4g}]. Values outside [0, 1] suggest logits: pass "
            "`logits.softmax(-1)` (or `Prediction.mean`)."
        )
    dev = float((p.sum(1) - 1).abs().max())
    if dev > atol:
        row = int((p.sum(1) - 1).abs().argmax())
        raise BayesdropError(
            f"Expected argument `{name}` to have rows summing to 1 (tolerance {atol:g}), but row "
            f"{row} sums to {float(p[row].sum()):.6g}. Unnormalised scores or logits? Pass "
            "`scores.softmax(-1)`."
        )
    return p.clamp(0, 1)


def check_labels(target: Any, name: str, n: int, n_classes: int | None = None) -> Tensor:
    """``(N,)`` integer class labels in ``[0, n_classes)`` -> int64."""
    t = as_tensor(target, name)
    if t.is_floating_point():
        if bool((t != t.round()).any()) or not bool(torch.isfinite(t).all()):
            raise expected(name, "integer class labels", _describe(t) + " with non-integer values")
        t = t.to(torch.int64)
    elif t.dtype == torch.bool:
        t = t.to(torch.int64)
    if t.dim() != 1:
        raise BayesdropError(
            f"Expected argument `{name}` to be a (N,) tensor of labels, but got shape {tuple(t.shape)}."
        )
    check_length(t, name, n)
    t = t.to(torch.int64)
    if n_classes is not None:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n_classes:
            raise BayesdropError(
                f"Expected argument `{name}` to hold labels in [0, {n_classes - 1}], but got labels in [{lo}, {hi}]."
            )
    return t


def check_binary(x: Any, name: str, n: int) -> Tensor:
    """``(N,)`` 0/1 or boolean values -> bool."""
    t = as_tensor(x, name)
    if t.dim() != 1:
        raise BayesdropError(
            f"Expected argument `{name}` to be a (N,) tensor of 0/1 values, but got shape {tuple(t.shape)}."
        )
    check_length(t, name, n)
    if t.dtype != torch.bool:
        if not bool(((t == 0) | (t == 1)).all()):
            raise expected(name, "a tensor of 0/1 (or boolean) values", _describe(t))
        t = t != 0
    return t


def check_length(t: Tensor, name: str, n: int) -> None:
    """Raise when the first dimension of ``t`` differs from ``n``."""
    if t.numel() == 0 or t.shape[0] == 0:
        raise expected(name, "a non-empty tensor", f"an empty tensor of shape {tuple(t.shape)}")
    if t.shape[0] != n:
        raise BayesdropError(
            f"Expected argument `{name}` to have length {n} (the batch size of the first "
            f"argument), but got length {t.shape[0]}."
        )


def check_same_shape(t: Tensor, name: str, shape: torch.Size, other: str) -> Tensor:
    """Allow ``(N,)`` vs ``(N, 1)``; otherwise the shapes must match exactly."""
    if t.shape == shape:
        return t
    if (
        t.numel() == int(np.prod(shape))
        and t.dim() >= 1
        and len(shape) >= 1
        and (t.shape[0] == shape[0])
        and (t.dim() == 1 or len(shape) == 1)
    ):
        return t.reshape(shape)
    raise BayesdropError(
        f"Expected argument `{name}` to have the shape of `{other}` {tuple(shape)}, but got shape {tuple(t.shape)}."
    )


def check_n_bins(n_bins: Any) -> int:
    """A positive integer number of bins."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise expected("n_bins", "a positive integer", n_bins)
    return int(n_bins)


def check_fraction(value: Any, name: str, *, closed: bool = False) -> float:
    """A number in (0, 1) (or [0, 1] with ``closed``)."""
    ok = isinstance(value, float | int | np.floating | np.integer) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = (0 <= v <= 1) if closed else (0 < v < 1)
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise expected(name, f"a number in {interval}", value)
    return float(value)


def check_reduction(reduction: Any) -> str:
    """``"mean"`` or ``"none"``."""
    if reduction not in ("mean", "none"):
        raise expected("reduction", "one of 'mean', 'none'", reduction)
    return reduction
