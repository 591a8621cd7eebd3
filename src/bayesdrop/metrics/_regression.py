"""Regression metrics: RMSE, MAE, Gaussian NLL, MC log-likelihood of the mixture, interval
coverage (PICP) and width, quantile calibration error, CRPS.

Shapes: ``(N, *out)`` for means, variances and targets; ``(N, T, *out)`` for per-sample MC means
(the layout of ``Prediction.samples``). Per-example log-densities are summed over ``*out``
(independent outputs); RMSE, MAE, coverage, width and CRPS average over every output element.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._errors import BayesdropError, expected
from ._validation import as_float, check_fraction, check_reduction, check_same_shape

__all__ = [
    "rmse",
    "mae",
    "gaussian_nll",
    "mc_log_likelihood",
    "picp",
    "interval_width",
    "quantile_calibration_error",
    "crps_gaussian",
    "crps_mixture",
]

_LOG_2PI = math.log(2 * math.pi)


def _pair(mean: Any, target: Any) -> tuple[Tensor, Tensor]:
    m = as_float(mean, "mean", min_ndim=1)
    y = check_same_shape(as_float(target, "target", min_ndim=1), "target", m.shape, "mean")
    return m, y.to(m.device)


def _variance(var: Any, shape: torch.Size, name: str = "var") -> Tensor:
    v = as_float(var, name, min_ndim=0)
    if v.dim() > 0:
        v = check_same_shape(v, name, shape, "mean")
    if bool((v <= 0).any()):
        raise expected(name, "strictly positive variances", f"minimum {float(v.min()):.4g}")
    return v.expand(shape)


def _reduce_examples(per_element: Tensor, reduction: str) -> float | Tensor:
    per_example = per_element.reshape(per_element.shape[0], -1).sum(1)
    return float(per_example.mean()) if reduction == "mean" else per_example


def rmse(mean: Any, target: Any) -> float:
    """Root mean squared error over every output element.

    Args:
        mean: ``(N, *out)`` predictive means.
        target: ``(N, *out)`` targets.

    >>> round(rmse(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])), 6)  # sqrt(2)
    1.414214
    """
    m, y = _pair(mean, target)
    return float(((m - y) ** 2).mean().sqrt())


def mae(mean: Any, target: Any) -> float:
    """Mean absolute error over every output element.

    Args:
        mean: ``(N, *out)`` predictive means.
        target: ``(N, *out)`` targets.
    """
    m, y = _pair(mean, target)
    return float((m - y).abs().mean())


def _gaussian_nll_elements(m: Tensor, v: Tensor, y: Tensor) -> Tensor:
    return 0.5 * (_LOG_2PI + v.log() + (y - m) ** 2 / v)


def gaussian_nll(mean: Any, var: Any, target: Any, *, reduction: str = "mean") -> float | Tensor:
    """Negative log-density of the targets under N(mean, var), summed over ``*out``.

    With ``Prediction.mean`` and ``Prediction.total`` this is the NLL of the moment-matched
    Gaussian predictive; the exact mixture is :func:`mc_log_likelihood`.

    Args:
        mean: ``(N, *out)`` predictive means.
        var: ``(N, *out)`` predictive variances (> 0), or a scalar.
        target: ``(N, *out)`` targets.
        reduction: ``"mean"`` over examples (a float) or ``"none"`` (``(N,)``).
    """
    check_reduction(reduction)
    m, y = _pair(mean, target)
    v = _variance(var, m.shape)
    return _reduce_examples(_gaussian_nll_elements(m, v, y), reduction)


def _check_samples(means: Any, target: Any) -> tuple[Tensor, Tensor]:
    s = as_float(means, "sample_means", min_ndim=2)
    y = as_float(target, "target", min_ndim=1)
    out_shape = torch.Size([s.shape[0], *s.shape[2:]])
    y = check_same_shape(y, "target", out_shape, "sample_means without its T axis")
    return s, y.to(s.device)


def _sample_variances(variances: Any, tau: Any, shape: torch.Size) -> Tensor:
    if (variances is None) == (tau is None):
        raise BayesdropError(
            "Expected exactly one of the arguments `variances` (per-sample predicted variances, "
            "(N, T, *out)) and `tau` (model precision, a positive number), but got "
            f"{'both' if variances is not None else 'neither'}."
        )
    if tau is not None:
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not tau > 0:
            raise expected("tau", "a positive number", tau)
        if not math.isfinite(float(tau)):
            raise expected("tau", "a finite positive number", tau)
        return torch.full(shape, 1.0 / float(tau), dtype=torch.float64)
    v = as_float(variances, "variances", min_ndim=2)
    if v.shape != shape:
        raise BayesdropError(
            f"Expected argument `variances` to have the shape of `sample_means` {tuple(shape)}, "
            f"but got shape {tuple(v.shape)}."
        )
    if bool((v <= 0).any()):
        raise expected("variances", "strictly positive variances", f"minimum {float(v.min()):.4g}")
    return v


def mc_log_likelihood(
    sample_means: Any,
    target: Any,
    *,
    tau: float | None = None,
    variances: Any = None,
    reduction: str = "mean",
) -> float | Tensor:
    """Log predictive density of the MC mixture (Gal & Ghahramani 2016), per example.

    ``log p(y) = logsumexp_t log N(y; mu_t, sigma2_t) - log T``, with ``sigma2_t = 1 / tau`` for
    point-output models (the paper's formula
    ``logsumexp_t(-0.5 tau (y - yhat_t)^2) - log T - 0.5 log 2 pi + 0.5 log tau``) or the
    per-sample predicted variances of a Gaussian head. Each component's density is the product
    over ``*out``. Higher is better.

    Args:
        sample_means: ``(N, T, *out)`` per-sample means (``Prediction.samples``).
        target: ``(N, *out)`` targets, on the same scale as the means.
        tau: model precision (exclusive with ``variances``).
        variances: ``(N, T, *out)`` per-sample variances (``Prediction.sample_variances``).
        reduction: ``"mean"`` over examples (a float) or ``"none"`` (``(N,)``).
    """
    check_reduction(reduction)
    s, y = _check_samples(sample_means, target)
    v = _sample_variances(variances, tau, s.shape).to(s.device)
    per = _mixture_log_likelihood(s, v, y)
    return float(per.mean()) if reduction == "mean" else per


def _mixture_log_likelihood(s: Tensor, v: Tensor, y: Tensor) -> Tensor:
    """``(N,)`` log density of y under the equal-weight mixture of N(s_t, v_t), each component
    a product over ``*out``."""
    log_comp = -_gaussian_nll_elements(s, v, y[:, None]).reshape(s.shape[0], s.shape[1], -1).sum(2)
    return torch.logsumexp(log_comp, dim=1) - math.log(s.shape[1])


def _z(level: float) -> float:
    return float(torch.special.ndtri(torch.tensor((1 + level) / 2, dtype=torch.float64)))


def picp(mean: Any, var: Any, target: Any, level: float = 0.95) -> float:
    """Prediction-interval coverage probability: the fraction of targets inside the central
    ``level`` interval ``mean +- z sqrt(var)`` of the Gaussian predictive.

    A calibrated model covers about ``level``.

    Args:
        mean: ``(N, *out)`` predictive means.
        var: ``(N, *out)`` predictive variances (> 0).
        target: ``(N, *out)`` targets.
        level: nominal coverage in (0, 1).
    """
    lv = check_fraction(level, "level")
    m, y = _pair(mean, target)
    v = _variance(var, m.shape)
    return float(((y - m).abs() <= _z(lv) * v.sqrt()).double().mean())


def interval_width(var: Any, level: float = 0.95) -> float:
    """Mean width ``2 z sqrt(var)`` of the central ``level`` Gaussian prediction interval.

    Args:
        var: ``(N, *out)`` predictive variances (> 0).
        level: nominal coverage in (0, 1).
    """
    lv = check_fraction(level, "level")
    v = as_float(var, "var", min_ndim=1)
    if bool((v <= 0).any()):
        raise expected("var", "strictly positive variances", f"minimum {float(v.min()):.4g}")
    return float((2 * _z(lv) * v.sqrt()).mean())


def _qce_levels(n_levels: int) -> Tensor:
    return torch.arange(1, n_levels + 1, dtype=torch.float64) / (n_levels + 1)


def _pit_counts(pit: Tensor, n_levels: int) -> Tensor:
    """``(n_levels,)`` number of PIT values at or below each level."""
    levels = _qce_levels(n_levels).to(pit.device)
    return (pit.reshape(-1, 1) <= levels).double().sum(0)


def _qce_from_counts(counts: Tensor, n_total: int) -> float:
    levels = _qce_levels(counts.shape[0]).to(counts.device)
    return float((counts / n_total - levels).abs().mean())


def quantile_calibration_error(mean: Any, var: Any, target: Any, n_levels: int = 19) -> float:
    """Quantile calibration error (Kuleshov et al. 2018, absolute form): the mean over levels
    ``p = 1/(L+1), ..., L/(L+1)`` of |fraction of targets below the predicted p-quantile - p|.

    Computed from the probability integral transform ``Phi((y - mean) / sqrt(var))`` of the
    Gaussian predictive; 0 for a perfectly calibrated model, at most 0.5.

    Args:
        mean: ``(N, *out)`` predictive means.
        var: ``(N, *out)`` predictive variances (> 0).
        target: ``(N, *out)`` targets.
        n_levels: number of quantile levels L.
    """
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 1:
        raise expected("n_levels", "a positive integer", n_levels)
    m, y = _pair(mean, target)
    v = _variance(var, m.shape)
    pit = torch.special.ndtr((y - m) / v.sqrt())
    return _qce_from_counts(_pit_counts(pit, n_levels), pit.numel())


def _crps_gaussian_elements(m: Tensor, v: Tensor, y: Tensor) -> Tensor:
    sd = v.sqrt()
    z = (y - m) / sd
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return sd * (z * (2 * torch.special.ndtr(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def crps_gaussian(mean: Any, var: Any, target: Any, *, reduction: str = "mean") -> float | Tensor:
    """Continuous ranked probability score of N(mean, var), closed form (Gneiting & Raftery
    2007): ``sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)]``, ``z = (y - mean) / sigma``.

    Same units as the target; lower is better; equals |y - mean| as var -> 0.

    Args:
        mean: ``(N, *out)`` predictive means.
        var: ``(N, *out)`` predictive variances (> 0).
        target: ``(N, *out)`` targets.
        reduction: ``"mean"`` over every element (a float) or ``"none"`` (``(N, *out)``).
    """
    check_reduction(reduction)
    m, y = _pair(mean, target)
    v = _variance(var, m.shape)
    per = _crps_gaussian_elements(m, v, y)
    return float(per.mean()) if reduction == "mean" else per


def _crps_mixture_elements(s: Tensor, v: Tensor | None, y: Tensor) -> Tensor:
    """``(N, *out)`` CRPS of the equal-weight mixture of N(s_t, v_t) (point masses if v is
    None)."""
    n, t = s.shape[:2]
    s2 = s.reshape(n, t, -1).transpose(1, 2)  # (N, D, T)
    y2 = y.reshape(n, -1, 1)
    if v is None:
        # E|X - y| - 0.5 E|X - X'| with the sorted-sample identity for E|X - X'|.
        first = (s2 - y2).abs().mean(-1)
        srt = s2.sort(-1).values
        rank = torch.arange(1, t + 1, dtype=s.dtype, device=s.device)
        pair = (2 * rank - t - 1).mul(srt).sum(-1) * 2 / t**2
        return (first - 0.5 * pair).reshape(y.shape)
    v2 = v.reshape(n, t, -1).transpose(1, 2)

    def a(mu: Tensor, var: Tensor) -> Tensor:  # E|Z| for Z ~ N(mu, var)
        sd = var.sqrt()
        z = mu / sd
        return 2 * sd * torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) + mu * (2 * torch.special.ndtr(z) - 1)

    first = a(y2 - s2, v2).mean(-1)
    # The T x T pairwise term, chunked over examples to bound memory (about 2e6 pairs a chunk).
    out = torch.empty_like(first)
    d = s2.shape[1]
    step = max(1, 2_000_000 // max(1, d * t * t))
    for i in range(0, n, step):
        ms, vs = s2[i : i + step], v2[i : i + step]
        pair = a(ms[..., :, None] - ms[..., None, :], vs[..., :, None] + vs[..., None, :])
        out[i : i + step] = first[i : i + step] - 0.5 * pair.mean((-1, -2))
    return out.reshape(y.shape)


def crps_mixture(
    sample_means: Any,
    target: Any,
    *,
    variances: Any = None,
    tau: float | None = None,
    reduction: str = "mean",
) -> float | Tensor:
    """CRPS of the MC predictive mixture, ``E|X - y| - 0.5 E|X - X'|`` in closed form.

    Components are N(mu_t, sigma2_t) with per-sample ``variances`` or ``1 / tau``; with neither,
    the samples themselves are the predictive (empirical CRPS, O(T log T)). The Gaussian
    mixture form costs O(T^2) per element (Grimit et al. 2006).

    Args:
        sample_means: ``(N, T, *out)`` per-sample means (``Prediction.samples``).
        target: ``(N, *out)`` targets.
        variances: ``(N, T, *out)`` per-sample variances, or None.
        tau: model precision, or None.
        reduction: ``"mean"`` over every element (a float) or ``"none"`` (``(N, *out)``).
    """
    check_reduction(reduction)
    s, y = _check_samples(sample_means, target)
    v = None
    if variances is not None or tau is not None:
        v = _sample_variances(variances, tau, s.shape).to(s.device)
    per = _crps_mixture_elements(s, v, y)
    return float(per.mean()) if reduction == "mean" else per
