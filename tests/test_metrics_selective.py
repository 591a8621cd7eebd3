"""Selective classification: hand-checked AURC/AUGRC, a brute-force reference, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesdrop import BayesdropError
from bayesdrop.metrics import (
    augrc,
    aurc,
    coverage_at_risk,
    risk_at_coverage,
    risk_coverage_curve,
)


def _reference_bruteforce_rc(conf: np.ndarray, correct: np.ndarray):
    """Threshold by threshold, with a plain loop: (coverage, selective risk, generalized risk)
    at each distinct confidence, ascending coverage; then the areas of Traub et al. (2024)."""
    n = len(conf)
    points = []
    for thr in sorted(set(conf.tolist()), reverse=True):
        accepted = conf >= thr
        errors = int((~correct[accepted]).sum())
        points.append((accepted.sum() / n, errors / accepted.sum(), errors / n))
    cov = np.array([0.0] + [p[0] for p in points])
    sel = np.array([points[0][1]] + [p[1] for p in points])
    gen = np.array([0.0] + [p[2] for p in points])
    area = lambda y, x: float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))  # noqa: E731
    return points, area(sel, cov), area(gen, cov)


def test_hand_checked_example() -> None:
    conf = torch.tensor([0.9, 0.8, 0.7, 0.6])
    correct = torch.tensor([True, False, True, False])
    curve = risk_coverage_curve(conf, correct)
    assert curve.coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert curve.risk.tolist() == pytest.approx([0, 1 / 2, 1 / 3, 1 / 2])
    assert curve.generalized_risk.tolist() == pytest.approx([0, 1 / 4, 1 / 4, 1 / 2])
    # AURC: 0.25 * [(0 + 0) + (0 + 1/2) + (1/2 + 1/3) + (1/3 + 1/2)] / 2 = 13 / 48
    assert aurc(conf, correct) == pytest.approx(13 / 48)
    # AUGRC: 0.25 * [(0 + 0) + (0 + 1/4) + (1/4 + 1/4) + (1/4 + 1/2)] / 2 = 3 / 16
    assert augrc(conf, correct) == pytest.approx(3 / 16)
    assert risk_at_coverage(conf, correct, 0.8) == pytest.approx(1 / 2)
    assert risk_at_coverage(conf, correct, 0.75) == pytest.approx(1 / 3)
    assert risk_at_coverage(conf, correct, 0.5) == pytest.approx(1 / 2)


def test_ties_enter_together() -> None:
    conf = torch.tensor([0.9, 0.5, 0.5, 0.5])
    correct = torch.tensor([1, 1, 0, 0])
    curve = risk_coverage_curve(conf, correct)
    assert curve.coverage.tolist() == [0.25, 1.0]
    assert curve.risk.tolist() == [0.0, 0.5]
    # Risk@50Cov must use the first reachable coverage, 1.0.
    assert risk_at_coverage(conf, correct, 0.5) == 0.5
    # Order of the tied examples does not matter.
    assert aurc(conf.flip(0), correct.flip(0)) == pytest.approx(aurc(conf, correct))


@pytest.mark.parametrize("seed", range(3))
def test_against_bruteforce(seed: int) -> None:
    rng = np.random.default_rng(seed)
    conf = rng.integers(0, 12, size=60) / 12  # many ties
    correct = rng.random(60) < 0.7
    points, ref_aurc, ref_augrc = _reference_bruteforce_rc(conf, correct)
    curve = risk_coverage_curve(torch.from_numpy(conf), torch.from_numpy(correct))
    np.testing.assert_allclose(curve.coverage.numpy(), [p[0] for p in points])
    np.testing.assert_allclose(curve.risk.numpy(), [p[1] for p in points])
    assert aurc(conf, correct) == pytest.approx(ref_aurc, abs=1e-12)
    assert augrc(conf, correct) == pytest.approx(ref_augrc, abs=1e-12)


def test_optimal_augrc_has_the_closed_form_of_traub_et_al() -> None:
    # With every error ranked below every correct prediction (distinct confidences),
    # AUGRC = err^2 / 2 (Traub et al. 2024, the optimal AUGRC of binary residuals) up to the
    # 1 / N discretisation of the trapezoid.
    n, n_err = 1000, 230
    correct = torch.arange(n) >= n_err
    conf = torch.arange(n, dtype=torch.float64)
    err = n_err / n
    assert augrc(conf, correct) == pytest.approx(0.5 * err**2, abs=1 / n)


def test_coverage_at_risk_reached_and_not() -> None:
    conf = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = torch.tensor([1, 1, 0, 1, 0])
    result = coverage_at_risk(conf, correct, risk=0.25)
    assert result.reached and result.coverage == pytest.approx(0.8)
    assert result.threshold == pytest.approx(0.6)
    never = coverage_at_risk(conf, ~correct.bool(), risk=0.2)  # most confident is wrong
    assert never == (0.0, False, None)
    assert not np.isnan(never.coverage)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 50), seed=st.integers(0, 2**16), levels=st.integers(2, 50))
def test_properties(n: int, seed: int, levels: int) -> None:
    g = torch.Generator().manual_seed(seed)
    conf = torch.randint(0, levels, (n,), generator=g).double()
    correct = torch.rand(n, generator=g) < 0.6
    a, ga = aurc(conf, correct), augrc(conf, correct)
    err = 1 - correct.double().mean().item()
    assert 0 <= ga <= 0.5 and 0 <= a <= 1
    assert ga <= a + 1e-12  # generalized risk <= selective risk everywhere
    perm = torch.randperm(n, generator=g)
    assert aurc(conf[perm], correct[perm]) == pytest.approx(a)
    assert augrc(conf[perm], correct[perm]) == pytest.approx(ga)
    assert risk_at_coverage(conf, correct, 1.0) == pytest.approx(err)
    # A perfect classifier has AURC = AUGRC = 0, whatever its confidences.
    assert aurc(conf, torch.ones(n, dtype=torch.bool)) == 0.0
    assert augrc(conf, torch.ones(n, dtype=torch.bool)) == 0.0
    cov = coverage_at_risk(conf, correct, risk=0.05)
    assert 0 <= cov.coverage <= 1 and cov.reached == (cov.coverage > 0)


def test_bad_inputs() -> None:
    conf = torch.tensor([0.9, 0.8])
    with pytest.raises(BayesdropError, match=r"`correct` to have length 2.*length 3"):
        aurc(conf, torch.tensor([1, 0, 1]))
    with pytest.raises(BayesdropError, match=r"`correct` to be a tensor of 0/1"):
        augrc(conf, torch.tensor([2, 0]))
    with pytest.raises(BayesdropError, match=r"`confidence` to be finite"):
        aurc(torch.tensor([0.9, float("nan")]), torch.tensor([1, 0]))
    with pytest.raises(BayesdropError, match=r"`confidence` to be a non-empty tensor"):
        aurc(torch.tensor([]), torch.tensor([]))
    with pytest.raises(BayesdropError, match=r"`coverage` to be a number in \[0, 1\]"):
        risk_at_coverage(conf, torch.tensor([1, 0]), 80)
    with pytest.raises(BayesdropError, match=r"`risk` to be a number in \[0, 1\]"):
        coverage_at_risk(conf, torch.tensor([1, 0]), risk=-0.1)
