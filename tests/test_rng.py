"""The counter-based generator: published test vectors, the same bits from NumPy and from torch,
the exact law of the keep decisions, and the engine paths that use them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

import bayesdrop as bd
from _models import force_full_replication
from bayesdrop import _rng
from bayesdrop.models import LeNet5, RegressionMLP

_F = (1 << 64) - 1
# Random123's kat_vectors for philox4x64-10: counter, key, output.
_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x16554D9ECA36314C, 0xDB20FE9D672D0FDC, 0xD7E772CEE186176B, 0x7E68B68AEC7BA23B)),
    ((_F, _F, _F, _F), (_F, _F), (0x87B092C3013FE90B, 0x438C3C67BE8D0224, 0x9CC7D7C69CD777B6, 0xA09CAEBF594F0BA0)),
    (
        (0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89),
        (0x452821E638D01377, 0xBE5466CF34E90C6C),
        (0xA528F45403E61D95, 0x38C72DBD566E9788, 0xA5A1610E72FD18B5, 0x57BD43B5E52B7FE6),
    ),
]
_CPU = torch.device("cpu")


def _unsigned(values: torch.Tensor) -> list[int]:
    return [v & _F for v in values.tolist()]


@pytest.mark.parametrize(("counter", "key", "expected"), _KAT)
def test_torch_philox_matches_the_published_test_vectors(counter, key, expected):
    counters = torch.tensor([[_rng._signed(c) for c in counter]], dtype=torch.int64)
    assert tuple(_unsigned(_rng.philox4x64(counters, key)[0])) == expected


@pytest.mark.parametrize(("counter", "key", "expected"), _KAT)
def test_numpy_philox_is_the_same_cipher(counter, key, expected):
    # NumPy adds one to its 256-bit counter before each block.
    words = [c for c in counter]
    for i in range(4):
        words[i] = (words[i] - 1) & _F
        if words[i] != _F:
            break
    generator = np.random.Philox(key=np.array(key, dtype=np.uint64), counter=np.array(words, dtype=np.uint64))
    assert tuple(int(v) for v in generator.random_raw(4)) == expected


@pytest.mark.parametrize("first_block", [0, 1, 12345, 2**40 + 7, 2**63 + 5])
def test_block_b_is_the_cipher_of_counter_b_plus_one_on_both_paths(first_block):
    key = (2**63 + 11, 2**62 + 3)
    from_numpy = _rng._blocks_numpy(key, first_block, 3).view(np.uint64)
    blocks = torch.tensor([_rng._signed(first_block + i) for i in range(3)], dtype=torch.int64)
    from_torch = _rng._blocks_torch(key, blocks).view(torch.int64)
    assert [int(v) for v in from_numpy] == _unsigned(from_torch)


@pytest.mark.parametrize(
    ("seed", "stream", "site"), [(0, 0, 0), (2**53 + 1, 3, 7), (-5, 2**31, 2**31 - 1), (2**64 - 1, 1, 2)]
)
def test_random_bytes_are_the_same_from_numpy_and_torch(seed, stream, site):
    a = _rng.random_bytes(seed, stream, site, 5, 7, 100, _CPU, backend="numpy")
    b = _rng.random_bytes(seed, stream, site, 5, 7, 100, _CPU, backend="torch")
    assert a.shape == (7, 100) and a.dtype == torch.uint8 and torch.equal(a, b)


def test_random_bytes_of_a_sample_do_not_depend_on_the_chunk():
    whole = _rng.random_bytes(1, 2, 3, 0, 10, 70, _CPU)
    parts = torch.cat([_rng.random_bytes(1, 2, 3, first, n, 70, _CPU) for first, n in ((0, 3), (3, 1), (4, 6))])
    assert torch.equal(whole, parts)


def test_seeds_above_two_to_the_53_do_not_collide():
    # Python ints handed to NumPy as a list go through float64: 2**53 and 2**53 + 1 would collide.
    a = _rng.random_bytes(2**53, 0, 0, 0, 1, 32, _CPU)
    b = _rng.random_bytes(2**53 + 1, 0, 0, 0, 1, 32, _CPU)
    assert not torch.equal(a, b)


def test_decision_bits_are_no_more_than_the_rate_needs():
    assert [_rng.decision_bits(_rng.keep_threshold(p)) for p in (0.5, 0.25, 0.75, 0.125, 0.1875, 0.0, 1.0)] == [
        1,
        2,
        2,
        4,
        4,
        1,
        1,
    ]
    assert _rng.decision_bits(_rng.keep_threshold(0.01171875)) == 8  # 3 / 256
    assert _rng.decision_bits(_rng.keep_threshold(0.05)) is None  # 8 bits and ties


def _reference_keep(seed, stream, site, first, n, per_sample, p, capacity):
    """The keep law written out element by element: U < K for a 32-bit U whose leading bits are
    read first (``bits`` of them, packed low bits first), and, on a tie of the leading byte, the
    next 24 bits of the sample's reserve, or of the overflow stream."""
    threshold = _rng.keep_threshold(p)
    bits = _rng.decision_bits(threshold)
    if bits is not None:
        raw = _rng.random_bytes(seed, stream, site, first, n, math.ceil(per_sample * bits / 8), _CPU).numpy()
        keep = np.zeros((n, per_sample), dtype=bool)
        for r in range(n):
            for e in range(per_sample):
                value = (int(raw[r, e * bits // 8]) >> (e * bits % 8)) & ((1 << bits) - 1)
                keep[r, e] = value < threshold >> (32 - bits)
        return keep
    raw = _rng.random_bytes(seed, stream, site, first, n, per_sample + 3 * capacity, _CPU).numpy()
    overflow_key = _rng._site_key(seed, stream, site, overflow=True)
    keep = np.zeros((n, per_sample), dtype=bool)
    for r in range(n):
        rank = 0
        for e in range(per_sample):
            lead = int(raw[r, e])
            if lead != threshold >> 24:
                keep[r, e] = lead < threshold >> 24
                continue
            if rank < capacity:
                low = raw[r, per_sample + 3 * rank : per_sample + 3 * rank + 3]
            else:
                low = _rng._blocks_numpy(overflow_key, (first + r) * per_sample + e, 1)[:3]
            rank += 1
            u = lead << 24 | int(low[0]) | int(low[1]) << 8 | int(low[2]) << 16
            keep[r, e] = u < threshold
    return keep


@pytest.mark.parametrize("p", [0.5, 0.25, 0.1875, 0.05, 0.3, 0.01171875])
@pytest.mark.parametrize("capacity", [None, 0, 1])
def test_keep_decisions_follow_the_law_on_both_paths(p, capacity):
    n, rows, width = 6, 5, 181  # 905 units per sample: about 3.5 ties each at a non-dyadic rate
    shape = torch.Size([n * rows, width])
    reference = _reference_keep(
        9, 1, 4, 3, n, rows * width, p, _rng.tie_capacity(rows * width) if capacity is None else capacity
    )
    for backend in ("numpy", "torch"):
        keep = _rng.bernoulli_keep(9, 1, 4, 3, n, shape, p, _CPU, backend=backend, capacity=capacity)
        assert keep.dtype == torch.bool and keep.shape == shape
        assert np.array_equal(keep.reshape(n, -1).numpy(), reference)
        out = torch.full(shape, 7.0, dtype=torch.float64)
        written = _rng.bernoulli_keep(9, 1, 4, 3, n, shape, p, _CPU, out=out, backend=backend, capacity=capacity)
        assert written.data_ptr() == out.data_ptr() and torch.equal(written.bool(), keep)
        scaled = _rng.bernoulli_keep(
            9, 1, 4, 3, n, shape, p, _CPU, out=out, scale=2.5, backend=backend, capacity=capacity
        )
        assert torch.equal(scaled, keep.double() * 2.5)
        # float32 masks hold 1 / (1 - p) rounded as torch rounds a scalar factor
        out32 = torch.full(shape, 7.0, dtype=torch.float32)
        scaled32 = _rng.bernoulli_keep(
            9, 1, 4, 3, n, shape, p, _CPU, out=out32, scale=1 / (1 - p), backend=backend, capacity=capacity
        )
        assert torch.equal(scaled32, keep.float().mul_(1 / (1 - p)))


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.1875, 0.9])
def test_keep_rate_is_one_minus_p(p):
    keep = _rng.bernoulli_keep(3, 0, 1, 0, 100, torch.Size([100 * 100, 100]), p, _CPU)
    rate, count = keep.double().mean().item(), keep.numel()
    assert abs(rate - (1 - p)) < 5 * math.sqrt(p * (1 - p) / count)


def test_keep_decisions_are_independent_of_each_other():
    keep = _rng.bernoulli_keep(4, 0, 2, 0, 200, torch.Size([200, 5000]), 0.05, _CPU).double()
    # neighbouring units, and the same unit in consecutive samples, are uncorrelated
    for a, b in ((keep[:, :-1], keep[:, 1:]), (keep[:-1], keep[1:])):
        corr = np.corrcoef(a.reshape(-1).numpy(), b.reshape(-1).numpy())[0, 1]
        assert abs(corr) < 5 / math.sqrt(a.numel())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_normals_are_standard_and_the_same_on_both_paths(dtype):
    shape = torch.Size([40 * 10, 251])  # odd per-sample count: the last pair is half used
    a = _rng.standard_normal(5, 1, 2, 7, 40, shape, dtype, _CPU, backend="numpy")
    b = _rng.standard_normal(5, 1, 2, 7, 40, shape, dtype, _CPU, backend="torch")
    assert a.dtype == dtype and a.shape == shape and torch.equal(a, b)
    values = a.double().reshape(-1).numpy()
    assert stats.kstest(values, "norm").pvalue > 1e-3
    chunked = torch.cat(
        [
            _rng.standard_normal(5, 1, 2, 7 + first, n, torch.Size([n * 10, 251]), dtype, _CPU)
            for first, n in ((0, 15), (15, 25))
        ]
    )
    assert torch.equal(a, chunked)


def _force_torch_bits(monkeypatch):
    monkeypatch.setattr(_rng, "_use_numpy", lambda device, backend: backend == "numpy")


@pytest.mark.parametrize("method", ["dropout", "dropconnect", "gaussian"])
def test_predict_gives_the_same_samples_with_the_torch_generator(monkeypatch, method):
    """What a GPU runs (the torch path) and what the CPU runs give the same numbers."""
    torch.manual_seed(0)
    model = LeNet5(input_size=28, dropout=0.3).eval()
    x = torch.randn(6, 1, 28, 28)
    reference = bd.wrap(model, method=method, p=0.3).predict(x, samples=7, seed=11, keep_samples=True)
    _force_torch_bits(monkeypatch)
    again = bd.wrap(model, method=method, p=0.3).predict(x, samples=7, seed=11, keep_samples=True)
    assert torch.equal(reference.samples, again.samples)


class _Residual(nn.Module):
    """Dropout whose input is read again afterwards: it must not be overwritten."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.drop, self.head = nn.Linear(4, 16), nn.Dropout(0.25), nn.Linear(16, 1)

    def forward(self, x):
        h = torch.relu(self.inner(x))
        return self.head(self.drop(h) + h)


@pytest.mark.parametrize(("rows", "chunk"), [(1, 8), (9, 8), (9, 1)])
def test_dropout_in_place_only_where_nothing_else_reads_the_input(rows, chunk):
    torch.manual_seed(1)
    mlp = RegressionMLP(in_features=4, hidden=(16,), dropout=0.1, placement="both").eval()
    for model, overwritten in ((mlp, {0, 2}), (_Residual().eval(), set())):
        x = torch.randn(rows, 4)
        before = x.clone()
        mc = bd.wrap(model, task="regression", tau=1.0)
        fast = mc.predict(x, samples=40, seed=2, keep_samples=True, chunk_size=chunk)
        assert mc._runtime.route.kind == "fx" and set(mc._runtime.route.split.overwritable) == overwritten
        assert torch.equal(x, before)  # the caller's input (a view of it reaches the dropout) is untouched
        slow = bd.wrap(model, task="regression", tau=1.0)
        slow.predict(x, samples=1, seed=0)  # the probe
        force_full_replication(slow)
        full = slow.predict(x, samples=40, seed=2, keep_samples=True, chunk_size=chunk)
        assert torch.allclose(fast.samples, full.samples, rtol=1e-5, atol=1e-6)


def test_gradients_through_several_chunks_with_mask_buffers():
    torch.manual_seed(2)
    model = RegressionMLP(in_features=3, hidden=(8,), dropout=0.2, placement="both").eval()
    x = torch.randn(5, 3, requires_grad=True)
    pred = bd.wrap(model, task="regression", tau=1.0).predict(x, samples=12, seed=0, grad=True, chunk_size=4)
    pred.mean.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_predict_under_autocast_reduces_in_float32():
    torch.manual_seed(3)
    model = LeNet5(input_size=28, dropout=0.5).eval()
    x = torch.randn(4, 1, 28, 28)
    mc = bd.wrap(model)
    reference = mc.predict(x, samples=10, seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = mc.predict(x, samples=10, seed=1, keep_samples=True)
    assert pred.mean.dtype == pred.samples.dtype == pred.epistemic.dtype == torch.float32
    assert torch.allclose(pred.mean.sum(-1), torch.ones(4), atol=1e-5)
    assert (pred.mean - reference.mean).abs().max() < 0.05  # bf16 matmuls, same masks


def test_site_numbers_leave_the_top_bit_to_the_tie_overflow_stream():
    with pytest.raises(ValueError, match="2\\*\\*31"):
        _rng.random_bytes(0, 0, 2**31, 0, 1, 8, _CPU)
    ordinary = _rng._site_key(1, 2, 5)
    assert _rng._site_key(1, 2, 5, overflow=True) != ordinary and ordinary[1] >> 31 & 1 == 0


class _LeakyResidual(nn.Module):
    """Dropout on a leaky ReLU of a tensor that is read again: in place only if the ReLU copied.
    (The input dropout puts all of it in the sampled tail.)"""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace
        self.first, self.inner = nn.Dropout(0.1), nn.Linear(4, 16)
        self.drop, self.head = nn.Dropout(0.25), nn.Linear(16, 1)

    def forward(self, x):
        h = self.inner(self.first(x))
        return self.head(self.drop(F.leaky_relu(h, 0.2, self.inplace)) + h)


@pytest.mark.parametrize("inplace", [False, True])
def test_an_activation_written_in_place_shares_its_inputs_memory(inplace):
    torch.manual_seed(4)
    model = _LeakyResidual(inplace).eval()
    x = torch.randn(6, 4)
    mc = bd.wrap(model, task="regression", tau=1.0)
    fast = mc.predict(x, samples=16, seed=1, keep_samples=True, chunk_size=8)
    site = next(s.index for s in mc.sites if s.where == "drop")
    assert (site in mc._runtime.route.split.overwritable) is not inplace
    slow = bd.wrap(model, task="regression", tau=1.0)
    slow.predict(x, samples=1, seed=0)
    force_full_replication(slow)
    full = slow.predict(x, samples=16, seed=1, keep_samples=True, chunk_size=8)
    assert torch.allclose(fast.samples, full.samples, rtol=1e-5, atol=1e-6)


class _Activations(nn.Module):
    """ReLU, tanh and sigmoid as module, function and method in the sampled tail; the tanh's
    input is read again, so that one must not be overwritten."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.a, self.b, self.c = nn.Dropout(0.2), nn.Linear(4, 16), nn.Linear(16, 16), nn.Linear(16, 16)
        self.relu, self.head = nn.ReLU(), nn.Linear(16, 1)

    def forward(self, x):
        h = self.relu(self.a(self.first(x)))
        g = self.b(h)
        k = torch.tanh(g) + g  # g read twice: tanh must copy
        return self.head(torch.sigmoid(self.c(k)).relu() + F.relu(k - 1.0))


def test_activations_overwrite_only_fresh_inputs_and_only_without_autograd():
    from bayesdrop import _split

    torch.manual_seed(5)
    model = _Activations().eval()
    x = torch.randn(7, 4, requires_grad=True)
    mc = bd.wrap(model, task="regression", tau=1.0)
    fast = mc.predict(x.detach(), samples=24, seed=3, keep_samples=True, chunk_size=10)
    nodes = [n for n in mc._runtime.route.split.tail.graph.nodes if n.op != "placeholder"]
    targets = [n.target for n in nodes]
    in_place = [n.args[1] for n in nodes if n.target is _split._in_place_without_grad]
    # the module ReLU, sigmoid, its .relu() and F.relu(k - 1) are rewritten; the tanh (g read twice) is not
    assert sorted(in_place) == ["relu", "relu", "relu", "sigmoid"]
    assert torch.tanh in targets
    slow = bd.wrap(model, task="regression", tau=1.0)
    slow.predict(x.detach(), samples=1, seed=0)
    force_full_replication(slow)
    full = slow.predict(x.detach(), samples=24, seed=3, keep_samples=True, chunk_size=10)
    assert torch.allclose(fast.samples, full.samples, rtol=1e-5, atol=1e-6)
    # with autograd the rewritten tail computes out of place: gradients equal the full model's
    grad_fast = torch.autograd.grad(mc.predict(x, samples=24, seed=3, grad=True).mean.sum(), x)[0]
    grad_full = torch.autograd.grad(slow.predict(x, samples=24, seed=3, grad=True).mean.sum(), x)[0]
    assert torch.allclose(grad_fast, grad_full, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.3, 0.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keep_applied_in_place_equals_the_float_mask(p, dtype):
    torch.manual_seed(6)
    n_samples, shape = 6, torch.Size((6 * 5, 700))  # 3,500 values per sample: ties at p = 0.05 and 0.3
    x = torch.randn(shape, dtype=dtype)
    scale = 1.0 / (1.0 - p)
    mask = _rng.bernoulli_keep(3, 1, 4, 10, n_samples, shape, p, _CPU, torch.empty(shape, dtype=dtype), scale)
    target = x.clone()
    _rng.multiply_by_keep(3, 1, 4, 10, n_samples, target.numpy().reshape(n_samples, -1), p, scale)
    assert torch.equal(target, x * mask)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.25])
def test_scratch_temporaries_are_reused_and_change_no_value(p):
    """Temporaries kept in a scratch dict across chunks give the same masks, are reused by the
    next chunk (no fresh pages), and never alias a bool mask that is handed back."""
    n_samples, shape = 4, torch.Size((4 * 3, 900))
    scratch: dict = {}
    arrays = None
    for first in (0, 4, 8):  # three chunks; the last one smaller reuses the same arrays
        x = torch.randn(shape)
        expected = x * _rng.bernoulli_keep(5, 0, 2, first, n_samples, shape, p, _CPU, torch.empty(shape), 1 / (1 - p))
        target = x.clone()
        _rng.multiply_by_keep(5, 0, 2, first, n_samples, target.numpy().reshape(n_samples, -1), p, 1 / (1 - p), scratch)
        assert torch.equal(target, expected)
        float_mask = _rng.bernoulli_keep(
            5, 0, 2, first, n_samples, shape, p, _CPU, torch.empty(shape), 2.0, scratch=scratch
        )
        assert torch.equal(float_mask, 2.0 * _rng.bernoulli_keep(5, 0, 2, first, n_samples, shape, p, _CPU))
        held = {key: id(array) for key, array in scratch.items()}
        assert held and (arrays is None or held == arrays)
        arrays = held
    returned = _rng.bernoulli_keep(5, 0, 2, 0, n_samples, shape, p, _CPU, scratch=scratch)
    before = returned.clone()
    _rng.bernoulli_keep(5, 0, 2, 4, n_samples, shape, p, _CPU, torch.empty(shape), 1.0, scratch=scratch)
    assert torch.equal(returned, before)  # a bool mask handed back does not live in scratch


class _ScaleChains(nn.Module):
    """Dropout read only by a Linear (module and F.linear): the scale can move into the weight;
    a dropout output also read by a skip connection cannot."""

    def __init__(self) -> None:
        super().__init__()
        self.drop_in, self.a, self.b, self.head = (
            nn.Dropout(0.05),
            nn.Linear(13, 40),
            nn.Linear(40, 40),
            nn.Linear(40, 2),
        )

    def forward(self, x):
        h = torch.relu(self.a(self.drop_in(x)))
        g = F.dropout(h, 0.3, self.training)
        k = torch.relu(F.linear(g, self.b.weight, self.b.bias))
        s = F.dropout(k, 0.5, self.training)
        return self.head(s) + s[:, :2]  # s read twice


def test_dropout_scale_moves_into_the_next_linear(monkeypatch):
    from bayesdrop._sites import StochasticMode

    torch.manual_seed(9)
    model = _ScaleChains().double().eval()
    x = torch.randn(200, 13, dtype=torch.float64)
    mc = bd.wrap(model, task="regression", tau=1.0)
    mc.predict(x[:4], samples=2, seed=0)
    split = mc._runtime.route.split
    assert len(split.linear_scaled) == 2 and split.linear_scaled < split.overwritable  # not the skip's dropout
    owed = []
    original = StochasticMode._owed_scale
    monkeypatch.setattr(StochasticMode, "_owed_scale", lambda self, t: owed.append(original(self, t)) or owed[-1])
    fast = mc.predict(x, samples=64, seed=4, keep_samples=True, chunk_size=32)
    assert sorted({s for s in owed if s is not None}) == pytest.approx([1 / 0.95, 1 / 0.7])  # both chains taken
    full = bd.wrap(model, task="regression", tau=1.0)
    full.predict(x[:4], samples=2, seed=0)
    force_full_replication(full)
    slow = full.predict(x, samples=64, seed=4, keep_samples=True, chunk_size=32)
    torch.testing.assert_close(fast.samples, slow.samples, rtol=1e-12, atol=1e-12)
