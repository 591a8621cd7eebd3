"""Calibration errors: ECE (equal-width bins), adaptive ECE (equal-mass bins), MCE, classwise ECE.

All of them share one binning stage, ``_bin_sums``: per bin the number of examples, the sum of
confidences and the sum of correct indicators. Those sums are fixed-size sufficient statistics:
they add up over batches, which is how the streaming ``Evaluator`` computes the same numbers.

Bin ``b`` of ``n_bins`` equal-width bins is the interval ``(b / n_bins, (b + 1) / n_bins]``
(confidence 0 goes to the first bin), as in Guo et al. (2017).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ._validation import check_labels, check_n_bins, check_probs

__all__ = [
    "CalibrationBins",
    "calibration_bins",
    "ece",
    "adaptive_ece",
    "mce",
    "classwise_ece",
]


@dataclass(frozen=True)
class CalibrationBins:
    """Equal-width calibration bins, as a reliability diagram draws them.

    Attributes:
        edges: ``(n_bins + 1,)`` bin edges from 0 to 1.
        counts: ``(n_bins,)`` number of examples per bin.
        confidence: ``(n_bins,)`` mean confidence per bin (0 for empty bins).
        accuracy: ``(n_bins,)`` fraction correct per bin (0 for empty bins).
    """

    edges: Tensor
    counts: Tensor
    confidence: Tensor
    accuracy: Tensor


def _inner_edges(n_bins: int, dtype: torch.dtype = torch.float64) -> Tensor:
    # arange / n rounds each edge once, so 0.3 is the same float as the literal 0.3.
    return torch.arange(1, n_bins, dtype=dtype) / n_bins


def _bin_index(confidence: Tensor, n_bins: int) -> Tensor:
    """Bin ``b`` holds confidences in ``(b / n, (b + 1) / n]``; confidence 0 goes to bin 0."""
    return torch.bucketize(confidence, _inner_edges(n_bins).to(confidence.device), right=False)


def _bin_sums(confidence: Tensor, correct: Tensor, index: Tensor, n_bins: int) -> Tensor:
    """``(n_bins, 3)`` per-bin [count, sum of confidences, sum of correct indicators]."""
    values = torch.stack([torch.ones_like(confidence), confidence, correct.to(confidence.dtype)], dim=1)
    sums = torch.zeros(n_bins, 3, dtype=confidence.dtype, device=confidence.device)
    return sums.index_add_(0, index, values)


def _calibration_error(sums: Tensor, n_total: int, norm: str = "l1") -> float:
    """ECE (``"l1"``: sum_b |acc_sum_b - conf_sum_b| / N) or MCE (``"max"``) from bin sums."""
    gap = (sums[..., 2] - sums[..., 1]).abs()
    if norm == "l1":
        return float(gap.sum() / n_total)
    nonempty = sums[..., 0] > 0
    return float((gap[nonempty] / sums[..., 0][nonempty]).max())


def _top_label(probs: Any, target: Any) -> tuple[Tensor, Tensor]:
    p = check_probs(probs, "probs")
    y = check_labels(target, "target", p.shape[0], p.shape[1])
    conf, pred = p.max(1)
    return conf, pred == y


def _classwise_sums(p: Tensor, y: Tensor, n_bins: int) -> Tensor:
    """``(C, n_bins, 3)`` bin sums of every class's probability against 1[y = c]."""
    n, c = p.shape
    index = _bin_index(p, n_bins) + torch.arange(c, device=p.device) * n_bins  # (N, C)
    hit = torch.nn.functional.one_hot(y, c).to(p.dtype)
    sums = _bin_sums(p.reshape(-1), hit.reshape(-1), index.reshape(-1), c * n_bins)
    return sums.reshape(c, n_bins, 3)


def _equal_mass_index(confidence: Tensor, n_bins: int) -> Tensor:
    """Equal-mass bins: split the sorted confidences into ``n_bins`` chunks of (nearly) equal
    size; the upper edge of a chunk is its largest confidence, and ties at an edge all go to the
    lower bin, so the binning depends on the values only (not on the order of the examples)."""
    sorted_conf = confidence.sort().values
    n = sorted_conf.numel()
    k = min(n_bins, n)
    upper = torch.stack([chunk[-1] for chunk in torch.tensor_split(sorted_conf, k)])
    return torch.bucketize(confidence, upper[:-1], right=False)


def calibration_bins(probs: Any, target: Any, n_bins: int = 15) -> CalibrationBins:
    """Top-label confidence and accuracy in ``n_bins`` equal-width bins.

    Args:
        probs: ``(N, C)`` predictive probabilities.
        target: ``(N,)`` integer labels.
        n_bins: number of equal-width bins on [0, 1].
    """
    n_bins = check_n_bins(n_bins)
    conf, correct = _top_label(probs, target)
    return _bins_from_sums(_bin_sums(conf, correct, _bin_index(conf, n_bins), n_bins))


def _bins_from_sums(sums: Tensor) -> CalibrationBins:
    n_bins = sums.shape[0]
    counts = sums[:, 0]
    safe = counts.clamp_min(1)
    return CalibrationBins(
        edges=torch.linspace(0, 1, n_bins + 1, dtype=torch.float64),
        counts=counts,
        confidence=sums[:, 1] / safe,
        accuracy=sums[:, 2] / safe,
    )


def ece(probs: Any, target: Any, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width bins (Guo et al. 2017).

    ECE = sum_b (n_b / N) |accuracy_b - confidence_b| over the top-label confidence.

    Args:
        probs: ``(N, C)`` predictive probabilities.
        target: ``(N,)`` integer labels in ``[0, C)``.
        n_bins: number of equal-width bins on [0, 1].

    Returns:
        ECE in [0, 1].

    >>> round(ece(torch.tensor([[0.8, 0.2], [0.8, 0.2]]), torch.tensor([0, 1]), n_bins=10), 6)
    0.3
    """
    n_bins = check_n_bins(n_bins)
    conf, correct = _top_label(probs, target)
    sums = _bin_sums(conf, correct, _bin_index(conf, n_bins), n_bins)
    return _calibration_error(sums, conf.numel())


def mce(probs: Any, target: Any, n_bins: int = 15) -> float:
    """Maximum calibration error: the largest |accuracy_b - confidence_b| over non-empty
    equal-width bins.

    Args:
        probs: ``(N, C)`` predictive probabilities.
        target: ``(N,)`` integer labels in ``[0, C)``.
        n_bins: number of equal-width bins on [0, 1].
    """
    n_bins = check_n_bins(n_bins)
    conf, correct = _top_label(probs, target)
    sums = _bin_sums(conf, correct, _bin_index(conf, n_bins), n_bins)
    return _calibration_error(sums, conf.numel(), norm="max")


def adaptive_ece(probs: Any, target: Any, n_bins: int = 15) -> float:
    """Adaptive ECE: the ECE formula over equal-mass bins (Nixon et al. 2019).

    The sorted top-label confidences are split into ``n_bins`` chunks of nearly equal size;
    examples tied at a chunk edge share the lower bin.

    Args:
        probs: ``(N, C)`` predictive probabilities.
        target: ``(N,)`` integer labels in ``[0, C)``.
        n_bins: number of equal-mass bins (at most N are used).
    """
    n_bins = check_n_bins(n_bins)
    conf, correct = _top_label(probs, target)
    return _adaptive_ece(conf, correct, n_bins)


def _adaptive_ece(conf: Tensor, correct: Tensor, n_bins: int) -> float:
    sums = _bin_sums(conf, correct, _equal_mass_index(conf, n_bins), n_bins)
    return _calibration_error(sums, conf.numel())


def classwise_ece(probs: Any, target: Any, n_bins: int = 15) -> float:
    """Classwise ECE (Kull et al. 2019): the mean over classes c of the ECE of p_c against
    1[y = c], each with ``n_bins`` equal-width bins.

    Args:
        probs: ``(N, C)`` predictive probabilities.
        target: ``(N,)`` integer labels in ``[0, C)``.
        n_bins: number of equal-width bins on [0, 1].
    """
    n_bins = check_n_bins(n_bins)
    p = check_probs(probs, "probs")
    y = check_labels(target, "target", p.shape[0], p.shape[1])
    return _classwise_from_sums(_classwise_sums(p, y, n_bins), p.shape[0])


def _classwise_from_sums(sums: Tensor, n_total: int) -> float:
    gap = (sums[..., 2] - sums[..., 1]).abs().sum(1) / n_total  # (C,)
    return float(gap.mean())
