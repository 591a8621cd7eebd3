"""Uncertainty decompositions computed from raw MC samples.

Every function takes samples in the documented layout ``(B, T, C)`` (batch x samples x
classes) or ``(B, T, *out)`` for regression and works in log space where that matters.
The sampling engine computes the same quantities as running reductions; these functions are
the direct definitions (and what the tests compare the engine against).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._errors import BayesdropError

__all__ = [
    "entropy",
    "expected_entropy",
    "mutual_information",
    "predictive_entropy",
    "variation_ratio",
    "mixture_moments",
]


def _check_samples(log_probs: Tensor, name: str) -> None:
    if log_probs.dim() != 3:
        raise BayesdropError(
            f"Expected argument `{name}` to be a (B, T, C) tensor, but got shape {tuple(log_probs.shape)}."
        )


def entropy(probs: Tensor, dim: int = -1) -> Tensor:
    """Shannon entropy in nats along ``dim``, with 0 log 0 = 0.

    >>> round(entropy(torch.tensor([0.5, 0.5])).item(), 6)  # log 2
    0.693147
    """
    return -torch.special.xlogy(probs, probs).sum(dim)


def _entropy_from_log(log_probs: Tensor, dim: int = -1) -> Tensor:
    probs = log_probs.exp()
    return -(probs * torch.where(probs > 0, log_probs, torch.zeros_like(log_probs))).sum(dim)


def predictive_entropy(log_probs: Tensor) -> Tensor:
    """Total uncertainty H[E_t p_t]: ``(B, T, C)`` per-sample log-probabilities -> ``(B,)``."""
    _check_samples(log_probs, "log_probs")
    log_mean = torch.logsumexp(log_probs, dim=1) - math.log(log_probs.shape[1])
    return _entropy_from_log(log_mean)


def expected_entropy(log_probs: Tensor) -> Tensor:
    """Aleatoric uncertainty E_t H[p_t]: ``(B, T, C)`` log-probabilities -> ``(B,)``."""
    _check_samples(log_probs, "log_probs")
    return _entropy_from_log(log_probs).mean(dim=1)


def mutual_information(log_probs: Tensor) -> Tensor:
    """Epistemic uncertainty (BALD) H[E p] - E H[p], clamped at 0: ``(B, T, C)`` -> ``(B,)``."""
    return (predictive_entropy(log_probs) - expected_entropy(log_probs)).clamp_min(0)


def variation_ratio(log_probs: Tensor) -> Tensor:
    """1 - (votes of the modal class) / T: ``(B, T, C)`` -> ``(B,)``.

    >>> lp = torch.log(torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]]))
    >>> round(variation_ratio(lp).item(), 4)
    0.3333
    """
    _check_samples(log_probs, "log_probs")
    votes = torch.nn.functional.one_hot(log_probs.argmax(-1), log_probs.shape[-1]).sum(1)
    return 1 - votes.max(-1).values.to(log_probs.dtype) / log_probs.shape[1]


def mixture_moments(means: Tensor, variances: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Moments of an equally weighted Gaussian mixture (law of total variance).

    Args:
        means: ``(B, T, *out)`` per-sample predicted means.
        variances: ``(B, T, *out)`` per-sample predicted variances, or None (aleatoric 0).

    Returns:
        ``(mean, aleatoric, epistemic)``, each ``(B, *out)``: E_t mu_t, E_t sigma2_t, Var_t mu_t
        (population variance, divisor T). The total predictive variance is their sum.
    """
    mean = means.mean(1)
    epistemic = means.var(1, correction=0)
    aleatoric = torch.zeros_like(mean) if variances is None else variances.mean(1)
    return mean, aleatoric, epistemic
