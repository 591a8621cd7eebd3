"""Stochastic sites: where randomness enters a forward pass, caught without touching the model.

A ``torch.overrides.TorchFunctionMode`` sees every dropout call (``nn.Dropout*`` modules call the
functional forms), attention with dropout, and the ``linear``/``conv`` calls of chosen layers.
It counts those "candidate calls" in execution order, and replaces the active ones with noise
drawn for every MC sample separately. Module training flags are never changed, so BatchNorm and
every other layer stay in eval mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from . import _rng


class Method(str, Enum):
    """How a stochastic site perturbs the forward pass."""

    DROPOUT = "dropout"  #: Bernoulli unit masks, scaled by 1 / (1 - p)
    DROPCONNECT = "dropconnect"  #: Bernoulli masks on weights, one per MC sample
    GAUSSIAN = "gaussian"  #: multiplicative N(1, p / (1 - p)) noise at the dropout sites


class SiteKind(str, Enum):
    """What kind of call a site is."""

    DROPOUT = "dropout"  #: F.dropout / nn.Dropout: element-wise
    FEATURE = "feature"  #: F.dropout1d/2d/3d: whole channels
    ALPHA = "alpha"  #: F.alpha_dropout: SELU-preserving
    FEATURE_ALPHA = "feature_alpha"  #: F.feature_alpha_dropout
    ATTENTION = "attention"  #: dropout on attention weights (MHA, scaled_dot_product_attention)
    WEIGHT = "weight"  #: weights of a chosen Linear / Conv layer (DropConnect)
    LAYER_INPUT = "layer_input"  #: input of a chosen Linear / Conv layer (added dropout)


def folded_dropout_linear(
    input: Tensor, p: float, weight: Tensor, bias: Tensor | None, shared: bool, counts_linear: bool = False
) -> Tensor:
    """``linear(dropout(input, p), weight, bias)`` for consistent sampling: under a
    :class:`StochasticMode` each sample's mask ``(in,)`` is folded into its own copy of the
    weights instead of masking every row. ``shared``: ``input`` ``(B, in)`` is the same for every
    sample (a cached value, not replicated), the result ``(n * B, out)`` sample-major; otherwise
    ``input`` is ``(n * B, in)`` as usual. ``counts_linear``: the Linear is an (inactive)
    candidate call of its own, counted after the dropout. Without a mode, the deterministic layer."""
    if torch.overrides.has_torch_function((input,)):
        return torch.overrides.handle_torch_function(
            folded_dropout_linear, (input,), input, p, weight, bias, shared, counts_linear
        )
    return F.linear(input, weight, bias)


_DROPOUT_FUNCTIONS: dict[Callable, SiteKind] = {
    F.dropout: SiteKind.DROPOUT,
    F.dropout1d: SiteKind.FEATURE,
    F.dropout2d: SiteKind.FEATURE,
    F.dropout3d: SiteKind.FEATURE,
    F.alpha_dropout: SiteKind.ALPHA,
    F.feature_alpha_dropout: SiteKind.FEATURE_ALPHA,
    torch.dropout: SiteKind.DROPOUT,
    torch.feature_dropout: SiteKind.FEATURE,
    torch.alpha_dropout: SiteKind.ALPHA,
    torch.feature_alpha_dropout: SiteKind.FEATURE_ALPHA,
}
_WEIGHT_FUNCTIONS = (F.linear, F.conv1d, F.conv2d, F.conv3d)
# Random draws that bayesdrop does not control (stochastic depth, RReLU, noise layers): found in the
# probe so that the modules making them can be held in eval mode, with a warning.
_RANDOM_FUNCTIONS = frozenset(
    {
        torch.rand,
        torch.rand_like,
        torch.randn,
        torch.randn_like,
        torch.randint,
        torch.randint_like,
        torch.randperm,
        torch.bernoulli,
        torch.normal,
        torch.multinomial,
        torch.poisson,
        torch.rrelu,
        F.rrelu,
        Tensor.bernoulli_,
        Tensor.uniform_,
        Tensor.normal_,
        Tensor.exponential_,
        Tensor.random_,
        Tensor.geometric_,
        Tensor.cauchy_,
        Tensor.log_normal_,
    }
)
_SPECIAL = (
    frozenset(_DROPOUT_FUNCTIONS)
    | frozenset(_WEIGHT_FUNCTIONS)
    | _RANDOM_FUNCTIONS
    | {
        F.multi_head_attention_forward,
        F.scaled_dot_product_attention,
        folded_dropout_linear,
    }
)
_SELU_ALPHA = 1.7580993408473766  # -SELU's negative saturation, as in torch's alpha dropout


@dataclass
class SiteCall:
    """One candidate call seen while probing a forward pass."""

    index: int
    kind: SiteKind
    p: float
    where: str  # innermost module name, or "<forward>"
    function: str


@dataclass(frozen=True)
class SitePlan:
    """Which candidate calls are stochastic, and how. Immutable: a changed plan is a new one."""

    method: Method
    p_override: float | None = None
    active: frozenset[int] | None = None  # None: every candidate with p > 0
    weight_layers: tuple[str, ...] = ()  # qualified names of the Linear/Conv layers with weight sites
    weight_kind: SiteKind | None = None  # WEIGHT (dropconnect) or LAYER_INPUT
    catch_dropout_calls: bool = True

    def weight_ids(self, model: nn.Module, modules: Mapping[str, nn.Module] | None = None) -> dict[int, str]:
        """``id(weight) -> layer name`` of the model as it is now (after copies or re-loading
        the weights are new objects; the names stay). ``modules``: ``dict(model.named_modules())``."""
        if not self.weight_layers:
            return {}
        modules = dict(model.named_modules()) if modules is None else modules
        return {id(modules[name].weight): name for name in self.weight_layers if name in modules}

    def rate(self, site_p: float) -> float:
        return site_p if self.p_override is None else self.p_override

    def is_active(self, index: int, p: float) -> bool:
        if p <= 0:
            return False
        return self.active is None or index in self.active


def _complement_pays(width: int, out: int, dropped_fraction: float) -> bool:
    """Whether a Linear ``width -> out`` is cheaper through its dropped inputs: the dense product
    costs ``width * out`` multiply-adds per row and sample, the complement ``m * out`` plus
    gathering ``m`` inputs (and scattering their gradients), counted as 16 each, for ``m``
    dropped units; at most a quarter of the units, and half the dense cost."""
    most = dropped_fraction * width
    return most * 4 <= width and 2 * most * (out + 16) <= width * out


class Noise:
    """Where the random numbers come from."""

    def keep_mask(
        self,
        site: int,
        shape: torch.Size,
        p: float,
        device: torch.device,
        out: Tensor | None = None,
        scale=1.0,
        scratch: dict | None = None,
    ) -> Tensor:
        """Keep decisions (P = 1 - p): bool, or ``keep * scale`` written into the float tensor
        ``out``. ``scratch``: a dict kept across chunks for temporaries (see ``_rng._scratch``)."""
        raise NotImplementedError

    def normal(self, site: int, shape: torch.Size, dtype: torch.dtype, device) -> Tensor:
        raise NotImplementedError

    def keep_in_place(self, site: int, x: Tensor, p: float, scale: float, scratch: dict | None = None) -> bool:
        """Multiply ``x`` (contiguous, one keep decision per element) by ``keep * scale`` in
        place, the same values as with :meth:`keep_mask`, if this source can do so without a
        mask tensor; False (nothing done) otherwise."""
        return False

    n_samples: int = 1
    consistent: bool = False  # the same noise for every row of a sample


class CounterNoise(Noise):
    """Seeded, chunk-invariant noise for samples ``first_sample .. first_sample + n_samples``;
    ``consistent``: one draw per sample shared by all rows (the same K sub-networks for every
    input, whatever the batching)."""

    def __init__(self, seed: int, stream: int, first_sample: int, n_samples: int, consistent: bool = False) -> None:
        self.seed, self.stream = seed, stream
        self.first_sample, self.n_samples = first_sample, n_samples
        self.consistent = consistent

    def keep_mask(self, site, shape, p, device, out=None, scale=1.0, scratch=None):
        return _rng.bernoulli_keep(
            self.seed,
            self.stream,
            site,
            self.first_sample,
            self.n_samples,
            shape,
            p,
            device,
            out,
            scale,
            scratch=scratch,
        )

    def normal(self, site, shape, dtype, device):
        return _rng.standard_normal(
            self.seed, self.stream, site, self.first_sample, self.n_samples, shape, dtype, device
        )

    def keep_in_place(self, site, x, p, scale, scratch=None):
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or not x.is_contiguous():
            return False
        target = x.detach().numpy().reshape(self.n_samples, -1)
        _rng.multiply_by_keep(
            self.seed, self.stream, site, self.first_sample, self.n_samples, target, p, scale, scratch
        )
        return True


class TorchNoise(Noise):
    """Noise from torch's global generator: training-time forward passes (one sample)."""

    def keep_mask(self, site, shape, p, device, out=None, scale=1.0, scratch=None):
        keep = torch.rand(shape, device=device) >= p
        return keep if out is None else out.view(shape).copy_(keep.view(torch.uint8)).mul_(scale)

    def normal(self, site, shape, dtype, device):
        return torch.randn(shape, dtype=dtype, device=device)


_FLOAT_MASK_ELEMENTS = 1 << 16  # below this a bool mask is cheaper than converting it


def _arg(args: Sequence, kwargs: dict, position: int, name: str, default):
    if len(args) > position:
        return args[position]
    return kwargs.get(name, default)


class StochasticMode(TorchFunctionMode):
    """Counts candidate calls and makes the active ones stochastic.

    Args:
        plan: which calls are active and the method.
        noise: the noise source, or None to make every candidate call deterministic (eval).
        index_map: maps the local count of candidate calls to the global site index (the
            index in a full forward pass), used when only the tail of a split model runs.
        record: if given, every candidate call is appended to it.
        module_stack: names of the modules being executed (innermost last), for ``record``.
        weight_ids: ``id(weight) -> layer name`` for weight sites (``plan.weight_ids(model)``).
        overwritable: dropout sites whose input nothing else reads (found on the traced graph):
            with more than one sample and no autograd, their noise is applied in place, which
            saves a fresh allocation per chunk. The values are the same either way.
        workspace: mask buffers shared by the chunks of one run (a dict the engine owns).
        linear_scaled: overwritable sites whose output only a ``Linear`` reads (found on the
            traced graph): when their keep decisions are applied in place, the ``1 / (1 - p)``
            scale goes into that Linear's weight instead of a pass over the activations.
    """

    def __init__(
        self,
        plan: SitePlan,
        noise: Noise | None,
        index_map: Sequence[int] | None = None,
        record: list[SiteCall] | None = None,
        module_stack: list[str] | None = None,
        weight_ids: Mapping[int, str] | None = None,
        overwritable: frozenset[int] = frozenset(),
        workspace: dict | None = None,
        linear_scaled: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__()
        self.plan, self.noise, self.index_map = plan, noise, index_map
        self.overwritable, self.workspace = overwritable, workspace
        self.linear_scaled = linear_scaled
        self._unscaled: tuple[Tensor, float] | None = None  # a dropout output whose Linear owes its scale
        self.record, self.module_stack = record, module_stack
        self.weight_ids = weight_ids or {}
        self.count = 0
        self.extra_bytes = 0  # bytes of per-sample weights made inside handlers (chunk sizing)

    # -- bookkeeping -------------------------------------------------------------------------
    def _next_site(self, kind: SiteKind, p: float, function: str) -> tuple[int, float, bool]:
        local = self.count
        self.count += 1
        index = self.index_map[local] if self.index_map is not None else local
        rate = self.plan.rate(p)
        if self.record is not None:
            where = self.module_stack[-1] if self.module_stack else "<forward>"
            self.record.append(SiteCall(index, kind, rate, where, function))
        active = self.noise is not None and self.plan.is_active(index, rate)
        return index, rate, active

    # -- noise ---------------------------------------------------------------------------------
    def _buffer(self, site: int, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A float tensor of ``shape`` for a mask: from ``workspace`` (reused by the next chunk,
        so only without autograd, which would save it), else new."""
        numel = shape.numel()
        if self.workspace is None or torch.is_grad_enabled():
            return torch.empty(shape, dtype=dtype, device=device)
        key = (site, dtype, device)
        buffer = self.workspace.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = self.workspace[key] = torch.empty(numel, dtype=dtype, device=device)
        return buffer[:numel].view(shape)

    def _n(self) -> int:
        return self.noise.n_samples if self.noise is not None else 1

    def _element_noise(self, x: Tensor, site: int, p: float, kind: SiteKind) -> Tensor:
        """Apply the method's noise to ``x`` (dim 0 sample-major) for a dropout-like site."""
        noise = self.noise
        feature = kind in (SiteKind.FEATURE, SiteKind.FEATURE_ALPHA)
        shape = x.shape[:2] + (1,) * (x.dim() - 2) if feature and x.dim() > 2 else x.shape
        target = x
        if noise.consistent:  # one mask per sample, shared by every row: (T, 1, ...) against (T, rows, ...)
            n = noise.n_samples
            if x.dim() == 0 or x.shape[0] % n:
                raise RuntimeError(f"consistent sampling needs {n} samples x rows along dim 0, got {tuple(x.shape)}")
            target = x.view(n, x.shape[0] // n, *x.shape[1:]) if x.is_contiguous() else x.reshape(n, -1, *x.shape[1:])
            shape = torch.Size((n, 1, *shape[1:]))
        return self._apply_noise(target, site, p, kind, shape).reshape(x.shape)

    def _apply_noise(self, x: Tensor, site: int, p: float, kind: SiteKind, shape: torch.Size) -> Tensor:
        noise = self.noise
        if self.plan.method is Method.GAUSSIAN:
            return x * self._sample_factor(site, p, shape, x.dtype, x.device)
        if kind in (SiteKind.DROPOUT, SiteKind.FEATURE, SiteKind.ATTENTION, SiteKind.LAYER_INPUT) and p < 1.0:
            # Large masks as floats (a bool factor sends x through a slow casting loop), written into
            # a buffer kept across chunks when autograd does not hold on to it; in float32/64 the
            # mask holds 1 / (1 - p) itself (the same product as scaling afterwards).
            scale = 1.0 / (1.0 - p)
            overwrite = (
                site in self.overwritable and not torch.is_grad_enabled() and noise.n_samples > 1 and x.is_contiguous()
            )  # a batch of one replicates as a stride-0 view of the prefix's output: never written
            if shape.numel() >= _FLOAT_MASK_ELEMENTS:
                folded = x.dtype in (torch.float32, torch.float64)
                # one pass less: keep decisions applied to x itself, no float mask
                if overwrite and folded and shape == x.shape:
                    later = site in self.linear_scaled  # the Linear reading x takes the scale into its weight
                    if noise.keep_in_place(site, x, p, 1.0 if later else scale, self.workspace):
                        self._unscaled = (x, scale) if later else None
                        return x
                mask, left = self._float_keep(site, p, shape, self._buffer(site, shape, x.dtype, x.device))
                result = x.mul_(mask) if overwrite else x * mask
                return result if left == 1.0 else result.mul_(left)
            keep = noise.keep_mask(site, shape, p, x.device).view(torch.uint8)  # bool factors are slow
            return (x.mul_(keep) if overwrite else x.mul(keep)).mul_(scale)
        keep = noise.keep_mask(site, shape, p, x.device)
        if kind in (SiteKind.ALPHA, SiteKind.FEATURE_ALPHA):
            a = 1.0 / math.sqrt((_SELU_ALPHA**2 * p + 1.0) * (1.0 - p))
            keep_f = keep.to(x.dtype)
            return x * (keep_f * a) + (keep_f - 1.0) * (_SELU_ALPHA * a) + _SELU_ALPHA * a * p
        if p >= 1.0:
            return x * 0.0
        return x.mul(keep).mul_(1.0 / (1.0 - p))

    # -- dispatch ------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        # Every torch call of the forward pass comes through here: one dict look-up for the rest.
        if func not in _SPECIAL:
            return func(*args, **kwargs) if kwargs else func(*args)
        kwargs = kwargs or {}
        kind = _DROPOUT_FUNCTIONS.get(func)
        catch = self.plan.catch_dropout_calls
        if kind is not None:
            # Under DropConnect the model's own dropout is off (training flags may be on).
            return self._dropout_call(func, kind, args, kwargs) if catch else _arg(args, kwargs, 0, "input", None)
        if func in _WEIGHT_FUNCTIONS:
            weight = _arg(args, kwargs, 1, "weight", None)
            if weight is not None and id(weight) in self.weight_ids:
                return self._weight_call(func, args, kwargs)
            if self._unscaled is not None and func is F.linear:
                x, bias = _arg(args, kwargs, 0, "input", None), _arg(args, kwargs, 2, "bias", None)
                owed = self._owed_scale(x)
                return F.linear(x, weight if owed is None else weight * owed, bias)
            return func(*args, **kwargs)
        if func is F.multi_head_attention_forward:
            if catch:
                return self._mha_call(func, args, kwargs)
            return func(**{**_bind_mha(args, kwargs), "training": False, "dropout_p": 0.0})
        if func is folded_dropout_linear:
            return self._folded_dropout_linear_call(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            if catch:
                return self._sdpa_call(func, args, kwargs)
            args, kwargs = _without_attention_dropout(args, kwargs)
            return func(*args, **kwargs)
        return func(*args, **kwargs)  # a random draw: only the probe looks at those

    def _dropout_call(self, func, kind, args, kwargs):
        x = _arg(args, kwargs, 0, "input", None)
        p = float(_arg(args, kwargs, 1, "p", 0.5))
        site, rate, active = self._next_site(kind, p, func.__name__)
        if not active:
            return x
        return self._element_noise(x, site, rate, kind)

    def _owed_scale(self, x: Tensor) -> float | None:
        """The ``1 / (1 - p)`` a Linear reading ``x`` owes, when ``x`` is the dropout output left
        unscaled for it (see ``linear_scaled``): its weight takes the scale,
        ``(x * keep) (W / (1 - p))^T + b``. None otherwise."""
        if self._unscaled is None:
            return None
        held, scale = self._unscaled
        if not (isinstance(x, Tensor) and x.data_ptr() == held.data_ptr() and x.shape == held.shape):
            return None
        self._unscaled = None
        return scale

    def _folded_dropout_linear_call(
        self, x: Tensor, p: float, weight: Tensor, bias: Tensor | None, shared: bool, counts_linear: bool = False
    ) -> Tensor:
        site, rate, active = self._next_site(SiteKind.DROPOUT, float(p), "dropout")
        if counts_linear and self._next_site(self.plan.weight_kind, self.plan.rate(0.0), "linear")[2]:
            raise RuntimeError("a folded Linear cannot carry an active weight or layer-input site")
        n = self._n()
        if not active:
            y = F.linear(x, weight, bias)
            return y.unsqueeze(0).expand(n, *y.shape).reshape(n * y.shape[0], *y.shape[1:]) if shared else y
        if not self.noise.consistent or x.dim() != 2:  # not what the fold was built for: the plain way
            rows = x.unsqueeze(0).expand(n, *x.shape).reshape(n * x.shape[0], *x.shape[1:]) if shared else x
            return F.linear(self._element_noise(rows, site, rate, SiteKind.DROPOUT), weight, bias)
        width, out = x.shape[-1], weight.shape[0]
        factor = self._sample_factor(site, rate, torch.Size((n, 1, width)), weight.dtype, weight.device)
        # at a low rate, a shared input's product may be cheaper through the dropped units alone
        if shared and self.plan.method is Method.DROPOUT and 0.0 < rate < 1.0 and _complement_pays(width, out, rate):
            y = self._complement_linear(x, factor.view(n, width) == 0, rate, weight, bias)
            if y is not None:
                return y
        weights = weight * factor  # (n, out, in): sample t's weight times its mask
        if shared:  # one product for all samples: (B, in) x (in, n * out)
            y = torch.matmul(x, weights.reshape(n * out, width).t()).view(x.shape[0], n, out).movedim(1, 0)
        else:
            y = torch.bmm(x.reshape(n, -1, width), weights.transpose(1, 2))
        if bias is not None:
            y = y + bias
        return y.reshape(-1, out)

    def _complement_linear(self, x: Tensor, dropped: Tensor, p: float, weight: Tensor, bias: Tensor | None):
        """The shared-input fold at a low rate (``dropped``: ``(n, in)`` bool): sample t's
        product is the full product minus the dropped units' part, ``(x W^T - x[:, D_t]
        W[:, D_t]^T) / (1 - p)``, so its cost grows with the dropped units D_t, not the width.
        None when that does not pay for the sample that drops most (:func:`_complement_pays`)."""
        (n, width), out = dropped.shape, weight.shape[0]
        counts = dropped.sum(1)
        most = int(counts.max())
        if not _complement_pays(width, out, most / width):
            return None
        scale = 1.0 / (1.0 - p)
        full = F.linear(x, weight * scale, None if bias is None else bias)  # (B, out)
        if most == 0:
            return full.unsqueeze(0).expand(n, *full.shape).reshape(n * x.shape[0], out)
        rows, columns = dropped.nonzero(as_tuple=True)  # row-major: each sample's dropped units in order
        rank = torch.arange(rows.numel(), device=rows.device) - (counts.cumsum(0) - counts)[rows]
        index = torch.zeros(n, most, dtype=torch.long, device=rows.device)
        present = torch.zeros(n, most, dtype=weight.dtype, device=weight.device)
        index[rows, rank], present[rows, rank] = columns, 1.0
        part_weight = weight.t()[index] * present.unsqueeze(-1)  # (n, most, out); padding rows are 0
        part_x = x[:, index.reshape(-1)].view(x.shape[0], n, most).transpose(0, 1)  # (n, B, most)
        y = torch.baddbmm(full, part_x, part_weight, alpha=-scale)  # (n, B, out)
        return y.reshape(n * x.shape[0], out)

    def _sample_factor(self, site: int, p: float, shape: torch.Size, dtype: torch.dtype, device) -> Tensor:
        """The multiplicative noise of a dropout site as a float tensor of ``shape`` (what
        :meth:`_apply_noise` multiplies by, with the same bits)."""
        if self.plan.method is Method.GAUSSIAN:
            std = math.sqrt(p / (1.0 - p))
            return 1.0 + std * self.noise.normal(site, shape, dtype, device)
        if p >= 1.0:
            return torch.zeros(shape, dtype=dtype, device=device)
        mask, left = self._float_keep(site, p, shape, torch.empty(shape, dtype=dtype, device=device))
        return mask if left == 1.0 else mask.mul_(left)

    def _float_keep(self, site: int, p: float, shape: torch.Size, out: Tensor) -> tuple[Tensor, float]:
        """The keep decisions of a dropout site written into the float tensor ``out`` (of
        ``shape``'s size), and the scale still to apply: in float32/64 the mask holds
        ``1 / (1 - p)`` itself (left: 1.0); a half-precision mask holds 0/1 and leaves the scale,
        which rounded to half precision would change the product."""
        scale = 1.0 / (1.0 - p)
        folded = out.dtype in (torch.float32, torch.float64)
        mask = self.noise.keep_mask(site, shape, p, out.device, out, scale if folded else 1.0, self.workspace)
        return mask, 1.0 if folded else scale

    def _weight_call(self, func, args, kwargs):
        args = list(args)
        x = args[0] if args else kwargs.pop("input")
        weight = args[1] if len(args) > 1 else kwargs.pop("weight")
        rest, bias = args[2:], None
        if rest:
            bias, rest = rest[0], rest[1:]
        else:
            bias = kwargs.pop("bias", None)
        kind = self.plan.weight_kind
        site, rate, active = self._next_site(kind, self.plan.rate(0.0), func.__name__)
        owed = self._owed_scale(x) if func is F.linear else None
        if not active:
            return func(x, weight if owed is None else weight * owed, bias, *rest, **kwargs)
        if owed is not None:  # not a chain linear_scaled is built for; settle the scale first
            x = x * owed
        if kind is SiteKind.LAYER_INPUT:
            return func(self._element_noise(x, site, rate, SiteKind.DROPOUT), weight, bias, *rest, **kwargs)
        n = self._n()
        if x.shape[0] % n:
            raise RuntimeError(f"batch of {x.shape[0]} rows is not a multiple of {n} samples")
        shape = torch.Size((n,) + tuple(weight.shape))
        if self.plan.method is Method.GAUSSIAN:
            std = math.sqrt(rate / (1.0 - rate))
            weights = weight * (1.0 + std * self.noise.normal(site, shape, weight.dtype, weight.device))
        else:
            keep = self.noise.keep_mask(site, shape, rate, weight.device)
            weights = torch.where(
                keep, weight * (1.0 / (1.0 - rate)), torch.zeros((), dtype=weight.dtype, device=weight.device)
            )
        self.extra_bytes += weights.nelement() * weights.element_size() * 2
        if func is F.linear:
            return _per_sample_linear(x, weights, bias)
        return _per_sample_conv(func, x, weights, bias, rest, kwargs)

    def _mha_call(self, func, args, kwargs):
        dropout_p = float(_arg(args, kwargs, 10, "dropout_p", 0.0))  # passed by the module in eval mode too
        site, rate, active = self._next_site(SiteKind.ATTENTION, dropout_p, "multi_head_attention_forward")
        bound = _bind_mha(args, kwargs)
        bound["training"], bound["dropout_p"] = False, 0.0
        if not active:
            return func(**bound)
        return _mha_with_dropout(func, bound, lambda w: self._element_noise(w, site, rate, SiteKind.DROPOUT))

    def _sdpa_call(self, func, args, kwargs):
        dropout_p = float(_arg(args, kwargs, 4, "dropout_p", 0.0))
        site, rate, active = self._next_site(SiteKind.ATTENTION, dropout_p, "scaled_dot_product_attention")
        args, kwargs = _without_attention_dropout(args, kwargs)
        if not active:
            return func(*args, **kwargs)
        return _attention_with_dropout(args, kwargs, lambda w: self._element_noise(w, site, rate, SiteKind.DROPOUT))


class ProbeMode(StochasticMode):
    """The first call's mode: no noise; also notes every random draw that bayesdrop does not
    control (``random_calls``: ``(function, module)``) and, for each tensor, the last operation
    that read it (``uses``: ``id -> operation number``; ``ops`` counts operations)."""

    def __init__(self, plan: SitePlan, record: list[SiteCall], weight_ids: Mapping[int, str]) -> None:
        super().__init__(plan, None, record=record, module_stack=[], weight_ids=weight_ids)
        self.random_calls: list[tuple[str, str]] = []
        self.uses: dict[int, int] = {}
        self.ops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        for value in tree_leaves((args, kwargs)):
            if isinstance(value, Tensor):
                self.uses[id(value)] = self.ops
        if func in _RANDOM_FUNCTIONS:
            where = self.module_stack[-1] if self.module_stack else "<forward>"
            self.random_calls.append((getattr(func, "__name__", str(func)), where))
        return super().__torch_function__(func, types, args, kwargs)


_MHA_ARGUMENTS = (
    "query",
    "key",
    "value",
    "embed_dim_to_check",
    "num_heads",
    "in_proj_weight",
    "in_proj_bias",
    "bias_k",
    "bias_v",
    "add_zero_attn",
    "dropout_p",
    "out_proj_weight",
    "out_proj_bias",
    "training",
    "key_padding_mask",
    "need_weights",
    "attn_mask",
    "use_separate_proj_weight",
    "q_proj_weight",
    "k_proj_weight",
    "v_proj_weight",
    "static_k",
    "static_v",
    "average_attn_weights",
    "is_causal",
)


def _without_attention_dropout(args: Sequence, kwargs: dict) -> tuple[list, dict]:
    """scaled_dot_product_attention's arguments with ``dropout_p=0``."""
    args, kwargs = list(args), dict(kwargs)
    if len(args) > 4:
        args[4] = 0.0
    else:
        kwargs["dropout_p"] = 0.0
    return args, kwargs


def _bind_mha(args: Sequence, kwargs: dict) -> dict:
    bound = dict(zip(_MHA_ARGUMENTS, args, strict=False))
    bound.update(kwargs)
    return bound


def _mha_with_dropout(func, bound: dict, drop: Callable[[Tensor], Tensor]):
    """``F.multi_head_attention_forward`` with ``drop`` on the attention weights.

    Torch applies that dropout inside the function, out of reach of a torch-function mode; so the
    per-head attention weights are computed by torch (without dropout), and the rest, weights x
    values and the output projection, is written out here. Nothing global is patched.
    """
    unsupported = [name for name in ("bias_k", "bias_v", "static_k", "static_v") if bound.get(name) is not None] + (
        ["add_zero_attn"] if bound.get("add_zero_attn") else []
    )
    if unsupported:
        raise NotImplementedError(
            f"bayesdrop: attention dropout of nn.MultiheadAttention with {', '.join(unsupported)} is not supported; "
            "wrap with mode='eval' or set the attention dropout to 0."
        )
    need_weights = bound.get("need_weights", True)
    average = bound.get("average_attn_weights", True)
    query, value = bound["query"], bound["value"]
    unbatched = query.dim() == 2
    _, weights = func(**{**bound, "need_weights": True, "average_attn_weights": False})  # (N, H, L, S)
    if unbatched:
        weights = weights.unsqueeze(0)
        value = value.unsqueeze(1)
    embed, heads = bound["embed_dim_to_check"], bound["num_heads"]
    if bound.get("use_separate_proj_weight"):
        value_weight = bound["v_proj_weight"]
    else:
        value_weight = bound["in_proj_weight"][2 * embed :]
    in_bias = bound.get("in_proj_bias")
    value_bias = None if in_bias is None else in_bias[2 * embed :]
    values = F.linear(value, value_weight, value_bias)  # (S, N, E)
    source, batch = values.shape[0], values.shape[1]
    values = values.reshape(source, batch, heads, embed // heads).permute(1, 2, 0, 3)  # (N, H, S, E/H)
    dropped = drop(weights)
    out = (dropped @ values).permute(2, 0, 1, 3).reshape(weights.shape[2], batch, embed)  # (L, N, E)
    out = F.linear(out, bound["out_proj_weight"], bound.get("out_proj_bias"))
    if unbatched:
        out, dropped = out.squeeze(1), dropped.squeeze(0)
    if not need_weights:
        return out, None
    return out, (dropped.mean(dim=-3) if average else dropped)


def _attention_with_dropout(args, kwargs, drop: Callable[[Tensor], Tensor]) -> Tensor:
    """scaled_dot_product_attention written out, with ``drop`` on the attention weights."""
    names = ["query", "key", "value", "attn_mask", "dropout_p", "is_causal"]
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    if bound.get("enable_gqa", False):
        raise NotImplementedError("bayesdrop: scaled_dot_product_attention(enable_gqa=True) with dropout")
    q, k, v = bound["query"], bound["key"], bound["value"]
    scale = bound.get("scale") or 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(-2, -1)) * scale
    if bound.get("is_causal", False):
        causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    mask = bound.get("attn_mask")
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return drop(torch.softmax(scores, dim=-1)) @ v


def _per_sample_linear(x: Tensor, weights: Tensor, bias: Tensor | None) -> Tensor:
    """``x`` (n*B, ..., in) with weights (n, out, in): each sample block uses its own weight."""
    n = weights.shape[0]
    lead = x.shape[:-1]
    y = torch.bmm(x.reshape(n, -1, x.shape[-1]), weights.transpose(1, 2))
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, weights.shape[1])


def _per_sample_conv(func, x: Tensor, weights: Tensor, bias, rest, kwargs) -> Tensor:
    """Conv with a different weight per sample block, as one grouped convolution."""
    names = ["stride", "padding", "dilation", "groups"]
    options = dict(zip(names, rest, strict=False))
    options.update(kwargs)
    groups = int(options.pop("groups", 1))
    n = weights.shape[0]
    rows = x.shape[0] // n
    spatial = x.shape[2:]
    x_grouped = x.reshape(n, rows, x.shape[1], *spatial).transpose(0, 1).reshape(rows, n * x.shape[1], *spatial)
    w_grouped = weights.reshape(n * weights.shape[1], *weights.shape[2:])
    b_grouped = None if bias is None else bias.repeat(n)
    y = func(x_grouped, w_grouped, b_grouped, groups=groups * n, **options)
    out = weights.shape[1]
    return y.reshape(rows, n, out, *y.shape[2:]).transpose(0, 1).reshape(n * rows, out, *y.shape[2:])
