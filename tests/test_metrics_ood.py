"""ROC / PR / OOD metrics against scikit-learn, with ties, and a hand-checked FPR95."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesdrop import BayesdropError
from bayesdrop.metrics import (
    aupr_in,
    aupr_out,
    auroc,
    average_precision,
    error_auroc,
    fpr_at_95_tpr,
    fpr_at_tpr,
    ood_auroc,
    ood_metrics,
    precision_recall_curve,
    roc_curve,
)


def _reference_sklearn_auroc(scores, labels) -> float:
    return sklearn.metrics.roc_auc_score(labels, scores)


def _reference_sklearn_average_precision(scores, labels) -> float:
    return sklearn.metrics.average_precision_score(labels, scores)


def _reference_sklearn_fpr_at_tpr(scores, labels, level: float) -> float:
    fpr, tpr, _ = sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[np.argmax(tpr >= level)])


def _labels_scores(n: int, seed: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.4
    labels[0], labels[1] = True, False
    scores = rng.integers(0, levels, n) + labels * rng.integers(0, 3, n)  # ties, some signal
    return scores.astype(float), labels


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 80), seed=st.integers(0, 2**16), levels=st.integers(1, 30))
def test_against_sklearn_with_ties(n: int, seed: int, levels: int) -> None:
    scores, labels = _labels_scores(n, seed, levels)
    assert auroc(scores, labels) == pytest.approx(_reference_sklearn_auroc(scores, labels))
    assert average_precision(scores, labels) == pytest.approx(_reference_sklearn_average_precision(scores, labels))
    for level in (0.5, 0.95, 1.0):
        assert fpr_at_tpr(scores, labels, level) == pytest.approx(_reference_sklearn_fpr_at_tpr(scores, labels, level))


def test_curves_match_sklearn() -> None:
    scores, labels = _labels_scores(200, seed=3, levels=20)
    fpr, tpr, thr = roc_curve(scores, labels)
    ref_fpr, ref_tpr, ref_thr = sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), ref_fpr)
    np.testing.assert_allclose(tpr.numpy(), ref_tpr)
    np.testing.assert_allclose(thr.numpy()[1:], ref_thr[1:])
    precision, recall, thr = precision_recall_curve(scores, labels)
    ref_p, ref_r, ref_t = sklearn.metrics.precision_recall_curve(labels, scores)
    # sklearn: increasing threshold, stops at full recall, ends with (1, 0).
    k = len(ref_t)
    np.testing.assert_allclose(precision.numpy()[:k][::-1], ref_p[:-1])
    np.testing.assert_allclose(recall.numpy()[:k][::-1], ref_r[:-1])
    np.testing.assert_allclose(thr.numpy()[:k][::-1], ref_t)


def test_hand_checked_fpr95() -> None:
    # 20 in-distribution inputs with uncertainty 0..19, 4 OOD inputs with 3.5, 10.5, 18.5, 30.
    # Accepting 95% of in-distribution (19 of 20) means uncertainty <= 18: OOD 3.5 and 10.5
    # are accepted too: FPR95 = 2 / 4.
    score_in = torch.arange(20, dtype=torch.float64)
    score_out = torch.tensor([3.5, 10.5, 18.5, 30.0], dtype=torch.float64)
    assert fpr_at_95_tpr(score_in, score_out) == 0.5
    m = ood_metrics(score_in, score_out)
    assert m["fpr95"] == 0.5
    # AUROC: pairs (in, out) with out more uncertain: 4 + 11 + 19 + 20 = 54 of 80.
    assert m["auroc"] == pytest.approx(54 / 80)
    assert ood_auroc(score_in, score_out) == m["auroc"]


def test_ood_forms_against_sklearn() -> None:
    rng = np.random.default_rng(0)
    score_in, score_out = rng.normal(0, 1, 300), rng.normal(1, 1, 100)
    scores = np.concatenate([score_in, score_out])
    is_ood = np.r_[np.zeros(300), np.ones(100)]
    assert ood_auroc(score_in, score_out) == pytest.approx(_reference_sklearn_auroc(scores, is_ood))
    assert aupr_out(score_in, score_out) == pytest.approx(_reference_sklearn_average_precision(scores, is_ood))
    assert aupr_in(score_in, score_out) == pytest.approx(_reference_sklearn_average_precision(-scores, 1 - is_ood))
    assert fpr_at_95_tpr(score_in, score_out) == pytest.approx(_reference_sklearn_fpr_at_tpr(-scores, 1 - is_ood, 0.95))


def test_error_auroc() -> None:
    rng = np.random.default_rng(1)
    correct = rng.random(100) < 0.8
    uncertainty = rng.random(100) + (~correct) * 0.5
    assert error_auroc(uncertainty, correct) == pytest.approx(_reference_sklearn_auroc(uncertainty, ~correct))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_properties(n: int, seed: int) -> None:
    scores, labels = _labels_scores(n, seed, levels=10)
    a = auroc(scores, labels)
    assert 0 <= a <= 1
    assert auroc(-scores, labels) == pytest.approx(1 - a)  # reversing the ranking
    assert auroc(2 * scores + 3, labels) == pytest.approx(a)  # monotone transform
    perm = np.random.default_rng(seed).permutation(n)
    assert auroc(scores[perm], labels[perm]) == pytest.approx(a)
    assert 0 <= average_precision(scores, labels) <= 1
    # Perfect separation.
    assert auroc(labels.astype(float), labels) == 1.0
    assert fpr_at_tpr(labels.astype(float), labels, 0.95) == 0.0


def test_single_class_and_bad_inputs() -> None:
    with pytest.raises(BayesdropError, match=r"`labels` to contain both classes.*only positive"):
        auroc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))
    with pytest.raises(BayesdropError, match=r"`labels` to contain both classes.*only negative"):
        average_precision(torch.tensor([0.1, 0.2]), torch.tensor([0, 0]))
    with pytest.raises(BayesdropError, match=r"`score_out` to be a non-empty tensor"):
        ood_auroc(torch.tensor([0.1, 0.2]), torch.tensor([]))
    with pytest.raises(BayesdropError, match=r"`score_in` to be finite"):
        fpr_at_95_tpr(torch.tensor([0.1, float("inf")]), torch.tensor([0.3]))
    with pytest.raises(BayesdropError, match=r"`labels` to have length 2"):
        auroc(torch.tensor([0.1, 0.2]), torch.tensor([1, 0, 1]))
    with pytest.raises(BayesdropError, match=r"`tpr` to be a number in \[0, 1\]"):
        fpr_at_tpr(torch.tensor([0.1, 0.2]), torch.tensor([1, 0]), tpr=95)
    with pytest.raises(BayesdropError, match=r"`correct` to contain both right and wrong"):
        error_auroc(torch.tensor([0.1, 0.2]), torch.tensor([True, True]))
    with pytest.raises(BayesdropError, match=r"`scores` to have 1 dimension"):
        auroc(torch.zeros(2, 2), torch.tensor([1, 0]))
