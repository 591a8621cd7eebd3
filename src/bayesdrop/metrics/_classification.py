"""Classification metrics on predictive probabilities: accuracy, NLL, Brier score."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._validation import as_float, check_labels, check_probs, check_reduction

__all__ = ["accuracy", "nll", "brier_score"]


def accuracy(probs: Any, target: Any) -> float:
    """Fraction of examples whose most probable class is the target.

    Ties in ``probs`` go to the lowest class index (``torch.argmax``).

    Args:
        probs: ``(N, C)`` predictive probabilities (e.g. ``Prediction.mean``).
        target: ``(N,)`` integer labels in ``[0, C)``.

    Returns:
        Accuracy in [0, 1].

    >>> accuracy(torch.tensor([[0.9, 0.1], [0.4, 0.6]]), torch.tensor([0, 0]))
    0.5
    """
    p = check_probs(probs, "probs")
    y = check_labels(target, "target", p.shape[0], p.shape[1])
    return float((p.argmax(1) == y).double().mean())


def nll(probs: Any, target: Any, *, log_probs: bool = False, reduction: str = "mean") -> float | Tensor:
    """Negative log-likelihood of the targets (cross-entropy), in nats.

    Probabilities of exactly 0 on the target are clamped to the smallest positive float64
    (the NLL is then about 708 instead of infinite).

    Args:
        probs: ``(N, C)`` predictive probabilities, or log-probabilities with ``log_probs=True``
            (e.g. ``Prediction.log_mean``, which keeps tiny probabilities exact).
        target: ``(N,)`` integer labels in ``[0, C)``.
        log_probs: whether ``probs`` holds log-probabilities.
        reduction: ``"mean"`` (a float) or ``"none"`` (the ``(N,)`` per-example values).

    >>> round(nll(torch.tensor([[0.5, 0.5], [0.9, 0.1]]), torch.tensor([0, 0])), 4)
    0.3993
    """
    check_reduction(reduction)
    if log_probs:
        lp = as_float(probs, "probs", ndim=2)
        check_probs(lp.exp(), "probs.exp()")
    else:
        lp = check_probs(probs, "probs").clamp_min(torch.finfo(torch.float64).tiny).log()
    y = check_labels(target, "target", lp.shape[0], lp.shape[1])
    per = -lp.gather(1, y[:, None])[:, 0]
    return float(per.mean()) if reduction == "mean" else per


def brier_score(probs: Any, target: Any, *, reduction: str = "mean") -> float | Tensor:
    """Multi-class Brier score: sum over classes of (p_c - 1[y = c])^2, in [0, 2].

    For two classes this is twice the binary Brier score (mean squared error of p_1).

    Args:
        probs: ``(N, C)`` predictive probabilities.
        target: ``(N,)`` integer labels in ``[0, C)``.
        reduction: ``"mean"`` (a float) or ``"none"`` (``(N,)`` per-example values).

    >>> brier_score(torch.tensor([[1.0, 0.0], [0.5, 0.5]]), torch.tensor([0, 1]))
    0.25
    """
    check_reduction(reduction)
    p = check_probs(probs, "probs")
    y = check_labels(target, "target", p.shape[0], p.shape[1])
    per = _brier_per_example(p, y)
    return float(per.mean()) if reduction == "mean" else per


def _brier_per_example(p: Tensor, y: Tensor) -> Tensor:
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).to(p.dtype)
    return ((p - onehot) ** 2).sum(1)
