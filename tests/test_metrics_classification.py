"""Classification metrics and the uncertainty decomposition against scikit-learn and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesdrop import BayesdropError
from bayesdrop.metrics import (
    accuracy,
    brier_score,
    entropy,
    expected_entropy,
    mutual_information,
    nll,
    variation_ratio,
)


def _random_probs(n: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3 * torch.randn(n, c, generator=g, dtype=torch.float64), -1)
    target = torch.randint(0, c, (n,), generator=g)
    return probs, target


def _reference_sklearn_accuracy(probs, target) -> float:
    return sklearn.metrics.accuracy_score(target.numpy(), probs.numpy().argmax(1))


def _reference_sklearn_nll(probs, target) -> float:
    return sklearn.metrics.log_loss(target.numpy(), probs.numpy(), labels=range(probs.shape[1]))


def _reference_sklearn_brier(probs, target) -> float:
    return sklearn.metrics.brier_score_loss(
        target.numpy(), probs.numpy(), labels=range(probs.shape[1]), scale_by_half=False
    )


def _reference_scipy_entropy(probs) -> np.ndarray:
    return scipy.stats.entropy(probs.numpy(), axis=-1)


@pytest.mark.parametrize("c", [2, 3, 10])
def test_against_sklearn(c: int) -> None:
    probs, target = _random_probs(200, c, seed=c)
    assert accuracy(probs, target) == pytest.approx(_reference_sklearn_accuracy(probs, target))
    assert nll(probs, target) == pytest.approx(_reference_sklearn_nll(probs, target), rel=1e-10)
    assert brier_score(probs, target) == pytest.approx(_reference_sklearn_brier(probs, target), rel=1e-10)


def test_binary_brier_is_twice_the_binary_score() -> None:
    probs, target = _random_probs(50, 2, seed=1)
    binary = sklearn.metrics.brier_score_loss(target.numpy(), probs[:, 1].numpy())
    assert brier_score(probs, target) == pytest.approx(2 * binary)


def test_nll_from_log_probs_keeps_tiny_probabilities() -> None:
    log_p = torch.tensor([[0.0, -800.0], [-1e-3, math.log1p(-math.exp(-1e-3))]], dtype=torch.float64)
    target = torch.tensor([1, 1])
    per = nll(log_p, target, log_probs=True, reduction="none")
    assert per[0].item() == pytest.approx(800.0)
    # From probabilities, exp(-800) underflows to 0 and is clamped (finite, ~708).
    clamped = nll(log_p.exp(), target, reduction="none")
    assert math.isfinite(clamped[0].item()) and clamped[0].item() == pytest.approx(
        -math.log(torch.finfo(torch.float64).tiny)
    )
    assert per[1].item() == pytest.approx(clamped[1].item())


def test_per_example_reductions_average_to_the_mean() -> None:
    probs, target = _random_probs(30, 4, seed=2)
    assert nll(probs, target, reduction="none").mean().item() == pytest.approx(nll(probs, target))
    assert brier_score(probs, target, reduction="none").shape == (30,)


def test_half_precision_probs_are_accepted() -> None:
    probs, target = _random_probs(200, 10, seed=5)
    for dtype in (torch.float16, torch.bfloat16):
        low = probs.to(dtype)  # rows sum to 1 only within the dtype's rounding
        assert nll(low, target) == pytest.approx(nll(probs, target), rel=2e-2)
        assert brier_score(low, target) == pytest.approx(brier_score(probs, target), rel=2e-2)


def test_numpy_inputs_are_accepted() -> None:
    probs, target = _random_probs(20, 3, seed=3)
    assert accuracy(probs.numpy(), target.numpy()) == accuracy(probs, target)


def test_entropy_against_scipy() -> None:
    probs, _ = _random_probs(40, 5, seed=4)
    probs[0] = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)  # 0 log 0 = 0
    np.testing.assert_allclose(entropy(probs).numpy(), _reference_scipy_entropy(probs), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(1, 4),
    t=st.integers(1, 6),
    c=st.integers(2, 5),
    seed=st.integers(0, 2**16),
)
def test_decomposition_identity_and_ranges(b: int, t: int, c: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    log_p = torch.log_softmax(4 * torch.randn(b, t, c, generator=g, dtype=torch.float64), -1)
    total = entropy(log_p.exp().mean(1))
    ale, epi = expected_entropy(log_p), mutual_information(log_p)
    torch.testing.assert_close(total, ale + epi, atol=1e-10, rtol=0)
    assert bool((epi >= 0).all()) and bool((total <= math.log(c) + 1e-12).all())
    vr = variation_ratio(log_p)
    assert bool((vr >= 0).all()) and bool((vr <= 1 - 1 / c + 1e-12).all())
    # Permuting the samples changes nothing.
    perm = torch.randperm(t, generator=g)
    torch.testing.assert_close(mutual_information(log_p[:, perm]), epi)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), c=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_ranges_and_permutation_invariance(n: int, c: int, seed: int) -> None:
    probs, target = _random_probs(n, c, seed)
    perm = torch.randperm(n)
    for metric, hi in ((accuracy, 1.0), (brier_score, 2.0)):
        value = metric(probs, target)
        assert 0 <= value <= hi
        assert metric(probs[perm], target[perm]) == pytest.approx(value)
    assert nll(probs, target) >= 0


def test_perfect_predictions() -> None:
    target = torch.tensor([0, 2, 1])
    probs = torch.nn.functional.one_hot(target, 3).double()
    assert accuracy(probs, target) == 1.0
    assert nll(probs, target) == 0.0
    assert brier_score(probs, target) == 0.0


# ------------------------------------------------------------------------------ bad inputs
def test_logits_get_a_hint() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.1]])
    with pytest.raises(BayesdropError, match=r"`probs`.*suggest logits.*softmax"):
        accuracy(logits, torch.tensor([0, 1]))


def test_rows_not_summing_to_one() -> None:
    with pytest.raises(BayesdropError, match=r"`probs` to have rows summing to 1.*row 1 sums"):
        nll(torch.tensor([[0.5, 0.5], [0.3, 0.3]]), torch.tensor([0, 1]))


def test_small_rounding_is_tolerated() -> None:
    probs = torch.tensor([[0.5, 0.5 + 5e-5]])
    assert accuracy(probs, torch.tensor([1])) == 1.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_probs(bad: float) -> None:
    with pytest.raises(BayesdropError, match=r"`probs` to be finite.*index \(1, 0\)"):
        brier_score(torch.tensor([[0.5, 0.5], [bad, 0.5]]), torch.tensor([0, 1]))


def test_mismatched_lengths() -> None:
    with pytest.raises(BayesdropError, match=r"`target` to have length 2.*got length 3"):
        accuracy(torch.tensor([[0.5, 0.5], [0.2, 0.8]]), torch.tensor([0, 1, 1]))


def test_labels_out_of_range() -> None:
    with pytest.raises(BayesdropError, match=r"`target` to hold labels in \[0, 1\].*\[0, 2\]"):
        nll(torch.tensor([[0.5, 0.5], [0.2, 0.8]]), torch.tensor([0, 2]))
    with pytest.raises(BayesdropError, match=r"`target` to hold labels in \[0, 1\].*\[-1, 0\]"):
        nll(torch.tensor([[0.5, 0.5], [0.2, 0.8]]), torch.tensor([0, -1]))


def test_non_integer_labels() -> None:
    with pytest.raises(BayesdropError, match=r"`target` to be integer class labels"):
        accuracy(torch.tensor([[0.5, 0.5]]), torch.tensor([0.5]))


def test_empty_inputs() -> None:
    with pytest.raises(BayesdropError, match=r"`probs` to be a non-empty tensor"):
        accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


def test_wrong_shape_and_reduction() -> None:
    with pytest.raises(BayesdropError, match=r"`probs` to have 2 dimension\(s\)"):
        accuracy(torch.tensor([0.5, 0.5]), torch.tensor([0]))
    with pytest.raises(BayesdropError, match=r"`reduction` to be one of 'mean', 'none'"):
        nll(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), reduction="sum")
    with pytest.raises(BayesdropError, match=r"`probs` to be a torch.Tensor or a NumPy array"):
        accuracy("probs", torch.tensor([0]))
