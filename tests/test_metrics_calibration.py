"""Calibration errors: hand-checked bins, a direct loop reference, properties, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesdrop import BayesdropError
from bayesdrop.metrics import adaptive_ece, calibration_bins, classwise_ece, ece, mce


def _reference_loop_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[float, float]:
    """ECE and MCE by an explicit loop over intervals (lo, hi] (confidence 0 in the first)."""
    total, worst = 0.0, 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        mask = (conf > lo) & (conf <= hi)
        if b == 0:
            mask |= conf == 0
        if mask.any():
            gap = abs(correct[mask].mean() - conf[mask].mean())
            total += mask.sum() / len(conf) * gap
            worst = max(worst, gap)
    return total, worst


def _reference_loop_classwise_ece(probs: np.ndarray, target: np.ndarray, n_bins: int) -> float:
    return float(
        np.mean(
            [_reference_loop_ece(probs[:, c], (target == c).astype(float), n_bins)[0] for c in range(probs.shape[1])]
        )
    )


def _reference_loop_adaptive_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """Equal-mass bins via np.array_split of the sorted confidences (no ties in the data)."""
    order = np.argsort(conf)
    total = 0.0
    for chunk in np.array_split(order, n_bins):
        if len(chunk):
            total += len(chunk) / len(conf) * abs(correct[chunk].mean() - conf[chunk].mean())
    return total


def _data(n: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(n, c, generator=g, dtype=torch.float64), -1)
    return probs, torch.randint(0, c, (n,), generator=g)


def test_hand_checked_bins() -> None:
    probs = torch.tensor(
        [
            [0.0, 0.3, 0.7],  # target 2: confidence 0.7 (edge of (0.6, 0.7]), right
            [0.35, 0.33, 0.32],  # target 1: confidence 0.35, wrong
            [0.9, 0.1, 0.0],  # target 0: confidence 0.9, right
            [0.9, 0.05, 0.05],  # target 1: confidence 0.9, wrong
            [1.0, 0.0, 0.0],  # target 0: confidence 1.0, right
        ],
        dtype=torch.float64,
    )
    target = torch.tensor([2, 1, 0, 1, 0])
    bins = calibration_bins(probs, target, n_bins=10)
    assert bins.counts.tolist() == [0, 0, 0, 1, 0, 0, 1, 0, 2, 1]
    assert bins.accuracy[[3, 6, 8, 9]].tolist() == [0.0, 1.0, 0.5, 1.0]
    assert bins.confidence[[3, 6, 8, 9]].tolist() == pytest.approx([0.35, 0.7, 0.9, 1.0])
    # (|0 - 0.35| + |1 - 0.7| + 2 |0.5 - 0.9| + |1 - 1|) / 5
    assert ece(probs, target, n_bins=10) == pytest.approx((0.35 + 0.3 + 0.8) / 5)
    assert mce(probs, target, n_bins=10) == pytest.approx(0.4)


def test_bin_edges_are_right_closed() -> None:
    # Confidence exactly 0.6 belongs to (0.5, 0.6], not (0.6, 0.7].
    probs = torch.tensor([[0.6, 0.4]], dtype=torch.float64)
    bins = calibration_bins(probs, torch.tensor([0]), n_bins=10)
    assert bins.counts.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_against_loop_reference(n_bins: int) -> None:
    probs, target = _data(300, 4, seed=n_bins)
    conf, pred = probs.max(1)
    correct = (pred == target).double().numpy()
    ref_ece, ref_mce = _reference_loop_ece(conf.numpy(), correct, n_bins)
    assert ece(probs, target, n_bins) == pytest.approx(ref_ece, abs=1e-12)
    assert mce(probs, target, n_bins) == pytest.approx(ref_mce, abs=1e-12)
    assert classwise_ece(probs, target, n_bins) == pytest.approx(
        _reference_loop_classwise_ece(probs.numpy(), target.numpy(), n_bins), abs=1e-12
    )
    assert adaptive_ece(probs, target, n_bins) == pytest.approx(
        _reference_loop_adaptive_ece(conf.numpy(), correct, n_bins), abs=1e-12
    )


def test_one_bin_is_the_gap_between_accuracy_and_mean_confidence() -> None:
    probs, target = _data(100, 3, seed=7)
    conf, pred = probs.max(1)
    gap = abs((pred == target).double().mean() - conf.mean()).item()
    assert ece(probs, target, n_bins=1) == pytest.approx(gap)
    assert adaptive_ece(probs, target, n_bins=1) == pytest.approx(gap)


def test_adaptive_ece_with_ties_ignores_example_order() -> None:
    probs = torch.tensor([[0.6, 0.4]] * 4 + [[0.9, 0.1]] * 2, dtype=torch.float64)
    target = torch.tensor([0, 1, 0, 1, 0, 0])
    values = {
        adaptive_ece(probs[perm], target[perm], n_bins=3)
        for perm in (
            torch.arange(6),
            torch.tensor([1, 3, 0, 2, 5, 4]),
            torch.tensor([5, 0, 4, 1, 3, 2]),
        )
    }
    assert len(values) == 1
    # Ties keep 0.6 together: bins {0.6 x4} and {0.9 x2}: (4 * 0.1 + 2 * 0.1) / 6.
    assert values.pop() == pytest.approx(0.1)


def test_more_bins_than_examples() -> None:
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=torch.float64)
    target = torch.tensor([0, 0])
    assert adaptive_ece(probs, target, n_bins=15) == pytest.approx((0.3 + 0.8) / 2)


def test_perfectly_calibrated_bins_have_zero_ece() -> None:
    # Confidence 0.75 in every row, 3 of 4 correct.
    probs = torch.tensor([[0.75, 0.25]] * 4, dtype=torch.float64)
    target = torch.tensor([0, 0, 0, 1])
    assert ece(probs, target) == pytest.approx(0.0, abs=1e-15)
    assert mce(probs, target) == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    c=st.integers(2, 5),
    n_bins=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_ranges_and_permutation_invariance(n: int, c: int, n_bins: int, seed: int) -> None:
    probs, target = _data(n, c, seed)
    perm = torch.randperm(n)
    values = {}
    for metric in (ece, adaptive_ece, mce, classwise_ece):
        v = metric(probs, target, n_bins)
        assert 0 <= v <= 1
        assert metric(probs[perm], target[perm], n_bins) == pytest.approx(v, abs=1e-12)
        values[metric.__name__] = v
    assert values["mce"] >= values["ece"] - 1e-12


def test_bad_n_bins() -> None:
    probs, target = _data(5, 2, seed=0)
    with pytest.raises(BayesdropError, match=r"`n_bins` to be a positive integer, but got 0"):
        ece(probs, target, n_bins=0)
    with pytest.raises(BayesdropError, match=r"`n_bins` to be a positive integer, but got 2.5"):
        adaptive_ece(probs, target, n_bins=2.5)


def test_bad_probs_and_labels() -> None:
    with pytest.raises(BayesdropError, match=r"`probs`.*suggest logits"):
        ece(torch.tensor([[3.0, -2.0]]), torch.tensor([0]))
    with pytest.raises(BayesdropError, match=r"`target` to have length 1"):
        classwise_ece(torch.tensor([[0.3, 0.7]]), torch.tensor([0, 1]))
    with pytest.raises(BayesdropError, match=r"`target` to hold labels in \[0, 1\]"):
        mce(torch.tensor([[0.3, 0.7]]), torch.tensor([5]))
