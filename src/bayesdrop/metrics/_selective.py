"""Selective classification: the risk-coverage curve, AURC, AUGRC, Risk@Coverage, Coverage@Risk.

A selective classifier accepts the examples whose confidence is at least a threshold and
abstains on the rest. Sweeping the threshold over the distinct confidences gives one point per
threshold (tied confidences are accepted together):

- coverage = accepted / N,
- selective risk = errors among the accepted / accepted,
- generalized risk = errors among the accepted / N (Traub et al. 2024).

The areas follow Traub et al. (2024) and their reference code (FD-Shifts ``RiskCoverageStats``):
trapezoidal integration over coverage in [0, 1], the selective-risk curve extended to coverage 0
at its lowest-coverage risk, the generalized-risk curve closed at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ._ranking import _threshold_counts
from ._validation import as_float, check_binary, check_fraction

__all__ = [
    "RiskCoverageCurve",
    "CoverageAtRisk",
    "risk_coverage_curve",
    "aurc",
    "augrc",
    "risk_at_coverage",
    "coverage_at_risk",
]


@dataclass(frozen=True)
class RiskCoverageCurve:
    """Points of the risk-coverage curve, in order of increasing coverage.

    Attributes:
        coverage: ``(K,)`` fraction of examples accepted, in (0, 1]; the last point is 1.
        risk: ``(K,)`` selective risk, errors among accepted / accepted.
        generalized_risk: ``(K,)`` errors among accepted / N.
        thresholds: ``(K,)`` the confidence threshold of each point (accept if >= threshold).
    """

    coverage: Tensor
    risk: Tensor
    generalized_risk: Tensor
    thresholds: Tensor


class CoverageAtRisk(NamedTuple):
    """The largest coverage whose selective risk is at most the target risk.

    Attributes:
        coverage: that coverage in (0, 1], or 0.0 when ``reached`` is False.
        reached: False when no threshold achieves the target risk (every non-empty selection
            has a higher risk); then ``coverage`` is 0.0: abstain on everything.
        threshold: the confidence threshold of that point, or None when not reached.
    """

    coverage: float
    reached: bool
    threshold: float | None


def _check(confidence: Any, correct: Any) -> tuple[Tensor, Tensor]:
    conf = as_float(confidence, "confidence", ndim=1)
    ok = check_binary(correct, "correct", conf.shape[0])
    return conf, ok


def _curve(conf: Tensor, ok: Tensor) -> RiskCoverageCurve:
    n_acc, n_err, thr = _threshold_counts(conf, ~ok)
    n = conf.numel()
    return RiskCoverageCurve(coverage=n_acc / n, risk=n_err / n_acc, generalized_risk=n_err / n, thresholds=thr)


def risk_coverage_curve(confidence: Any, correct: Any) -> RiskCoverageCurve:
    """The risk-coverage curve of accepting the most confident examples first.

    Args:
        confidence: ``(N,)`` confidence scores, higher = accepted first (e.g. the max
            probability; pass ``-uncertainty`` for an uncertainty score).
        correct: ``(N,)`` booleans (or 0/1), whether each prediction was right.

    Returns:
        A :class:`RiskCoverageCurve` with one point per distinct confidence.
    """
    return _curve(*_check(confidence, correct))


def _aurc(curve: RiskCoverageCurve) -> float:
    cov = torch.cat([curve.coverage.new_zeros(1), curve.coverage])
    risk = torch.cat([curve.risk[:1], curve.risk])
    return float(torch.trapezoid(risk, cov))


def _augrc(curve: RiskCoverageCurve) -> float:
    cov = torch.cat([curve.coverage.new_zeros(1), curve.coverage])
    risk = torch.cat([curve.generalized_risk.new_zeros(1), curve.generalized_risk])
    return float(torch.trapezoid(risk, cov))


def aurc(confidence: Any, correct: Any) -> float:
    """Area under the (selective) risk-coverage curve, in [0, 1]; lower is better.

    A perfect classifier (no errors) has AURC 0.

    Args:
        confidence: ``(N,)`` confidence scores, higher = accepted first.
        correct: ``(N,)`` booleans, whether each prediction was right.

    >>> round(aurc(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0])), 6)
    0.270833
    """
    return _aurc(risk_coverage_curve(confidence, correct))


def augrc(confidence: Any, correct: Any) -> float:
    """Area under the generalized risk-coverage curve (Traub et al. 2024), in [0, 0.5].

    The generalized risk counts accepted errors over all N examples: the AUGRC is the average
    risk of an undetected failure over all working points.

    Args:
        confidence: ``(N,)`` confidence scores, higher = accepted first.
        correct: ``(N,)`` booleans, whether each prediction was right.

    >>> augrc(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0]))
    0.1875
    """
    return _augrc(risk_coverage_curve(confidence, correct))


def _risk_at_coverage(curve: RiskCoverageCurve, coverage: float) -> float:
    idx = int(torch.nonzero(curve.coverage >= coverage - 1e-12)[0])
    return float(curve.risk[idx])


def risk_at_coverage(confidence: Any, correct: Any, coverage: float = 0.8) -> float:
    """Selective risk when accepting the most confident ``coverage`` fraction (Risk@80Cov).

    Ties can make the exact coverage unreachable: the first curve point whose coverage is at
    least ``coverage`` is used.

    Args:
        confidence: ``(N,)`` confidence scores, higher = accepted first.
        correct: ``(N,)`` booleans, whether each prediction was right.
        coverage: target coverage in (0, 1].
    """
    cov = check_fraction(coverage, "coverage", closed=True)
    if cov == 0:
        cov = 1e-12
    return _risk_at_coverage(risk_coverage_curve(confidence, correct), cov)


def _coverage_at_risk(curve: RiskCoverageCurve, risk: float) -> CoverageAtRisk:
    ok = torch.nonzero(curve.risk <= risk + 1e-12).flatten()
    if ok.numel() == 0:
        return CoverageAtRisk(0.0, False, None)
    idx = int(ok[-1])
    return CoverageAtRisk(float(curve.coverage[idx]), True, float(curve.thresholds[idx]))


def coverage_at_risk(confidence: Any, correct: Any, risk: float = 0.05) -> CoverageAtRisk:
    """The largest coverage whose selective risk is at most ``risk`` (Cov@5Risk).

    Never NaN: when no threshold reaches the risk, the result says so (``reached=False``,
    ``coverage=0.0``).

    Args:
        confidence: ``(N,)`` confidence scores, higher = accepted first.
        correct: ``(N,)`` booleans, whether each prediction was right.
        risk: target selective risk in [0, 1].

    >>> conf, correct = torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0])
    >>> coverage_at_risk(conf, correct, risk=0.4)[:2]
    (0.75, True)
    >>> coverage_at_risk(conf, correct, risk=0.0)[:2]
    (0.25, True)
    >>> coverage_at_risk(1 - conf, correct, risk=0.0)[:2]
    (0.0, False)
    """
    target = check_fraction(risk, "risk", closed=True)
    return _coverage_at_risk(risk_coverage_curve(confidence, correct), target)
