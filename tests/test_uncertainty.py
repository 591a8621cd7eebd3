"""Uncertainty decompositions against SciPy and direct formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy as scipy_entropy

import bayesdrop as bd
from bayesdrop import uncertainty as u


def _reference_scipy_decomposition(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """probs (B, T, C) -> (total, aleatoric) with SciPy's entropy (natural log)."""
    total = scipy_entropy(probs.mean(1), axis=-1)
    aleatoric = scipy_entropy(probs, axis=-1).mean(1)
    return total, aleatoric


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(1, 4),
    t=st.integers(1, 12),
    c=st.integers(2, 6),
    seed=st.integers(0, 10_000),
    scale=st.floats(0.1, 20),
)
def test_decomposition_matches_scipy(b, t, c, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(scale * torch.randn(b, t, c, generator=gen, dtype=torch.float64), -1)
    total, aleatoric = _reference_scipy_decomposition(log_probs.exp().numpy())
    np.testing.assert_allclose(u.predictive_entropy(log_probs).numpy(), total, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(u.expected_entropy(log_probs).numpy(), aleatoric, rtol=1e-9, atol=1e-12)
    mi = u.mutual_information(log_probs)
    assert (mi >= 0).all()
    np.testing.assert_allclose(mi.numpy(), np.maximum(total - aleatoric, 0), atol=1e-9)
    # permuting samples changes nothing
    perm = torch.randperm(t, generator=gen)
    torch.testing.assert_close(u.mutual_information(log_probs[:, perm]), mi)


def test_stable_for_tiny_probabilities():
    log_probs = torch.tensor([[[0.0, -800.0], [-800.0, 0.0]]], dtype=torch.float64)
    assert torch.isfinite(u.predictive_entropy(log_probs)).all()
    assert u.predictive_entropy(log_probs).item() == pytest.approx(math.log(2))
    assert u.expected_entropy(log_probs).item() == pytest.approx(0.0, abs=1e-300)
    assert u.mutual_information(log_probs).item() == pytest.approx(math.log(2))


def test_variation_ratio_hand_example():
    probs = torch.tensor([[[0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.9, 0.1]]])
    assert u.variation_ratio(probs.log()).item() == pytest.approx(0.25)


def test_entropy_zero_log_zero():
    assert u.entropy(torch.tensor([1.0, 0.0])).item() == 0.0
    assert u.entropy(torch.tensor([0.25] * 4)).item() == pytest.approx(math.log(4))


def test_mixture_moments_law_of_total_variance():
    means = torch.tensor([[[1.0], [3.0]]])
    variances = torch.tensor([[[0.5], [1.5]]])
    mean, aleatoric, epistemic = u.mixture_moments(means, variances)
    assert (mean.item(), aleatoric.item(), epistemic.item()) == (2.0, 1.0, 1.0)
    # the mixture's variance by sampling agrees with aleatoric + epistemic
    gen = torch.Generator().manual_seed(0)
    comp = torch.randint(0, 2, (200_000,), generator=gen)
    draws = means.flatten()[comp] + variances.flatten()[comp].sqrt() * torch.randn(200_000, generator=gen)
    assert draws.var().item() == pytest.approx(2.0, rel=0.02)


def test_wrong_layout_is_an_error():
    with pytest.raises(bd.BayesdropError, match=r"argument `log_probs` to be a \(B, T, C\) tensor"):
        u.predictive_entropy(torch.zeros(3, 4))
