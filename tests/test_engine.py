"""The sampling engine: split vs unsplit, seeding, chunking, streaming reductions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import bayesdrop as bd
from _models import Attention, ConvBN, Functional, GaussianHead, ReversedOrder, force_full_replication

IMAGES = torch.randn(6, 1, 8, 8)


def _unsplit(mc: bd.MCModel) -> bd.MCModel:
    """The same wrapper forced to replicate the whole model."""
    mc.predict(IMAGES if isinstance(mc.model, ConvBN) else _input(mc.model), samples=1)
    force_full_replication(mc)
    return mc


def _input(model):
    if isinstance(model, Functional):
        return torch.randn(5, 6, dtype=torch.float64)
    if isinstance(model, ReversedOrder):
        return torch.randn(5, 5, dtype=torch.float64)
    if isinstance(model, Attention):
        return torch.randn(3, 4, 8, dtype=torch.float64)
    return IMAGES.double()


@pytest.mark.parametrize(
    "make,method,p",
    [
        (ConvBN, "dropout", None),
        (ConvBN, "gaussian", None),
        (ConvBN, "dropconnect", 0.2),
        (Functional, "dropout", None),
        (ReversedOrder, "dropout", None),
        (Attention, "dropout", None),
    ],
)
def test_split_equals_unsplit(make, method, p):
    torch.manual_seed(0)
    model = make().double().eval()
    x = _input(model)
    split = bd.wrap(model, method=method, p=p)
    a = split.predict(x, samples=12, seed=7, keep_samples=True)
    if make is not Attention or method != "dropout":
        pass
    full = bd.wrap(model, method=method, p=p)
    full.predict(x, samples=1)
    force_full_replication(full)
    b = full.predict(x, samples=12, seed=7, keep_samples=True)
    assert "prefix cached" in split.describe()
    # The deterministic part runs on B rows instead of T*B rows: BLAS may round differently.
    torch.testing.assert_close(a.samples, b.samples, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.epistemic, b.epistemic, rtol=1e-10, atol=1e-12)


def test_split_caches_the_conv_trunk():
    mc = bd.wrap(ConvBN().eval(), last_layer=True)
    mc.predict(IMAGES, samples=2)
    split = mc._runtime.route.split
    assert split is not None
    tail_ops = {n.target for n in split.tail.graph.nodes if n.op == "call_module"}
    assert tail_ops == {"drop", "fc2"}  # conv, bn, fc1 computed once


@pytest.mark.parametrize("chunk", [1, 3, 7, 40])
@pytest.mark.parametrize("method,p", [("dropout", None), ("gaussian", None), ("dropconnect", 0.3)])
def test_same_seed_same_numbers_whatever_the_chunking(chunk, method, p):
    mc = bd.wrap(ConvBN().double().eval(), method=method, p=p)
    x = IMAGES.double()
    reference = mc.predict(x, samples=40, seed=11, keep_samples=True, chunk_size=40)
    other = mc.predict(x, samples=40, seed=11, keep_samples=True, chunk_size=chunk)
    # Same random numbers; BLAS may round a batch of 6 rows and one of 240 differently (1 ulp).
    torch.testing.assert_close(reference.samples, other.samples, rtol=1e-13, atol=1e-15)
    for name in ("mean", "total", "aleatoric", "epistemic", "variation_ratio", "variance"):
        torch.testing.assert_close(getattr(reference, name), getattr(other, name), rtol=1e-12, atol=1e-14)


def test_different_seeds_differ_and_seed_none_draws_from_torch():
    mc = bd.wrap(ConvBN().eval())
    a = mc.predict(IMAGES, samples=10, seed=1)
    b = mc.predict(IMAGES, samples=10, seed=2)
    assert not torch.equal(a.mean, b.mean)
    torch.manual_seed(3)
    c = mc.predict(IMAGES, samples=10, seed=None)
    torch.manual_seed(3)
    d = mc.predict(IMAGES, samples=10, seed=None)
    assert torch.equal(c.mean, d.mean)


def test_streaming_reductions_equal_reductions_of_kept_samples():
    mc = bd.wrap(Functional().double().eval())
    x = torch.randn(7, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (7,))
    pred = mc.predict(x, samples=50, seed=0, keep_samples=True, chunk_size=8, target=y)
    log_samples = pred.samples.log()
    u = bd.uncertainty
    torch.testing.assert_close(pred.mean, pred.samples.mean(1))
    torch.testing.assert_close(pred.total, u.predictive_entropy(log_samples))
    torch.testing.assert_close(pred.aleatoric, u.expected_entropy(log_samples))
    torch.testing.assert_close(pred.epistemic, u.mutual_information(log_samples))
    torch.testing.assert_close(pred.variation_ratio, u.variation_ratio(log_samples))
    torch.testing.assert_close(pred.variance, pred.samples.var(1, correction=0))
    torch.testing.assert_close(pred.log_likelihood, pred.samples.mean(1)[torch.arange(7), y].log())
    torch.testing.assert_close(pred.total, pred.aleatoric + pred.epistemic)


def test_regression_point_model_with_tau():
    model = nn.Sequential(nn.Linear(3, 20), nn.ReLU(), nn.Dropout(0.3), nn.Linear(20, 1)).double().eval()
    x, y = torch.randn(9, 3, dtype=torch.float64), torch.randn(9, 1, dtype=torch.float64)
    tau = 4.0
    pred = bd.wrap(model, task="regression", tau=tau).predict(
        x, samples=100, seed=0, keep_samples=True, target=y, chunk_size=16
    )
    means = pred.samples  # (B, T, 1)
    torch.testing.assert_close(pred.mean, means.mean(1))
    torch.testing.assert_close(pred.epistemic, means.var(1, correction=0))
    torch.testing.assert_close(pred.aleatoric, torch.full_like(pred.mean, 1 / tau))
    # gal2016's test log-likelihood, written out
    ll = (
        torch.logsumexp(-0.5 * tau * (y[:, None] - means) ** 2, 1).squeeze(-1)
        - math.log(100)
        - 0.5 * math.log(2 * math.pi)
        + 0.5 * math.log(tau)
    )
    torch.testing.assert_close(pred.log_likelihood, ll)


def test_gaussian_head_streaming_equals_kept_with_logvar():
    class LogVar(GaussianHead):
        def forward(self, x):
            mean, var = super().forward(x)
            return mean, var.log()

    mc = bd.wrap(LogVar().double().eval(), task="regression", output="mean_logvar")
    x = torch.randn(4, 3, dtype=torch.float64)
    a = mc.predict(x, samples=30, seed=0, keep_samples=True, chunk_size=4)
    m, al, ep = bd.uncertainty.mixture_moments(a.samples, a.sample_variances)
    torch.testing.assert_close(a.aleatoric, al)
    torch.testing.assert_close(a.epistemic, ep)


def test_predict_loader_concatenates_batches_and_reads_targets():
    mc = bd.wrap(ConvBN().eval())
    y = torch.randint(0, 3, (6,))
    loader = [(IMAGES[:4], y[:4]), (IMAGES[4:], y[4:])]
    pred = mc.predict_loader(loader, samples=10, seed=0, progress=True)
    assert pred.mean.shape == (6, 3) and pred.log_likelihood.shape == (6,) and pred.n_samples == 10
    first = mc.predict(IMAGES[:4], samples=10, seed=0, target=y[:4])
    assert not torch.equal(first.mean, pred.mean[:4])  # each batch has its own stream
    again = mc.predict_loader(loader, samples=10, seed=0)
    torch.testing.assert_close(again.mean, pred.mean, rtol=1e-6, atol=1e-7)  # rounding: see chunking test
    with pytest.raises(bd.BayesdropError, match="argument `loader`"):
        mc.predict_loader([], samples=2)


class Picky(nn.Module):
    """Refuses batches above ``limit`` rows with ``error``, the way an exhausted allocator would."""

    def __init__(self, error: Exception, limit: int = 24):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.5)
        self.error, self.limit = error, limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise self.error
        return self.fc(self.drop(x))


CPU_ALLOCATOR_FAILURE = RuntimeError(
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 2147483648 bytes."
)


@pytest.mark.parametrize(
    "error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), CPU_ALLOCATOR_FAILURE]
)
def test_out_of_memory_halves_the_chunk_and_keeps_the_numbers(error):
    x = torch.randn(4, 4)
    picky = bd.wrap(Picky(error).eval())
    got = picky.predict(x, samples=32, seed=0, chunk_size=32, keep_samples=True)
    plain = Picky(error).eval()
    plain.load_state_dict(picky.model.state_dict())
    reference = bd.wrap(plain).predict(x, samples=32, seed=0, chunk_size=4, keep_samples=True)
    assert torch.equal(got.samples, reference.samples)


def test_an_error_that_only_mentions_memory_is_not_taken_for_out_of_memory():
    mc = bd.wrap(Picky(RuntimeError("my model ran out of memory budget checks"), limit=4).eval())
    with pytest.raises(bd.BayesdropError, match="out of memory budget checks"):
        mc.predict(torch.randn(4, 4), samples=8, seed=0, chunk_size=8)


def test_out_of_memory_in_the_measuring_pass_is_backed_off():
    # Every pass over 4 rows fails, the measuring pass included: the engine goes one sample at a time.
    mc = bd.wrap(Picky(torch.OutOfMemoryError("CUDA out of memory"), limit=3).eval())
    pred = mc.predict(torch.randn(3, 4), samples=5, seed=0, keep_samples=True)
    assert pred.samples.shape == (3, 5, 3)


def test_memory_budget_bounds_the_chunk():
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(100, 2)).eval()
    rows: list[int] = []
    model[1].register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    x = torch.randn(10, 100)
    mc = bd.wrap(model, memory_budget=200_000, example_input=x)
    rows.clear()
    mc.predict(x, samples=500, seed=0)
    assert rows[0] == 10 and sum(rows[1:]) == 500 * 10  # one sample measured and thrown away, then 500
    assert 10 <= max(rows) < 500 * 10  # chunked, not all 500 samples at once
    chunks = rows[1:]
    rows.clear()
    mc.predict(x, samples=500, seed=0)
    assert rows == chunks  # measured once: the second call is sized from memory, no extra pass
    rows.clear()
    mc.predict(x[:3], samples=500, seed=0)
    assert sum(rows) == 500 * 3  # the size is remembered per row, so a smaller batch is not measured again
    default = bd.wrap(model, example_input=x)
    rows.clear()
    default.predict(x, samples=500, seed=0)
    assert rows == [10, 500 * 10]  # default budget: one sample to measure, then all 500 at once


def test_same_call_gives_bitwise_the_same_samples_whatever_came_before():
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 5)).eval()
    x = torch.randn(33, 20)
    first = bd.wrap(model).predict(x, samples=40, seed=3, keep_samples=True)
    mc = bd.wrap(model)
    mc.predict(x[:7], samples=2, seed=1)  # an earlier call on another batch size
    again = mc.predict(x, samples=40, seed=3, keep_samples=True)
    assert torch.equal(first.samples, again.samples)


@settings(max_examples=15, deadline=None)
@given(
    hidden=st.integers(2, 12),
    p=st.floats(0.05, 0.8),
    samples=st.integers(1, 30),
    chunk=st.integers(1, 30),
    seed=st.integers(0, 2**40),
)
def test_property_chunk_invariance_and_decomposition(hidden, p, samples, chunk, seed):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, hidden), nn.Tanh(), nn.Dropout(p), nn.Linear(hidden, 4)).eval()
    x = torch.randn(5, 3)
    mc = bd.wrap(model)
    a = mc.predict(x, samples=samples, seed=seed, keep_samples=True)
    b = mc.predict(x, samples=samples, seed=seed, keep_samples=True, chunk_size=chunk)
    torch.testing.assert_close(a.samples, b.samples, rtol=1e-5, atol=1e-7)
    assert (a.epistemic >= 0).all() and (a.aleatoric >= 0).all()
    torch.testing.assert_close(a.total, a.aleatoric + a.epistemic, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.mean.sum(-1), torch.ones(5))
    assert ((a.variation_ratio >= 0) & (a.variation_ratio <= 1 - 1 / 4 + 1e-6)).all()


def test_p_zero_gives_zero_variance():
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2)).eval()
    mc = bd.wrap(model, method="gaussian", p=1e-9)
    pred = mc.predict(torch.randn(4, 3), samples=5, keep_samples=True)
    assert pred.epistemic.max() < 1e-6


def test_input_is_moved_to_the_model_device_and_float64_kept():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5)).double().eval()
    pred = bd.wrap(model, task="regression").predict(torch.randn(2, 3, dtype=torch.float64), samples=3)
    assert pred.mean.dtype == torch.float64


def test_flops_split_into_prefix_and_tail():
    model = ConvBN().eval()
    mc = bd.wrap(model, last_layer=True)
    cost = mc.flops(IMAGES, samples=50)
    assert cost["prefix"] > 0 and cost["per_sample"] > 0
    assert cost["prefix"] + cost["per_sample"] == cost["forward"]
    assert cost["engine"] == cost["prefix"] + 50 * cost["per_sample"] < cost["naive"] == 50 * cost["forward"]
    results = bd.metrics.evaluate(mc.predict(IMAGES, samples=50), torch.randint(0, 3, (6,)), model=mc, inputs=IMAGES)
    assert results["mc_flops_engine"] == cost["engine"]


def test_predict_inside_inference_mode_and_no_grad():
    mc = bd.wrap(ConvBN().eval())
    reference = mc.predict(IMAGES, samples=5, seed=0)
    with torch.inference_mode():
        inside = mc.predict(IMAGES, samples=5, seed=0)
    with torch.no_grad():
        also = mc.predict(IMAGES, samples=5, seed=0)
    assert torch.equal(reference.mean, inside.mean) and torch.equal(reference.mean, also.mean)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("options", "consistent"),
    [
        ({"method": "dropout"}, False),
        ({"method": "dropout", "p": 0.1}, True),
        ({"method": "dropconnect", "p": 0.2}, False),
        ({"method": "gaussian"}, False),
    ],
)
def test_cuda_matches_cpu(options, consistent):
    """The bits come from torch's Philox on the GPU and NumPy's on the CPU: the same samples."""
    model = ConvBN().double().eval()
    x = IMAGES.double()
    cpu = bd.wrap(model, **options).predict(x, samples=20, seed=4, keep_samples=True, consistent=consistent)
    gpu = bd.wrap(model.cuda(), **options).predict(
        x.cuda(), samples=20, seed=4, keep_samples=True, consistent=consistent
    )
    torch.testing.assert_close(gpu.samples.cpu(), cpu.samples, rtol=1e-9, atol=1e-12)
    model.cpu()


def test_fit_tau_maximises_the_mixture_log_likelihood():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 1)).double().eval()
    x = torch.randn(80, 2, dtype=torch.float64)
    y = model(x).detach() + 0.3 * torch.randn(80, 1, dtype=torch.float64)
    mc = bd.wrap(model, task="regression")
    tau = mc.fit_tau(x, y, samples=25, seed=5)
    assert mc.tau == tau
    means = mc.predict(x, samples=25, seed=5, keep_samples=True).samples  # the same draws as fit_tau's
    best = bd.metrics.mc_log_likelihood(means, y, tau=tau)
    for factor in (0.5, 0.9, 0.99, 1.01, 1.1, 2.0):  # a maximum, not just a good value
        assert bd.metrics.mc_log_likelihood(means, y, tau=tau * factor) < best
    after = mc.predict(x, samples=25, seed=5, target=y)
    assert after.aleatoric.flatten().tolist() == pytest.approx([1 / tau] * 80)
    assert after.log_likelihood.mean().item() == pytest.approx(best, rel=1e-9)


def test_fit_tau_of_a_deterministic_mean_is_one_over_the_mse():
    model = nn.Sequential(nn.Linear(3, 1), nn.Dropout(1e-9)).double().eval()
    x = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = model(x).detach() + torch.linspace(-1, 1, 50, dtype=torch.float64)[:, None]
    tau = bd.wrap(model, task="regression").fit_tau(x, y, samples=4)
    assert tau == pytest.approx(1 / float(((model(x).detach() - y) ** 2).mean()), rel=1e-6)


def test_fit_tau_errors_name_the_argument():
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5)).eval()
    with pytest.raises(bd.BayesdropError, match="`task`.*'regression' with output='mean'"):
        bd.wrap(model).fit_tau(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(bd.BayesdropError, match="`samples`.*>= 2"):
        bd.wrap(model, task="regression").fit_tau(torch.randn(4, 3), torch.zeros(4, 2), samples=1)
    with pytest.raises(bd.BayesdropError, match="`target`.*4 rows"):
        bd.wrap(model, task="regression").fit_tau(torch.randn(4, 3), torch.zeros(5, 2))
