"""Counter-based random numbers for MC sampling.

The random bits of MC sample ``t`` at stochastic site ``k`` depend only on ``(seed, stream,
site, t)``: never on how the samples are split into chunks, on whether the deterministic prefix
is cached, or on the device. That is what makes chunked, split and unsplit sampling give the
same numbers. Bits come from NumPy's Philox generator, whose counter can be set directly.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

_MASK64 = (1 << 64) - 1
_UINT32_PER_COUNTER = 8  # one Philox counter step yields 4 x uint64 = 8 x uint32
_PARALLEL_THRESHOLD = 1 << 21  # uint32 values; below this one thread is faster
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The thread pool for large masks, created on first use; a forked child forgets the
    parent's (its worker threads do not exist there) and makes its own."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
        return _pool


def _forget_pool_in_child() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _philox_uint32(key: tuple[int, int], first_counter: int, n_counters: int) -> np.ndarray:
    bit_generator = np.random.Philox(key=[key[0], key[1]], counter=[first_counter, 0, 0, 0])
    return bit_generator.random_raw(n_counters * 4).view(np.uint32)


def uniform_bits(seed: int, stream: int, site: int, first_sample: int, n_samples: int, per_sample: int) -> np.ndarray:
    """Random uint32 values of shape ``(n_samples, per_sample)``.

    Row ``i`` holds the bits of sample ``first_sample + i``; the same ``(seed, stream, site,
    sample)`` always gives the same row.
    """
    counters_per_sample = -(-per_sample // _UINT32_PER_COUNTER)
    key = (seed & _MASK64, ((stream & 0xFFFFFFFF) << 32 | (site & 0xFFFFFFFF)) & _MASK64)
    total = n_samples * counters_per_sample
    first = first_sample * counters_per_sample
    small = total * _UINT32_PER_COUNTER < _PARALLEL_THRESHOLD or n_samples < 2
    workers = 1 if small else _executor()._max_workers
    if small or workers == 1:
        bits = _philox_uint32(key, first, total)
    else:
        bounds = np.linspace(0, n_samples, min(workers, n_samples) + 1).astype(int)
        futures = [
            _executor().submit(_philox_uint32, key, first + lo * counters_per_sample, (hi - lo) * counters_per_sample)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=False)
        ]
        bits = np.concatenate([f.result() for f in futures])
    return bits.reshape(n_samples, counters_per_sample * _UINT32_PER_COUNTER)[:, :per_sample]


def keep_threshold(p: float) -> np.uint32:
    """uint32 threshold below which a uniform uint32 keeps its unit (probability 1 - p)."""
    return np.uint32(min(round((1.0 - p) * 2**32), 2**32 - 1))


def bernoulli_keep(
    seed: int,
    stream: int,
    site: int,
    first_sample: int,
    n_samples: int,
    shape: torch.Size,
    p: float,
    device: torch.device,
) -> torch.Tensor:
    """Boolean keep-mask of ``shape`` (dim 0 = n_samples * rows, sample-major), P(keep) = 1 - p."""
    per_sample = shape.numel() // n_samples
    bits = uniform_bits(seed, stream, site, first_sample, n_samples, per_sample)
    mask = torch.from_numpy(np.ascontiguousarray(bits < keep_threshold(p)))
    return mask.reshape(shape).to(device, non_blocking=True)


def standard_normal(
    seed: int,
    stream: int,
    site: int,
    first_sample: int,
    n_samples: int,
    shape: torch.Size,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """Standard normal values of ``shape`` (Box-Muller on counter-based bits), sample-major."""
    per_sample = shape.numel() // n_samples
    bits = uniform_bits(seed, stream, site, first_sample, n_samples, 2 * per_sample)
    uniform = (bits.astype(np.float64) + 0.5) * 2.0**-32
    u1, u2 = uniform[:, :per_sample], uniform[:, per_sample:]
    normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return torch.from_numpy(normal).reshape(shape).to(device=device, dtype=dtype)
