"""The sampling engine: the one place that repeats a model over MC samples.

Samples are computed by batch replication (T copies of the batch, sample-major along dim 0),
in chunks that fit a memory budget, with only the stochastic tail of the network repeated when
the model could be split. Each chunk is folded into running reductions at once, so memory does
not grow with T unless the raw samples are kept. Reductions over samples accumulate in float64
so that the chunking leaves no trace in the results.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_map

from ._errors import BayesdropError
from ._sites import CounterNoise, SitePlan, StochasticMode
from .outputs import log_probs as _log_probs
from .outputs import mean_variance
from .prediction import Prediction

__all__ = ["Batch", "run_samples", "ClassificationReducer", "RegressionReducer", "is_out_of_memory"]


def replicate(value: Tensor, n: int) -> Tensor:
    """``(B, ...)`` -> ``(n * B, ...)``, sample-major: rows ``t*B .. t*B+B-1`` are sample t."""
    if n == 1:
        return value
    return value.unsqueeze(0).expand(n, *value.shape).reshape(n * value.shape[0], *value.shape[1:])


@dataclass(frozen=True)
class Batch:
    """The inputs of one forward pass: positional and keyword arguments, ``size`` rows.

    Tensors whose dim 0 has ``size`` rows are the batch (replicated per sample); anything else
    (masks shared by all rows, flags, None) is passed as it is.
    """

    args: tuple
    kwargs: dict
    size: int
    shared: frozenset[int] = frozenset()  # positional batch tensors passed as they are (one copy for all samples)

    def is_batch(self, value: object) -> bool:
        return isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == self.size

    def replicated(self, n: int) -> tuple[tuple, dict]:
        def rep(v):
            return replicate(v, n) if self.is_batch(v) else v

        args = tuple(v if i in self.shared else rep(v) for i, v in enumerate(self.args))
        return args, {k: rep(v) for k, v in self.kwargs.items()}

    def rows(self, count: int) -> Batch:
        """The first ``count`` rows (a view)."""
        if count >= self.size:
            return self

        def head(v):
            return v[:count] if self.is_batch(v) else v

        args = tuple(head(v) for v in self.args)
        return Batch(args, {k: head(v) for k, v in self.kwargs.items()}, count, self.shared)

    def batch_bytes(self) -> int:
        """Bytes of the batch tensors that are replicated per sample (not the shared ones)."""
        values = [v for i, v in enumerate(self.args) if i not in self.shared] + list(self.kwargs.values())
        return sum(v.nelement() * v.element_size() for v in values if self.is_batch(v))

    def row_key(self) -> tuple:
        """Shapes and dtypes of one row of every batch tensor (the chunk-size cache key)."""
        items = list(enumerate(self.args)) + sorted(self.kwargs.items())
        return tuple((k, tuple(v.shape[1:]), v.dtype) for k, v in items if self.is_batch(v))


# CPU allocation failures are plain RuntimeErrors; this is the allocator's own message.
_CPU_ALLOCATOR_FAILURE = "DefaultCPUAllocator: can't allocate memory"


def is_out_of_memory(error: BaseException) -> bool:
    """An allocation failure (CUDA/MPS ``OutOfMemoryError``, CPU allocator, ``MemoryError``)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return type(error) is RuntimeError and _CPU_ALLOCATOR_FAILURE in str(error)


class _PeakMode(StochasticMode):
    """A StochasticMode that estimates the peak bytes held by tensors the forward pass creates.

    Each new storage is counted when an operation returns it and released when the last tensor
    seen on it is garbage-collected, so the estimate follows what is alive, not the sum of
    every intermediate.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.live = 0
        self.peak = 0
        self.paused = False  # while a cached prefix computes: its memory is not per-sample work
        self._storages: dict[int, list[int]] = {}  # data_ptr -> [bytes, tensors alive]

    def hold(self, nbytes: int) -> None:
        """Count ``nbytes`` per sample that the pass holds without creating them as it runs (the
        replicated outputs of a cached prefix, which a one-sample pass does not copy)."""
        self.live += nbytes
        self.peak = max(self.peak, self.live + self.extra_bytes)

    def _release(self, pointer: int) -> None:
        entry = self._storages.get(pointer)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._storages[pointer]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs)
        if self.paused:
            return result
        for value in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(value, Tensor) and value.nelement():
                storage = value.untyped_storage()
                pointer = storage.data_ptr()
                entry = self._storages.get(pointer)
                if entry is None:
                    entry = self._storages[pointer] = [storage.nbytes(), 0]
                    self.live += entry[0]
                    self.peak = max(self.peak, self.live + self.extra_bytes)
                entry[1] += 1
                weakref.finalize(value, self._release, pointer)
        return result


def run_samples(
    forward: Callable[..., object],
    inputs: Batch,
    plan: SitePlan,
    index_map: Sequence[int] | None,
    weight_ids: Mapping[int, str],
    samples: int,
    seed: int,
    stream: int,
    chunk: int | None,
    memory_budget: int,
    bytes_per_sample_hint: float | None,
    consume: Callable[[object, int], None],
    scoped: bool = False,
    overwritable: frozenset[int] = frozenset(),
    consistent: bool = False,
    linear_scaled: frozenset[int] = frozenset(),
) -> float | None:
    """Run ``forward`` on ``samples`` replicas of ``inputs`` and feed each chunk to ``consume``.

    Args:
        forward: ``forward(n, args, kwargs, mode, entered)`` runs the stochastic part of the
            model (its tail, or the whole model) on ``n`` replicas with ``mode`` (the chunk's
            ``StochasticMode``, already entered if ``entered``) and returns the selected output.
        inputs: its inputs; the batch tensors are replicated sample-major along dim 0.
        consume: called with the chunk's output (tensors shaped ``(n, B, ...)``) and ``n``.
        scoped: ``forward`` enters the mode itself, only where stochastic calls are made (the
            measuring pass still runs wholly under it, to see every tensor).
        overwritable: sites whose input may be overwritten (see ``StochasticMode``).
        linear_scaled: overwritable sites whose only reader is a Linear (see ``StochasticMode``).
        consistent: every row of a sample gets the same noise (see ``CounterNoise``).

    Returns:
        The measured peak bytes per sample (for sizing later chunks), the hint given, or None
        when ``chunk`` was given. Without a ``chunk`` or a hint, one sample is run first to
        measure it and thrown away, so that a call's chunking depends only on its arguments.
    """
    batch = inputs.size
    bytes_per_sample = bytes_per_sample_hint
    done = 0
    workspace: dict = {}
    if chunk is None and bytes_per_sample is None:
        mode = _PeakMode(plan, CounterNoise(seed, stream, 0, 1, consistent), index_map=index_map, weight_ids=weight_ids)
        try:
            with mode:
                out = forward(1, inputs.args, inputs.kwargs, mode, True)
            del out
            bytes_per_sample = float(max(mode.peak + inputs.batch_bytes(), 1))
        except Exception as error:  # noqa: BLE001 - an allocation failure here means: one at a time
            if not is_out_of_memory(error):
                raise
            _release_cached_memory()
            bytes_per_sample = float(max(memory_budget, 1))
    if chunk is None:
        chunk = max(1, int(memory_budget // bytes_per_sample))
    while done < samples:
        n = min(chunk, samples - done)
        try:
            args, kwargs = inputs.replicated(n)
            noise = CounterNoise(seed, stream, done, n, consistent)
            mode = StochasticMode(
                plan,
                noise,
                index_map,
                weight_ids=weight_ids,
                overwritable=overwritable,
                workspace=workspace,
                linear_scaled=linear_scaled,
            )
            if scoped:
                out = forward(n, args, kwargs, mode, False)
            else:
                with mode:
                    out = forward(n, args, kwargs, mode, True)
            del args, kwargs
        except Exception as error:  # noqa: BLE001 - re-raised unless it is an OOM we can halve
            if not is_out_of_memory(error) or n == 1:
                raise
            chunk = max(1, n // 2)
            _release_cached_memory()
            continue
        consume(_split_samples(out, n, batch), n)
        done += n
    return bytes_per_sample


def _release_cached_memory() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _split_samples(out: object, n: int, batch: int) -> object:
    def reshape(value):
        if not isinstance(value, Tensor):
            return value
        if value.dim() == 0 or value.shape[0] != n * batch:
            raise BayesdropError(
                f"The model's output of shape {tuple(value.shape)} does not have the batch "
                f"({n} samples x {batch} rows = {n * batch}) along dim 0; bayesdrop needs "
                "batch-first inputs and outputs."
            )
        return value.reshape(n, batch, *value.shape[1:])

    return tree_map(reshape, out)


def _at_least_float32(values: Tensor) -> Tensor:
    """Half-precision outputs (``torch.autocast``) are reduced, and reported, in float32."""
    return values.float() if values.is_floating_point() and values.element_size() < 4 else values


class _RunningMoments:
    """Mean and sum of squared deviations over samples, merged chunk by chunk (Chan et al.)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, values: Tensor) -> None:
        """``values``: ``(n, ...)`` float64."""
        n = values.shape[0]
        mean_b = values.mean(0)
        m2_b = ((values - mean_b) ** 2).sum(0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean_b, m2_b
            return
        total = self.count + n
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def variance(self) -> Tensor:
        return self.m2 / self.count


class ClassificationReducer:
    """Folds ``(n, B, C)`` chunks of model outputs into a classification ``Prediction``."""

    def __init__(self, output: str, keep_samples: bool, target: Tensor | None) -> None:
        self.output, self.keep_samples, self.target = output, keep_samples, target
        self.count = 0
        self.log_sum: Tensor | None = None  # (B, C) logsumexp over samples of log p_t
        self.entropy_sum: Tensor | None = None  # (B,)
        self.votes: Tensor | None = None  # (B, C)
        self.moments = _RunningMoments()
        self.kept: list[Tensor] = []
        self.dtype = torch.float32

    def update(self, out: object, n: int) -> None:
        if not isinstance(out, Tensor) or out.dim() != 3:
            shape = tuple(out.shape[1:]) if isinstance(out, Tensor) else type(out).__name__
            raise BayesdropError(
                "Expected the model's output to be a (B, C) tensor of class scores for "
                f"task='classification', but got {shape}."
            )
        out = _at_least_float32(out)
        self.dtype = out.dtype
        log_probs = _log_probs(out, self.output)
        probs = log_probs.exp()
        entropy = -(probs * torch.where(probs > 0, log_probs, torch.zeros_like(log_probs))).sum(-1)
        chunk_log_sum = torch.logsumexp(log_probs.double(), dim=0)
        votes = F.one_hot(log_probs.argmax(-1), log_probs.shape[-1]).sum(0)
        if self.log_sum is None:
            self.log_sum, self.entropy_sum, self.votes = chunk_log_sum, entropy.double().sum(0), votes
        else:
            self.log_sum = torch.logaddexp(self.log_sum, chunk_log_sum)
            self.entropy_sum = self.entropy_sum + entropy.double().sum(0)
            self.votes = self.votes + votes
        self.moments.update(probs.double())
        self.count += n
        if self.keep_samples:
            self.kept.append(probs)

    def finalize(self) -> Prediction:
        count = self.count
        log_mean = self.log_sum - math.log(count)
        mean = log_mean.exp()
        total = -(mean * torch.where(mean > 0, log_mean, torch.zeros_like(log_mean))).sum(-1)
        aleatoric = self.entropy_sum / count
        epistemic = (total - aleatoric).clamp_min(0)
        variation = 1 - self.votes.max(-1).values.double() / count
        log_likelihood = None
        if self.target is not None:
            log_likelihood = log_mean.gather(1, self.target.long().view(-1, 1)).squeeze(1)

        def cast(t):
            return None if t is None else t.to(self.dtype)

        kept = torch.cat(self.kept).transpose(0, 1).contiguous() if self.keep_samples else None
        return Prediction(
            task="classification",
            n_samples=count,
            mean=cast(mean),
            total=cast(total),
            aleatoric=cast(aleatoric),
            epistemic=cast(epistemic),
            variance=cast(self.moments.variance),
            log_mean=cast(log_mean),
            variation_ratio=cast(variation),
            log_likelihood=cast(log_likelihood),
            kept_samples=kept,
        )


class RegressionReducer:
    """Folds chunks of regression outputs into a ``Prediction`` (Gaussian mixture over samples).

    ``output`` is ``"mean"`` (the model returns ``(B, *out)``), ``"mean_var"`` or
    ``"mean_logvar"`` (it returns a ``(mean, var)`` / ``(mean, log_var)`` pair).
    """

    def __init__(self, output: str, tau: float | None, keep_samples: bool, target: Tensor | None) -> None:
        self.output, self.tau, self.keep_samples, self.target = output, tau, keep_samples, target
        self.count = 0
        self.moments = _RunningMoments()
        self.var_sum: Tensor | None = None
        self.ll_sum: Tensor | None = None  # (B,) logsumexp over samples of log N(y | mu_t, var_t)
        self.kept_means: list[Tensor] = []
        self.kept_vars: list[Tensor] = []
        self.dtype = torch.float32

    def update(self, out: object, n: int) -> None:
        mean, var = mean_variance(out, self.output)
        mean, var = _at_least_float32(mean), None if var is None else _at_least_float32(var)
        self.dtype = mean.dtype
        self.moments.update(mean.double())
        if var is not None:
            chunk_var = var.double().sum(0)
            self.var_sum = chunk_var if self.var_sum is None else self.var_sum + chunk_var
        if self.target is not None:
            if var is None:
                var = torch.full_like(mean, 1.0 / self.tau)
            y = self.target.to(mean.dtype).reshape(mean.shape[1:])
            log_density = -0.5 * ((y - mean) ** 2 / var + var.log() + math.log(2 * math.pi))
            per_sample = log_density.reshape(n, mean.shape[1], -1).sum(-1).double()
            chunk_ll = torch.logsumexp(per_sample, dim=0)
            self.ll_sum = chunk_ll if self.ll_sum is None else torch.logaddexp(self.ll_sum, chunk_ll)
        self.count += n
        if self.keep_samples:
            self.kept_means.append(mean)
            if var is not None:
                self.kept_vars.append(var)

    def finalize(self) -> Prediction:
        count = self.count
        mean = self.moments.mean
        epistemic = self.moments.variance
        if self.var_sum is not None:
            aleatoric = self.var_sum / count
        elif self.tau is not None:
            aleatoric = torch.full_like(mean, 1.0 / self.tau)
        else:
            aleatoric = torch.zeros_like(mean)
        total = aleatoric + epistemic
        log_likelihood = None if self.ll_sum is None else self.ll_sum - math.log(count)

        def cast(t):
            return None if t is None else t.to(self.dtype)

        def stack(kept):
            return torch.cat(kept).transpose(0, 1).contiguous() if kept else None

        return Prediction(
            task="regression",
            n_samples=count,
            mean=cast(mean),
            total=cast(total),
            aleatoric=cast(aleatoric),
            epistemic=cast(epistemic),
            variance=cast(total),
            log_likelihood=cast(log_likelihood),
            kept_samples=stack(self.kept_means) if self.keep_samples else None,
            kept_sample_variances=stack(self.kept_vars) if self.keep_samples else None,
        )
