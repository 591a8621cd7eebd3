"""Ranking metrics: ROC and precision-recall curves, AUROC, average precision, FPR at a TPR,
their out-of-distribution forms, and how well an uncertainty ranks the errors.

One sorting stage, ``_threshold_counts``, serves all of them (and the risk-coverage curve):
sort the scores in decreasing order and, at each distinct score, count the examples at or
above it and the positives among them. Tied scores enter together, as in scikit-learn.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._errors import BayesdropError
from ._validation import as_float, check_binary, check_fraction

__all__ = [
    "roc_curve",
    "precision_recall_curve",
    "auroc",
    "average_precision",
    "fpr_at_tpr",
    "ood_auroc",
    "aupr_in",
    "aupr_out",
    "fpr_at_95_tpr",
    "ood_metrics",
    "error_auroc",
]


def _threshold_counts(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """At each distinct score s (decreasing): (#examples with score >= s, #positives among them,
    s). Shapes ``(K,)``, K = number of distinct scores."""
    order = torch.argsort(scores, descending=True, stable=True)
    s = scores[order]
    pos = positive[order].to(torch.float64)
    n = s.numel()
    last_of_run = torch.nonzero(s[1:] != s[:-1]).flatten()
    idx = torch.cat([last_of_run, torch.tensor([n - 1], device=s.device)])
    n_above = (idx + 1).to(torch.float64)
    return n_above, pos.cumsum(0)[idx], s[idx]


def _check_scores_labels(scores: Any, labels: Any, name: str = "labels") -> tuple[Tensor, Tensor]:
    s = as_float(scores, "scores", ndim=1)
    y = check_binary(labels, name, s.shape[0])
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.numel():
        kind = "positive (1)" if n_pos else "negative (0)"
        raise BayesdropError(
            f"Expected argument `{name}` to contain both classes, but got only {kind} labels "
            f"({y.numel()} examples): ranking metrics are undefined with a single class."
        )
    return s, y


def roc_curve(scores: Any, labels: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Receiver operating characteristic: a higher score means "more likely positive".

    Args:
        scores: ``(N,)`` real scores.
        labels: ``(N,)`` 0/1 or boolean labels, both classes present.

    Returns:
        ``(fpr, tpr, thresholds)``, each ``(K + 1,)``: one point per distinct score (decreasing
        threshold) after the point (0, 0) with threshold +inf. Every point is kept (like
        scikit-learn's ``drop_intermediate=False``).
    """
    s, y = _check_scores_labels(scores, labels)
    return _roc(s, y)


def _roc(s: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    n_above, tps, thr = _threshold_counts(s, y)
    fps = n_above - tps
    zero = torch.zeros(1, dtype=torch.float64, device=s.device)
    fpr = torch.cat([zero, fps / fps[-1]])
    tpr = torch.cat([zero, tps / tps[-1]])
    thresholds = torch.cat([torch.full((1,), float("inf"), dtype=s.dtype, device=s.device), thr])
    return fpr, tpr, thresholds


def precision_recall_curve(scores: Any, labels: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Precision and recall at every distinct threshold (decreasing), a higher score meaning
    "more likely positive".

    Returns:
        ``(precision, recall, thresholds)``, each ``(K,)``, in order of decreasing threshold
        (increasing recall).
    """
    s, y = _check_scores_labels(scores, labels)
    n_above, tps, thr = _threshold_counts(s, y)
    return tps / n_above, tps / tps[-1], thr


def auroc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve (trapezoidal), ties handled like scikit-learn's
    ``roc_auc_score``: the probability that a random positive scores above a random negative,
    ties counting one half.

    Args:
        scores: ``(N,)`` real scores, higher = more likely positive.
        labels: ``(N,)`` 0/1 or boolean labels, both classes present.

    >>> auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
    0.75
    """
    s, y = _check_scores_labels(scores, labels)
    return _auroc(s, y)


def _auroc(s: Tensor, y: Tensor) -> float:
    fpr, tpr, _ = _roc(s, y)
    return float(torch.trapezoid(tpr, fpr))


def average_precision(scores: Any, labels: Any) -> float:
    """Average precision, sum_k (R_k - R_{k-1}) P_k over decreasing thresholds (no
    interpolation), as scikit-learn's ``average_precision_score``.

    Args:
        scores: ``(N,)`` real scores, higher = more likely positive.
        labels: ``(N,)`` 0/1 or boolean labels, both classes present.
    """
    s, y = _check_scores_labels(scores, labels)
    return _average_precision(s, y)


def _average_precision(s: Tensor, y: Tensor) -> float:
    n_above, tps, _ = _threshold_counts(s, y)
    precision = tps / n_above
    recall_step = torch.diff(tps, prepend=tps.new_zeros(1)) / tps[-1]
    return float((recall_step * precision).sum())


def fpr_at_tpr(scores: Any, labels: Any, tpr: float = 0.95) -> float:
    """False-positive rate at the first threshold (decreasing) whose true-positive rate
    reaches ``tpr``.

    Args:
        scores: ``(N,)`` real scores, higher = more likely positive.
        labels: ``(N,)`` 0/1 or boolean labels, both classes present.
        tpr: the true-positive rate to reach, in (0, 1].
    """
    level = check_fraction(tpr, "tpr", closed=True)
    s, y = _check_scores_labels(scores, labels)
    return _fpr_at_tpr(s, y, level)


def _fpr_at_tpr(s: Tensor, y: Tensor, level: float) -> float:
    fpr, tpr_curve, _ = _roc(s, y)
    # tps / P is compared in counts to avoid 0.95 * P rounding (19 / 20 >= 0.95 must hold).
    n_pos = float(y.sum())
    reached = tpr_curve * n_pos >= level * n_pos - 1e-9
    return float(fpr[int(torch.nonzero(reached)[0])])


# ---------------------------------------------------------------- out-of-distribution detection
def _ood_pair(score_in: Any, score_out: Any) -> tuple[Tensor, Tensor]:
    """In-distribution scores first, then OOD; label 1 = OOD."""
    s_in = as_float(score_in, "score_in", ndim=1)
    s_out = as_float(score_out, "score_out", ndim=1)
    s = torch.cat([s_in, s_out.to(s_in.device)])
    is_ood = torch.cat([torch.zeros_like(s_in, dtype=torch.bool), torch.ones_like(s_out, dtype=torch.bool)])
    return s, is_ood


def ood_auroc(score_in: Any, score_out: Any) -> float:
    """AUROC of telling OOD inputs from in-distribution ones by an uncertainty score.

    Args:
        score_in: ``(N_in,)`` uncertainty scores (higher = more likely OOD) on in-distribution
            inputs, e.g. predictive entropy; for a confidence such as the max softmax
            probability pass ``1 - msp``.
        score_out: ``(N_out,)`` the same score on OOD inputs.
    """
    s, is_ood = _ood_pair(score_in, score_out)
    return _auroc(s, is_ood)


def aupr_in(score_in: Any, score_out: Any) -> float:
    """Average precision with in-distribution as the positive class, ranked by ``-score``.

    Args:
        score_in: ``(N_in,)`` uncertainty scores on in-distribution inputs.
        score_out: ``(N_out,)`` uncertainty scores on OOD inputs.
    """
    s, is_ood = _ood_pair(score_in, score_out)
    return _average_precision(-s, ~is_ood)


def aupr_out(score_in: Any, score_out: Any) -> float:
    """Average precision with OOD as the positive class, ranked by ``score``.

    Args:
        score_in: ``(N_in,)`` uncertainty scores on in-distribution inputs.
        score_out: ``(N_out,)`` uncertainty scores on OOD inputs.
    """
    s, is_ood = _ood_pair(score_in, score_out)
    return _average_precision(s, is_ood)


def fpr_at_95_tpr(score_in: Any, score_out: Any) -> float:
    """Fraction of OOD inputs accepted as in-distribution when the threshold on the score
    accepts 95% of the in-distribution inputs (Hendrycks & Gimpel 2017: in-distribution is the
    positive class, ranked by ``-score``). Lower is better.

    Args:
        score_in: ``(N_in,)`` uncertainty scores on in-distribution inputs.
        score_out: ``(N_out,)`` uncertainty scores on OOD inputs.
    """
    s, is_ood = _ood_pair(score_in, score_out)
    return _fpr_at_tpr(-s, ~is_ood, 0.95)


def ood_metrics(score_in: Any, score_out: Any) -> dict[str, float]:
    """``{"auroc", "aupr_in", "aupr_out", "fpr95"}`` of one uncertainty score.

    Args:
        score_in: ``(N_in,)`` uncertainty scores (higher = more likely OOD), in-distribution.
        score_out: ``(N_out,)`` uncertainty scores on OOD inputs.
    """
    s, is_ood = _ood_pair(score_in, score_out)
    return {
        "auroc": _auroc(s, is_ood),
        "aupr_in": _average_precision(-s, ~is_ood),
        "aupr_out": _average_precision(s, is_ood),
        "fpr95": _fpr_at_tpr(-s, ~is_ood, 0.95),
    }


def error_auroc(uncertainty: Any, correct: Any) -> float:
    """How well an uncertainty ranks the errors: AUROC of ``uncertainty`` for detecting
    misclassified examples (0.5 = no better than chance, 1 = every error is more uncertain
    than every correct prediction).

    Args:
        uncertainty: ``(N,)`` uncertainty scores (e.g. ``Prediction.total``).
        correct: ``(N,)`` booleans, whether each prediction was right; both kinds present.
    """
    u = as_float(uncertainty, "uncertainty", ndim=1)
    c = check_binary(correct, "correct", u.shape[0])
    n_right = int(c.sum())
    if n_right in (0, c.numel()):
        kind = "correct" if n_right else "wrong"
        raise BayesdropError(
            f"Expected argument `correct` to contain both right and wrong predictions, but all "
            f"{c.numel()} are {kind}: the error-detection AUROC is undefined."
        )
    return _auroc(u, ~c)
