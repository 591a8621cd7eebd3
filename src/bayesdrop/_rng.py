"""Counter-based random numbers for MC sampling, the same bits on every device.

The random bits of MC sample ``t`` at stochastic site ``k`` depend only on ``(seed, stream,
site, t)`` (and the number of values one sample needs): never on how the samples are split into
chunks, on whether the deterministic prefix is cached, or on the device.

The generator is Philox4x64-10 (Salmon et al., SC 2011). Block ``b`` of a site is the cipher of
the counter ``(b + 1, 0, 0, 0)`` under the key ``(seed, stream << 32 | site)``, 32 bytes taken
little-endian; sample ``t`` owns the blocks ``t * B .. (t + 1) * B - 1``. On the CPU the blocks
come from NumPy's C implementation; on any other device from :func:`philox4x64` below, written
in torch integer ops, which gives the same bits (tested against NumPy and the published test
vectors). Nothing here is global: no generator state, no thread pool, so threads and forked
workers are safe.

Bits per value are no more than the value needs:

* A keep decision with probability ``K / 2**32`` (``K`` the 32-bit threshold of ``1 - p``) is
  ``U < K`` for a uniform 32-bit ``U``, compared lazily: when ``K`` is a multiple of
  ``2**(32 - b)`` for ``b`` in 1, 2, 4, 8 (``p`` = 0.5, 0.25, 0.125, 0.1875 ...) ``b`` bits decide
  it exactly. Otherwise the leading byte of ``U`` decides it unless it equals the leading byte of
  ``K`` (one time in 256); only those ties read 24 more bits. The law is exactly that of the
  full 32-bit comparison.
* Gaussian noise is Box-Muller on 24-bit uniforms in float32 (32-bit uniforms in float64 for
  float64 models), both outputs of a pair used: 32 bits per normal value, no float64 round trip.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_BLOCK_BYTES = 32  # one Philox4x64 block: 4 x uint64
_SITE_LIMIT = 1 << 31  # site numbers below this; the top bit keys the tie-overflow stream
_TIE_BYTES = 3  # a tie reads 24 more bits

# Philox4x64 constants (Random123).
_M0, _M1 = 0xD2E7470EE14C6C93, 0xCA5A826395121157
_W0, _W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B
_ROUNDS = 10


def _signed(value: int) -> int:
    """The int64 whose bit pattern is the uint64 ``value``."""
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def _mulhilo(a: torch.Tensor, multiplier: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 64 bits of ``a * multiplier`` for uint64 bit patterns held in int64
    (``multiplier`` broadcasts against ``a``).

    int64 products wrap (two's complement), so their low bits are right; the high word is built
    from 32-bit halves, whose products are exact as bit patterns. Arithmetic shifts are masked
    to act as logical ones.
    """
    low = a * multiplier
    m_lo, m_hi = multiplier & _MASK32, (multiplier >> 32) & _MASK32
    a_lo, a_hi = a & _MASK32, (a >> 32) & _MASK32
    lo_lo, lo_hi, hi_lo, hi_hi = a_lo * m_lo, a_lo * m_hi, a_hi * m_lo, a_hi * m_hi
    middle = ((lo_lo >> 32) & _MASK32) + (lo_hi & _MASK32) + (hi_lo & _MASK32)
    high = hi_hi + ((lo_hi >> 32) & _MASK32) + ((hi_lo >> 32) & _MASK32) + ((middle >> 32) & _MASK32)
    return high, low


def philox4x64(counters: torch.Tensor, key: tuple[int, int]) -> torch.Tensor:
    """Philox4x64-10 of ``counters`` (``(n, 4)`` int64 holding uint64 bit patterns) under ``key``
    (two unsigned 64-bit ints), in torch ops on ``counters``' device. Returns ``(n, 4)`` int64.
    Both multiplications of a round run as one ``(2, n)`` operation (half the kernel launches)."""
    multipliers = torch.tensor([[_signed(_M0)], [_signed(_M1)]], dtype=torch.int64, device=counters.device)
    c0, c1, c2, c3 = counters.unbind(-1)
    k0, k1 = key[0] & _MASK64, key[1] & _MASK64
    for round_index in range(_ROUNDS):
        if round_index:
            k0, k1 = (k0 + _W0) & _MASK64, (k1 + _W1) & _MASK64
        high, low = _mulhilo(torch.stack([c0, c2]), multipliers)
        c0, c1, c2, c3 = high[1] ^ c1 ^ _signed(k0), low[1], high[0] ^ c3 ^ _signed(k1), low[0]
    return torch.stack([c0, c1, c2, c3], -1)


def _site_key(seed: int, stream: int, site: int, overflow: bool = False) -> tuple[int, int]:
    """The Philox key of a site; ``overflow`` keys its separate stream of tie values (the top
    bit of the site word, which is why site numbers stay below 2**31)."""
    if not 0 <= site < _SITE_LIMIT:
        raise ValueError(f"stochastic site number must be in [0, 2**31), got {site}")
    return seed & _MASK64, ((stream & _MASK32) << 32 | site | (_SITE_LIMIT if overflow else 0)) & _MASK64


def _blocks_numpy(key: tuple[int, int], first_block: int, n_blocks: int) -> np.ndarray:
    # NumPy's Philox increments its counter before each block: starting it at b yields block b.
    # Key and counter go in as uint64 arrays: Python ints above 2**53 would pass through float64.
    generator = np.random.Philox(
        key=np.array(key, dtype=np.uint64), counter=np.array([first_block & _MASK64, 0, 0, 0], dtype=np.uint64)
    )
    return generator.random_raw(4 * n_blocks).view(np.uint8)


def _sample_bytes_numpy(key: tuple[int, int], first_sample: int, n_samples: int, n_bytes: int) -> np.ndarray:
    """``(n_samples, n_bytes)`` uint8 (a view): sample t owns blocks ``t * B .. (t + 1) * B - 1``."""
    per_sample = max(1, -(-n_bytes // _BLOCK_BYTES))
    raw = _blocks_numpy(key, first_sample * per_sample, n_samples * per_sample)
    return raw.reshape(n_samples, per_sample * _BLOCK_BYTES)[:, :n_bytes]


def _blocks_torch(key: tuple[int, int], blocks: torch.Tensor) -> torch.Tensor:
    counters = torch.zeros(blocks.numel(), 4, dtype=torch.int64, device=blocks.device)
    counters[:, 0] = blocks.reshape(-1) + 1
    return philox4x64(counters, key).view(torch.uint8).reshape(-1)


def _sample_bytes_torch(key: tuple[int, int], first_sample: int, n_samples: int, n_bytes: int, device) -> torch.Tensor:
    """:func:`_sample_bytes_numpy` computed on ``device``: the same bytes."""
    per_sample = max(1, -(-n_bytes // _BLOCK_BYTES))
    first = first_sample * per_sample
    raw = _blocks_torch(key, torch.arange(first, first + n_samples * per_sample, dtype=torch.int64, device=device))
    return raw.reshape(n_samples, per_sample * _BLOCK_BYTES)[:, :n_bytes]


def _use_numpy(device: torch.device, backend: str | None) -> bool:
    if backend not in (None, "numpy", "torch"):
        raise ValueError(f"backend must be None, 'numpy' or 'torch', got {backend!r}")
    return backend == "numpy" or (backend is None and torch.device(device).type == "cpu")


def random_bytes(
    seed: int,
    stream: int,
    site: int,
    first_sample: int,
    n_samples: int,
    n_bytes: int,
    device: torch.device | str = "cpu",
    backend: str | None = None,
) -> torch.Tensor:
    """Random bytes of shape ``(n_samples, n_bytes)`` (uint8) on ``device``.

    Row ``i`` holds the bytes of sample ``first_sample + i``; the same ``(seed, stream, site,
    sample, n_bytes)`` always gives the same row, on every device. ``backend``: ``"numpy"``
    (the CPU default) or ``"torch"`` (any other device), for tests.
    """
    key = _site_key(seed, stream, site)
    if _use_numpy(device, backend):
        return torch.from_numpy(_sample_bytes_numpy(key, first_sample, n_samples, n_bytes)).to(device)
    return _sample_bytes_torch(key, first_sample, n_samples, n_bytes, device)


def keep_threshold(p: float) -> int:
    """``K`` in ``[0, 2**32]``: a unit is kept when a uniform 32-bit ``U < K`` (P = 1 - p)."""
    return min(max(round((1.0 - p) * 2**32), 0), 1 << 32)


def decision_bits(threshold: int) -> int | None:
    """Bits that decide ``U < threshold`` exactly (1, 2, 4 or 8), or None when 8 bits leave ties."""
    for bits in (1, 2, 4, 8):
        if threshold % (1 << (32 - bits)) == 0:
            return bits
    return None


def tie_capacity(per_sample: int) -> int:
    """Ties one sample's block reserves 24 bits for: the mean (1 in 256) plus ten standard
    deviations and ten; more ties than this (never seen in practice) read a separate stream."""
    mean = per_sample / 256.0
    return math.ceil(mean + 10.0 * math.sqrt(mean) + 10.0)


def _below_torch(raw: torch.Tensor, bits: int, count: int, bound: int) -> torch.Tensor:
    """``(n, bytes)`` uint8 read as ``bits``-bit fields (low bits of a byte first) -> ``(n, count)``
    bool ``field < bound``."""
    if bits == 8:
        return raw[:, :count] < bound
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=raw.device)
    values = (raw.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return values.reshape(raw.shape[0], -1)[:, :count] < bound


def _scratch(scratch: dict | None, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised NumPy array of ``shape`` for a temporary: a slice of the array kept in
    ``scratch`` under ``name`` (grown as needed; a dict the engine keeps across the chunks of one
    run, so that large temporaries do not take fresh pages from the OS every chunk), or a new one."""
    if scratch is None:
        return np.empty(shape, dtype)
    count, key = math.prod(shape), ("numpy", name, np.dtype(dtype).str)
    array = scratch.get(key)
    if array is None or array.size < count:
        array = scratch[key] = np.empty(count, dtype)
    return array[:count].reshape(shape)


def _below_numpy(raw: np.ndarray, bits: int, count: int, bound: int, scratch: dict | None = None) -> np.ndarray:
    """:func:`_below_torch` in NumPy: one comparison per field position, written in place
    (into ``scratch``, see :func:`_scratch`, when given)."""
    if bits == 8:
        return np.less(raw[:, :count], bound, out=_scratch(scratch, "below", (raw.shape[0], count), bool))
    fields = 8 // bits
    out = _scratch(scratch, "below", (*raw.shape, fields), bool)
    for k in range(fields):
        np.less((raw >> np.uint8(k * bits)) & np.uint8((1 << bits) - 1), bound, out=out[:, :, k])
    return out.reshape(raw.shape[0], -1)[:, :count]


def _overflow_tie_values(seed: int, stream: int, site: int, elements, device, numpy: bool):
    """24-bit values for ties beyond a sample's reserve: one Philox block per element, keyed
    apart from the ordinary stream (top bit of the site word), counter = the element's index
    over all samples."""
    key = _site_key(seed, stream, site, overflow=True)
    if numpy:
        raw = np.stack([_blocks_numpy(key, int(e), 1)[:3] for e in elements]).astype(np.int64)
        return raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    raw = _blocks_torch(key, elements.to(device)).reshape(-1, _BLOCK_BYTES)[:, :3].to(torch.int64)
    return raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)


def _tie_values(raw, ties, per_sample: int, capacity: int, first_sample: int, overflow):
    """24-bit values of the tied elements ``ties`` (flat indices into ``(n, per_sample)``,
    ascending; NumPy arrays or torch tensors alike): the ``r``-th tie of a sample reads bytes
    ``per_sample + 3r ..`` of its row (little-endian)."""
    numpy = isinstance(ties, np.ndarray)
    rows = ties // per_sample
    rank = (np.arange(len(ties)) if numpy else torch.arange(len(ties), device=ties.device)) - (
        np.searchsorted(rows, rows) if numpy else torch.searchsorted(rows, rows)
    )
    if capacity == 0:
        values = ties * 0
    else:
        start = per_sample + _TIE_BYTES * rank.clip(max=capacity - 1)
        picked = [raw[rows, start + i] for i in range(_TIE_BYTES)]
        if numpy:
            values = picked[0].astype(np.int64) | picked[1].astype(np.int64) << 8 | picked[2].astype(np.int64) << 16
        else:
            values = picked[0].long() | picked[1].long() << 8 | picked[2].long() << 16
    outside = rank >= capacity
    if bool(outside.any()):  # more ties than reserved: a separate, addressable stream
        values[outside] = overflow((rows[outside] + first_sample) * per_sample + ties[outside] % per_sample)
    return values


def _keep(
    raw,
    per_sample: int,
    threshold: int,
    bits,
    capacity: int,
    first_sample: int,
    overflow,
    into=None,
    scale=1.0,
    scratch=None,
):
    """``(n, per_sample)`` bool keep decisions from the sample bytes ``raw`` (a NumPy array on
    the CPU, whose small operations cost a fraction of torch's; a tensor elsewhere). With
    ``into`` (a NumPy float array of that shape), ``keep * scale`` is written into it instead:
    one pass from bytes to the scaled mask. NumPy temporaries go into ``scratch`` (see
    :func:`_scratch`); without ``into``, so does the returned keep array, which the caller then
    consumes before the next use of ``scratch``."""
    numpy = isinstance(raw, np.ndarray)
    factor = None if into is None else into.dtype.type(scale)
    if bits is not None:
        bound = threshold >> (32 - bits)
        keep = (
            _below_numpy(raw, bits, per_sample, bound, scratch) if numpy else _below_torch(raw, bits, per_sample, bound)
        )
        return keep if into is None else np.multiply(keep, factor, out=into)
    lead, high = raw[:, :per_sample], threshold >> 24
    if numpy:
        below = np.less(lead, high, out=_scratch(scratch, "below", lead.shape, bool))
        keep = below if into is None else np.multiply(below, factor, out=into)
        ties = np.flatnonzero(np.equal(lead, high, out=_scratch(scratch, "tie", lead.shape, bool)))
    else:
        keep = lead < high
        ties = (lead == high).reshape(-1).nonzero().reshape(-1)
    if len(ties):
        values = _tie_values(raw, ties, per_sample, capacity, first_sample, overflow)
        decided = values < (threshold & 0xFFFFFF)
        keep.reshape(-1)[ties] = decided if into is None else decided * factor
    return keep


def _keep_layout(per_sample: int, p: float, capacity: int | None = None) -> tuple[int, int | None, int, int]:
    """Threshold, decision bits, tie capacity and bytes per sample of a keep mask."""
    threshold = keep_threshold(p)
    bits = decision_bits(threshold)
    if bits is not None:
        return threshold, bits, 0, -(-per_sample * bits // 8)
    capacity = tie_capacity(per_sample) if capacity is None else capacity
    return threshold, bits, capacity, per_sample + _TIE_BYTES * capacity


def bernoulli_keep(
    seed: int,
    stream: int,
    site: int,
    first_sample: int,
    n_samples: int,
    shape: torch.Size,
    p: float,
    device: torch.device,
    out: torch.Tensor | None = None,
    scale: float = 1.0,
    backend: str | None = None,
    capacity: int | None = None,
    scratch: dict | None = None,
) -> torch.Tensor:
    """Keep-mask of ``shape`` (dim 0 = n_samples * rows, sample-major), P(keep) = 1 - p to
    2**-32: bool, or ``keep * scale`` written into the float tensor ``out`` (contiguous,
    ``shape``'s number of elements; a buffer reused across chunks costs no fresh pages).
    ``capacity`` overrides :func:`tie_capacity` (tests); ``scratch``: see :func:`_scratch`."""
    per_sample = shape.numel() // n_samples
    threshold, bits, capacity, n_bytes = _keep_layout(per_sample, p, capacity)
    numpy = _use_numpy(device, backend)

    def overflow(elements):
        return _overflow_tie_values(seed, stream, site, elements, device, numpy)

    key = _site_key(seed, stream, site)
    if numpy:
        raw = _sample_bytes_numpy(key, first_sample, n_samples, n_bytes)
        if out is not None and out.device.type == "cpu" and out.dtype in (torch.float32, torch.float64):
            into = out.view(n_samples, per_sample).numpy()
            _keep(raw, per_sample, threshold, bits, capacity, first_sample, overflow, into, scale, scratch)
            return out.view(shape)
        # a bool result copied into ``out`` at once may live in scratch; one returned may not
        transient = scratch if out is not None else None
        keep = torch.from_numpy(
            _keep(raw, per_sample, threshold, bits, capacity, first_sample, overflow, None, 1, transient)
        )
    else:
        raw = _sample_bytes_torch(key, first_sample, n_samples, n_bytes, device)
        keep = _keep(raw, per_sample, threshold, bits, capacity, first_sample, overflow)
    if out is None:
        return keep.to(device).reshape(shape)
    # bool -> float copies take a slow casting loop; uint8 -> float is vectorised
    mask = out.view(keep.shape).copy_(keep.to(out.device).view(torch.uint8))
    return (mask if scale == 1.0 else mask.mul_(scale)).view(shape)


def multiply_by_keep(
    seed: int,
    stream: int,
    site: int,
    first_sample: int,
    n_samples: int,
    target: np.ndarray,
    p: float,
    scale: float,
    scratch: dict | None = None,
) -> None:
    """``target *= keep * scale`` in place (a float NumPy array ``(n_samples, per_sample)``), with
    the keep decisions :func:`bernoulli_keep` makes for the same arguments; the CPU path that
    needs no float mask: a multiply by the 0/1 bytes and a scalar one over ``target``. ``scratch``: see
    :func:`_scratch`."""
    per_sample = target.shape[1]
    threshold, bits, capacity, n_bytes = _keep_layout(per_sample, p)

    def overflow(elements):
        return _overflow_tie_values(seed, stream, site, elements, "cpu", True)

    raw = _sample_bytes_numpy(_site_key(seed, stream, site), first_sample, n_samples, n_bytes)
    keep = _keep(raw, per_sample, threshold, bits, capacity, first_sample, overflow, scratch=scratch)
    np.multiply(target, keep.view(np.uint8), out=target)  # 0/1 bytes: a faster loop than bool's
    if scale != 1.0:
        np.multiply(target, target.dtype.type(scale), out=target)


def standard_normal(
    seed: int,
    stream: int,
    site: int,
    first_sample: int,
    n_samples: int,
    shape: torch.Size,
    dtype: torch.dtype,
    device: torch.device,
    backend: str | None = None,
) -> torch.Tensor:
    """Standard normal values of ``shape`` (Box-Muller on counter-based bits), sample-major."""
    per_sample = shape.numel() // n_samples
    pairs = -(-per_sample // 2)
    raw = random_bytes(seed, stream, site, first_sample, n_samples, 8 * pairs, device, backend)
    words = raw.view(torch.int32)  # (n_samples, 2 * pairs), little-endian 32-bit words
    if dtype == torch.float64:
        uniform = ((words.to(torch.int64) & _MASK32).to(torch.float64) + 0.5) * 2.0**-32
    else:
        uniform = (((words >> 8) & 0xFFFFFF).to(torch.float32) + 0.5) * 2.0**-24
    radius = torch.sqrt(-2.0 * torch.log(uniform[:, :pairs]))
    angle = (2.0 * math.pi) * uniform[:, pairs:]
    normal = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], 1)[:, :per_sample]
    return normal.reshape(shape).to(dtype)
