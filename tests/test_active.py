"""Acquisition functions against direct formulas and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

import bayesdrop as bd
from bayesdrop import active
from bayesdrop.active._acquisition import _joint_entropy_with


def _probs(n=20, k=7, c=4, seed=0, concentration=0.7):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.dirichlet([concentration] * c, size=(n, k)))


def _entropy(p):
    p = np.asarray(p)
    return float(-(p[p > 0] * np.log(p[p > 0])).sum())


def test_single_point_scores_equal_their_definitions():
    probs = _probs()
    p = probs.numpy()
    mean = p.mean(1)
    h_mean = np.array([_entropy(row) for row in mean])
    mean_h = np.array([np.mean([_entropy(s) for s in point]) for point in p])
    votes = np.array([np.bincount(point.argmax(-1), minlength=p.shape[2]).max() for point in p])
    ordered = np.sort(mean, -1)
    expected = {
        "bald": h_mean - mean_h,
        "max_entropy": h_mean,
        "variation_ratio": 1 - votes / p.shape[1],
        "mean_std": p.std(1).mean(-1),
        "margin": 1 - (ordered[:, -1] - ordered[:, -2]),
        "least_confidence": 1 - mean.max(-1),
    }
    for name, value in expected.items():
        assert np.allclose(active.score(name, probs).numpy(), value, atol=1e-10), name
        assert np.allclose(getattr(active, name)(probs).numpy(), value, atol=1e-10), name


def test_scores_from_the_engine_running_sums_equal_those_from_kept_samples():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Dropout(0.4), nn.Linear(32, 4)).eval()
    x = torch.randn(30, 5)
    kept = bd.wrap(net).predict(x, samples=40, seed=1, keep_samples=True, consistent=True)
    streamed = bd.wrap(net).predict(x, samples=40, seed=1, consistent=True)
    for name in ("bald", "max_entropy", "variation_ratio", "mean_std", "margin", "least_confidence"):
        assert torch.allclose(active.score(name, streamed), active.score(name, kept.samples), atol=1e-5), name


def _exact_joint_entropy(probs, indices):
    """H(y_i for i in indices) by enumerating every label tuple."""
    k, c = probs.shape[1], probs.shape[2]
    total = 0.0
    for labels in itertools.product(range(c), repeat=len(indices)):
        joint = np.mean([np.prod([probs[i, m, y] for i, y in zip(indices, labels, strict=True)]) for m in range(k)])
        if joint > 0:
            total -= joint * math.log(joint)
    return total


def _greedy_reference(probs, n):
    p = probs.numpy()
    conditional = [np.mean([_entropy(s) for s in point]) for point in p]
    chosen = []
    for _ in range(n):
        gains = {
            i: _exact_joint_entropy(p, chosen + [i]) - sum(conditional[j] for j in chosen + [i])
            for i in range(len(p))
            if i not in chosen
        }
        chosen.append(max(gains, key=gains.get))
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchbald_exact_equals_brute_force_greedy(seed):
    probs = _probs(n=7, k=5, c=3, seed=seed)
    assert active.batchbald(probs, 3).tolist() == _greedy_reference(probs, 3)


def test_batchbald_of_one_point_is_the_bald_argmax():
    probs = _probs(n=50, seed=4)
    assert int(active.batchbald(probs, 1)[0]) == int(active.bald(probs).argmax())


def test_batchbald_avoids_a_duplicate_that_bald_would_take_twice():
    probs = _probs(n=12, k=8, c=3, seed=5)
    top = int(active.bald(probs).argmax())
    probs = torch.cat([probs, probs[top : top + 1]])  # an exact copy of the most informative point
    picks = active.batchbald(probs, 2).tolist()
    assert picks[0] in (top, 12) and set(picks) != {top, 12}
    assert set(active.bald(probs).topk(2).indices.tolist()) == {top, 12}


def test_sampled_joint_entropy_approaches_the_exact_one():
    probs = _probs(n=6, k=6, c=3, seed=6)
    chosen, candidates = [0, 1, 2], torch.arange(3, 6)
    k = probs.shape[1]
    # exact: every configuration of the chosen points
    log_joint = torch.zeros(k, 1, dtype=torch.float64)
    for i in chosen:
        log_joint = (log_joint[:, :, None] + probs[i].log()[:, None, :]).reshape(k, -1)
    m = log_joint.shape[1]
    exact = _joint_entropy_with(log_joint, torch.ones(m), torch.zeros(m), probs, candidates)
    reference = [_exact_joint_entropy(probs.numpy(), chosen + [int(i)]) for i in candidates]
    assert np.allclose(exact.numpy(), reference, atol=1e-9)
    # sampled: configurations drawn from the joint, one model each
    generator = torch.Generator().manual_seed(0)
    samples = 40_000
    model_of = torch.arange(samples) % k
    log_sampled = torch.zeros(k, samples, dtype=torch.float64)
    for i in chosen:
        labels = torch.multinomial(probs[i][model_of], 1, generator=generator)[:, 0]
        log_sampled = log_sampled + probs[i].log()[:, labels]
    log_p = torch.logsumexp(log_sampled, 0) - math.log(k)
    weights = torch.full((samples,), 1 / samples, dtype=torch.float64)
    sampled = _joint_entropy_with(log_sampled, weights, log_p, probs, candidates)
    assert np.allclose(sampled.numpy(), reference, atol=0.03)
    single = _joint_entropy_with(log_sampled, weights, log_p, probs, candidates, torch.float32)
    assert np.allclose(single.numpy(), sampled.numpy(), atol=1e-4)  # float32 products: far below the MC error


def test_batchbald_with_sampled_configurations_is_seeded_and_distinct():
    probs = _probs(n=40, k=10, c=5, seed=7)
    a = active.batchbald(probs, 5, samples=2000, seed=3, exact_limit=25)
    b = active.batchbald(probs, 5, samples=2000, seed=3, exact_limit=25)
    assert torch.equal(a, b) and len(set(a.tolist())) == 5
    exact = active.batchbald(probs, 5)
    assert a[:2].tolist() == exact[:2].tolist()  # exact up to 25 configurations: the first two picks agree


def test_epig_equals_the_definition():
    pool, target = _probs(n=5, k=6, c=3, seed=8), _probs(n=4, k=6, c=2, seed=9)
    p, t = pool.numpy(), target.numpy()
    expected = []
    for i in range(len(p)):
        values = []
        for j in range(len(t)):
            joint = np.einsum("kc,kd->cd", p[i], t[j]) / p.shape[1]
            independent = np.outer(p[i].mean(0), t[j].mean(0))
            values.append(float((joint * np.log(joint / independent)).sum()))
        expected.append(np.mean(values))
    assert np.allclose(active.epig(pool, target).numpy(), expected, atol=1e-10)


def test_stochastic_batch_is_seeded_distinct_and_follows_the_weights():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4])
    picks = active.stochastic_batch(scores, 3, seed=1)
    assert torch.equal(picks, active.stochastic_batch(scores, 3, seed=1)) and len(set(picks.tolist())) == 3
    first = [int(active.stochastic_batch(scores, 1, mode="power", seed=s)[0]) for s in range(4000)]
    frequency = np.bincount(first, minlength=4) / 4000
    assert np.allclose(frequency, scores.numpy() / scores.sum().item(), atol=0.03)
    cold = active.stochastic_batch(scores, 2, mode="softrank", temperature=1e-3, seed=2)
    assert cold.tolist() == [3, 2]  # a cold temperature is top-k


def test_bad_inputs_name_the_argument():
    with pytest.raises(bd.BayesdropError, match="probs"):
        active.bald(torch.rand(3, 4))
    with pytest.raises(bd.BayesdropError, match="probs"):
        active.bald(torch.rand(3, 4, 2) + 1)
    with pytest.raises(bd.BayesdropError, match="`n`"):
        active.batchbald(_probs(n=3), 4)
    with pytest.raises(bd.BayesdropError, match="target_probs"):
        active.epig(_probs(k=7), _probs(k=5))
    with pytest.raises(bd.BayesdropError, match="mode"):
        active.stochastic_batch(torch.rand(5), 2, mode="top")
    with pytest.raises(ValueError, match="heuristic|not a valid"):
        active.score("bold", _probs())
