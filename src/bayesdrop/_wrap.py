"""``wrap``: turn any ``nn.Module`` into an MC model; ``unwrap`` gives it back untouched.

An ``MCModel`` is a thin module around the user's model and an immutable plan (``Settings``:
task, method, rates, output). What it learns on the first call (which calls are stochastic, how
the work is split, the memory per sample) lives in a runtime state that copies and pickles drop
and rebuild, so a deep copy, a pickled model or re-loaded weights sample exactly like the
original.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import threading
import warnings
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _split
from ._engine import Batch, ClassificationReducer, RegressionReducer, run_samples
from ._errors import BayesdropError, BayesdropWarning, expected
from ._modules import (
    CallRecorder,
    ModulePrefixCache,
    ScopedModes,
    flag_plan,
    prefix_modules,
    sampling_flags,
    used_outputs,
)
from ._sites import (
    _DROPOUT_FUNCTIONS,
    Method,
    ProbeMode,
    SiteCall,
    SiteKind,
    SitePlan,
    StochasticMode,
    TorchNoise,
    folded_dropout_linear,
)
from .layers import ConcreteDropout
from .outputs import CLASSIFICATION_OUTPUTS, PAIR_OUTPUTS, REGRESSION_OUTPUTS, Output, Selector, select
from .prediction import Prediction

__all__ = ["MCModel", "Mode", "Task", "wrap", "unwrap"]


class Task(str, Enum):
    """What the model predicts."""

    CLASSIFICATION = "classification"  #: class scores (B, C)
    REGRESSION = "regression"  #: real values (B, *out), optionally with a variance head


class Mode(str, Enum):
    """Which of the model's own dropout calls are sampled."""

    #: every dropout the model applies when it trains, at its training rate (also attention
    #: dropout written ``p if self.training else 0``); normalisation layers stay in eval mode and
    #: no buffer changes
    TRAIN = "train"
    #: modules stay in eval mode: dropout calls written ``training=self.training`` (and dropout
    #: modules) are sampled, dropout gated by ``p if self.training else 0`` is not
    EVAL = "eval"


_OUTPUTS = {Task.CLASSIFICATION: CLASSIFICATION_OUTPUTS, Task.REGRESSION: REGRESSION_OUTPUTS}
_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DEFAULT_BUDGET_CPU = 16 * 2**20
_SIZE_CACHE_ENTRIES = 64  # chunk sizes remembered per input row shape (variable sequence lengths)
_PROBE_ROWS = 4  # rows of the real input on which a split is checked against full replication
_READ_ONLY = ("task", "method", "p", "last_layer", "layers", "output", "select", "mode", "memory_budget")


def _choice(argument: str, value, enum: type[Enum]):
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise expected(argument, f"one of {allowed}", value) from None


@dataclass(frozen=True)
class Settings:
    """What the user chose when wrapping; fixed for the life of an ``MCModel``."""

    task: Task
    method: Method
    p: float | None
    last_layer: bool
    layers: tuple[str, ...] | None  # names of the chosen Linear/Conv layers; None: not given
    output: Output
    select: Selector
    mode: Mode
    memory_budget: int | None


# One lock per wrapped model object: sampling sets training flags on its modules and, for the
# module-boundary prefix cache, replaces some modules' forward for the duration of a call.
_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _model_lock(model: nn.Module) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def _forget_locks_in_child() -> None:  # a forked child has one thread: locks held by others are gone
    global _LOCKS, _LOCKS_GUARD
    _LOCKS, _LOCKS_GUARD = weakref.WeakKeyDictionary(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


@dataclass
class _Route:
    """How samples are computed: ``fx`` (traced prefix), ``modules`` (prefix cached at module
    boundaries), or ``full`` (the whole model replicated)."""

    kind: str
    note: str
    split: _split.Split | None = None
    prefix_modules: tuple[str, ...] = ()
    scopes: dict[str, tuple[int, ...]] | None = None  # see ScopedModes
    used: dict | None = None  # prefix outputs that are read later (see used_outputs); None: all


class _Runtime:
    """What an MCModel learns on its first call. Not copied or pickled: rebuilt on first use."""

    def __init__(self) -> None:
        self.plan: SitePlan | None = None  # with the active sites chosen
        self.sites: list[SiteCall] = []
        self.held_in_eval: frozenset[str] = frozenset()
        self.route: _Route | None = None
        self.bytes_per_row: collections.OrderedDict = collections.OrderedDict()
        self.warned: set[str] = set()
        self.modules: dict[str, nn.Module] = {}  # the model's named modules, as probed
        self.flags: list = []  # flag_plan of the sampling flags


def _static_dropout_sites(model: nn.Module) -> int:
    """Dropout modules with p > 0 (and attention with dropout) found without running the model."""
    count = 0
    for m in model.modules():
        if isinstance(m, _DROPOUT_MODULES) and m.p > 0:
            count += 1
        elif isinstance(m, nn.MultiheadAttention) and m.dropout > 0:
            count += 1
        elif isinstance(m, ConcreteDropout):
            count += 1
    return count


def _resolve_layers(model: nn.Module, layers) -> list[tuple[str, nn.Module]]:
    named = dict(model.named_modules())
    candidates = [(n, m) for n, m in named.items() if isinstance(m, _WEIGHT_LAYERS)]
    if layers is None:
        return candidates
    if isinstance(layers, (str, type)):
        layers = [layers]
    chosen: list[tuple[str, nn.Module]] = []
    for item in layers:
        if isinstance(item, type):
            found = [(n, m) for n, m in named.items() if isinstance(m, item) and isinstance(m, _WEIGHT_LAYERS)]
            if not found:
                raise expected(
                    "layers",
                    f"layer types present in {type(model).__name__} (Linear / Conv1d / Conv2d / Conv3d)",
                    item.__name__,
                )
        elif isinstance(item, str):
            if item not in named:
                options = ", ".join(n for n, _ in candidates) or "none"
                raise expected("layers", f"names of Linear/Conv layers of {type(model).__name__} ({options})", item)
            if not isinstance(named[item], _WEIGHT_LAYERS):
                raise expected("layers", "names of Linear or Conv layers", f"{item} ({type(named[item]).__name__})")
            found = [(item, named[item])]
        else:
            raise expected("layers", "layer names (str) or layer types", item)
        chosen.extend(f for f in found if f not in chosen)
    return chosen


class MCModel(nn.Module):
    """A model wrapped for Monte-Carlo sampling. Build it with :func:`bayesdrop.wrap`.

    Calling it (``mc(x)``) is calling the model: in train mode with the plan's noise (the rate
    ``p`` overrides included, DropConnect and Gaussian noise too), in eval mode deterministic.
    ``predict`` draws MC samples through the sampling engine. The settings (``task``,
    ``method``, ``p``, ``last_layer``, ``layers``, ``output``, ``select``, ``mode``,
    ``memory_budget``) are read-only: :meth:`with_options` gives a new wrapper of the same model.
    ``tau`` may be changed (``fit_tau`` sets it).

    One ``predict`` runs at a time per wrapped model (a lock): while it runs, the model's
    training flags are the sampling flags, so do not call the same model object from another
    thread meanwhile.
    """

    def __init__(self, model: nn.Module, settings: Settings, tau: float | None) -> None:
        super().__init__()
        self.model = model
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_tau", tau)
        object.__setattr__(self, "_runtime", _Runtime())
        # Layers with weight sites: the chosen ones, or every Linear and Conv (DropConnect's default,
        # and where dropout is added to a model without any). Their calls are counted as candidate
        # sites, so the site numbering (and the random streams keyed by it) is the same either way.
        weight_layers = settings.layers
        if weight_layers is None:
            weight_layers = tuple(name for name, _ in _resolve_layers(model, None))
        if settings.method is Method.DROPCONNECT:
            base = SitePlan(settings.method, settings.p, None, weight_layers, SiteKind.WEIGHT, False)
        else:
            base = SitePlan(settings.method, settings.p, None, weight_layers, SiteKind.LAYER_INPUT, True)
        object.__setattr__(self, "_base_plan", base)

    # -- settings: read-only, except tau ------------------------------------------------------
    task = property(lambda self: self._settings.task, doc="classification or regression")
    method = property(lambda self: self._settings.method, doc="dropout, dropconnect or gaussian")
    p = property(lambda self: self._settings.p, doc="the rate override, or None")
    last_layer = property(lambda self: self._settings.last_layer, doc="only the last stochastic call")
    layers = property(lambda self: self._settings.layers, doc="names of the chosen layers, or None")
    output = property(lambda self: self._settings.output.value, doc="what the selected output means")
    select = property(lambda self: self._settings.select, doc="which part of the output is sampled")
    mode = property(lambda self: self._settings.mode, doc="train: training-time dropout; eval: eval mode")
    memory_budget = property(lambda self: self._settings.memory_budget, doc="bytes per chunk, or None")

    @property
    def tau(self) -> float | None:
        """Model precision of a point-output regression model (aleatoric variance 1 / tau)."""
        return self._tau

    @tau.setter
    def tau(self, value: float | None) -> None:
        object.__setattr__(self, "_tau", _check_tau(value, self._settings.task))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _READ_ONLY:
            raise AttributeError(
                f"MCModel.{name} is fixed when the model is wrapped (sampling would not follow a change); "
                f"use mc.with_options({name}=...) for a new wrapper of the same model."
            )
        super().__setattr__(name, value)

    def with_options(self, **changes: Any) -> MCModel:
        """A new ``MCModel`` of the same model with some settings changed (``p=0.05``, ...)."""
        s = self._settings
        current = {
            "task": s.task.value,
            "method": s.method.value,
            "p": s.p,
            "last_layer": s.last_layer,
            "layers": list(s.layers) if s.layers is not None else None,
            "output": s.output.value,
            "select": s.select,
            "mode": s.mode.value,
            "tau": self._tau,
            "memory_budget": s.memory_budget,
        }
        unknown = set(changes) - set(current)
        if unknown:
            raise expected("with_options", f"settings among {sorted(current)}", sorted(unknown))
        if "task" in changes and "output" not in changes:
            current["output"] = None
        return wrap(self.model, **{**current, **changes})

    # -- copies and pickles: the runtime state is rebuilt, never shared ------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_runtime"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        object.__setattr__(self, "_runtime", _Runtime())

    # -- training-time forward -----------------------------------------------------------------
    def forward(self, *args, **kwargs):
        """The model's own forward; in train mode with the plan's noise (rates overridden by ``p``)."""
        if not self.training:
            return self.model(*args, **kwargs)
        plan = self._ensure_prepared(self._as_batch((args, kwargs)))
        s = self._settings
        if (
            s.method is Method.DROPOUT
            and s.p is None
            and s.layers is None
            and not s.last_layer
            and s.mode is Mode.TRAIN
        ):
            return self.model(*args, **kwargs)  # the plan is the model's own training-time dropout
        with StochasticMode(plan, TorchNoise(), weight_ids=plan.weight_ids(self.model, self._runtime.modules)):
            return self.model(*args, **kwargs)

    # -- probing ----------------------------------------------------------------------------------
    def _ensure_prepared(self, batch: Batch) -> SitePlan:
        runtime = self._runtime
        if runtime.plan is None:
            with _model_lock(self.model):
                if runtime.plan is None:
                    self._prepare(batch)
        return runtime.plan

    def _flag_plan(self, held: frozenset[str]) -> list:
        """The training flags while sampling (see ``Mode``), with ``held`` modules in eval."""
        return flag_plan(self.model, self.mode is Mode.TRAIN, held)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._runtime.warned:
            self._runtime.warned.add(key)
            warnings.warn(message, BayesdropWarning, stacklevel=4)

    def _probe(self, batch: Batch, held: frozenset[str]):
        """One forward pass with the sampling flags, recording candidate calls, module calls and
        random draws that bayesdrop does not control."""
        record: list[SiteCall] = []
        mode = ProbeMode(self._base_plan, record, self._base_plan.weight_ids(self.model))
        recorder = CallRecorder(self.model, lambda: mode.count, lambda: mode.ops)
        mode.module_stack = recorder.stack
        with sampling_flags(self._flag_plan(held)), torch.no_grad(), recorder, mode:
            out = self.model(*batch.args, **batch.kwargs)
        return out, record, mode.random_calls, recorder.calls, mode.uses

    def _prepare(self, batch: Batch) -> None:
        runtime, model = self._runtime, self.model
        buffers = {name: b for name, b in model.named_buffers()}
        saved = {name: b.detach().clone() for name, b in buffers.items()}
        initial = {name: b._version for name, b in buffers.items()}
        held: frozenset[str] = frozenset()
        try:
            for _ in range(4):
                versions = {name: b._version for name, b in buffers.items()}
                out, record, randoms, calls, uses = self._probe(batch, held)
                moved = [name for name, b in buffers.items() if b._version != versions[name]]
                drawing = {where for _, where in randoms if where != "<forward>"}
                new = ({name.rpartition(".")[0] for name in moved} | drawing) - held
                _restore(buffers, saved, moved)
                if not new:
                    break
                held = held | new
            else:
                raise BayesdropError(f"{type(model).__name__} kept changing buffers or drawing random numbers.")
        except BayesdropError:
            raise
        except Exception as error:
            raise BayesdropError(
                f"Argument `x`: {type(model).__name__} rejected the input ({_describe_batch(batch)}): "
                f"{type(error).__name__}: {error}"
            ) from error
        finally:
            _restore(buffers, saved, [name for name, b in buffers.items() if b._version != initial[name]])
        if held:
            self._warn_once(
                "held",
                f"bayesdrop: these modules of {type(model).__name__} change buffers or draw random numbers that "
                f"bayesdrop cannot seed when training (stochastic depth, noise layers...): {sorted(held)}. They are "
                "kept in eval mode while sampling, so that randomness is not part of the MC samples.",
            )
        if any(where == "<forward>" for _, where in randoms):
            self._warn_once(
                "unseeded",
                f"bayesdrop: {type(model).__name__}'s own forward draws random numbers "
                f"({sorted({f for f, w in randoms if w == '<forward>'})}) that bayesdrop cannot seed: MC samples "
                "include that randomness unseeded. Move it into a submodule to have it held in eval mode.",
            )
        self._check_rnn_dropout()
        selected = select(out, self.select, self._settings.output)
        _check_selected(selected, batch.size, self._settings)
        runtime.held_in_eval = held
        runtime.sites = record
        plan = dataclasses.replace(self._base_plan, active=self._choose_active(record))
        runtime.modules = dict(model.named_modules())
        runtime.flags = self._flag_plan(held)
        runtime.plan = plan
        final = {id(v) for v in torch.utils._pytree.tree_leaves(selected) if isinstance(v, Tensor)}
        runtime.route = self._decide_route(batch, plan, calls, held, uses, final)

    def _check_rnn_dropout(self) -> None:
        for name, module in self.model.named_modules():
            if isinstance(module, nn.RNNBase) and module.dropout > 0 and self.mode is Mode.TRAIN:
                self._warn_once(
                    "rnn",
                    f"bayesdrop: {type(module).__name__} `{name}` has dropout={module.dropout} between its layers, "
                    "which runs inside torch's fused kernel where bayesdrop cannot seed it: it is not sampled "
                    "(the layer stays in eval mode).",
                )

    def _choose_active(self, record: list[SiteCall]) -> frozenset[int]:
        dropout_calls = [s for s in record if s.kind not in (SiteKind.WEIGHT, SiteKind.LAYER_INPUT) and s.p > 0]
        weight_calls = [s for s in record if s.kind in (SiteKind.WEIGHT, SiteKind.LAYER_INPUT)]
        model = type(self.model).__name__
        if self.method is Method.DROPCONNECT or self.layers is not None:
            chosen = weight_calls
            if not chosen:
                raise BayesdropError(f"None of the chosen `layers` of {model} ran in its forward pass.")
        elif dropout_calls:
            chosen = dropout_calls
        elif self.p is not None and weight_calls:
            chosen = weight_calls[-1:]  # no dropout at all: add it before the last executed layer
        else:
            hint = (
                " (mode='eval' samples only dropout that runs in eval mode; mode='train' also samples dropout "
                "written `p if self.training else 0`)"
                if self.mode is Mode.EVAL
                else ""
            )
            raise BayesdropError(
                f"{model} has nothing stochastic: no dropout with p > 0 ran in its forward pass{hint}. "
                "Pass `p` to add dropout before the last layer, choose `layers`, or use "
                "method='dropconnect' with `p`."
            )
        if self.last_layer:
            chosen = chosen[-1:]
        return frozenset(s.index for s in chosen)

    # -- how samples are computed ---------------------------------------------------------------------
    def _decide_route(self, batch: Batch, plan: SitePlan, calls, held: frozenset[str], uses, final) -> _Route:
        reasons = []
        positional = not batch.kwargs and all(isinstance(v, Tensor) for v in batch.args)
        if positional:
            route = self._fx_route(batch, plan, held)
            if route.kind == "fx":
                return route
            reasons.append(route.note)
        else:
            reasons.append("torch.fx takes positional tensors only")
        first_active = min(plan.active) if plan.active else 0
        names = prefix_modules(calls, first_active)
        scopes = self._scopes(plan, calls)
        if names:
            route = _Route(
                "modules",
                f"prefix cached at module boundaries ({_short_list(names)} run once per input; torch.fx: {reasons[0]})",
                prefix_modules=names,
                scopes=scopes,
                used=used_outputs(calls, names, uses, final),
            )
            problem = self._verify(batch, route)
            if problem is not None:  # the simplest form that holds: every output replicated, one mode
                route.scopes, route.used = None, None
                problem = self._verify(batch, route)
            if problem is None:
                return route
            reasons.append(problem)
            note = "full replication: " + "; ".join(reasons)
            self._warn_once(
                "full",
                f"bayesdrop: {type(self.model).__name__} is sampled by replicating the whole model, which costs "
                f"about T full forward passes ({'; '.join(reasons)}). To compute the deterministic part once, make "
                "the model traceable by torch.fx or keep the part before the first dropout in submodules; "
                "describe() repeats this.",
            )
        else:
            note = (
                f"full replication: the first stochastic call comes before any module returns (torch.fx: {reasons[0]})"
            )
        route = _Route("full", note, scopes=scopes)
        if scopes is not None and self._verify(batch, route) is not None:
            route.scopes = None
        return route

    def _scopes(self, plan: SitePlan, calls) -> dict[str, tuple[int, ...]] | None:
        """The modules that make stochastic calls, each with the candidate-call count at the start
        of each of its calls in the probe; None when a call is made outside any submodule."""
        if not plan.catch_dropout_calls:
            return None  # DropConnect: the model's own dropout calls must be seen to be switched off
        # Every dropout-like call, active or not, whatever its rate: outside the mode the model's
        # own dropout would run (its training flag is on); weight sites only where active.
        weight_kinds = (SiteKind.WEIGHT, SiteKind.LAYER_INPUT)
        names = {s.where for s in self._runtime.sites if s.kind not in weight_kinds or s.index in plan.active}
        if not names or "<forward>" in names:
            return None
        return {name: tuple(c.start for c in calls if c.name == name) for name in sorted(names)}

    def _fx_route(self, batch: Batch, plan: SitePlan, held: frozenset[str]) -> _Route:
        try:
            with sampling_flags(self._flag_plan(held)):
                graph = _split.trace(self.model)
        except Exception as error:  # noqa: BLE001 - untraceable: try module boundaries
            first_line = str(error).splitlines()[0][:120] if str(error) else ""
            return _Route("full", f"cannot trace ({type(error).__name__}: {first_line})")
        try:
            with sampling_flags(self._flag_plan(held)):
                result = _split.build_split(graph, plan, batch.args, batch.size, plan.weight_ids(self.model))
        except Exception as error:  # noqa: BLE001
            result = f"splitting failed ({type(error).__name__}: {error})"
        if isinstance(result, str):
            return _Route("full", result)
        route = _Route(
            "fx",
            f"prefix cached: {result.prefix_nodes} graph operations run once per input, "
            f"{result.tail_nodes} repeated per sample",
            split=result,
        )
        problem = self._verify(batch, route)
        if problem is None and result.folded_tail is not None and self._verify(batch, route, consistent=True):
            result.folded_tail, result.shared_inputs = None, frozenset()  # keep the plain tail for consistent runs
        if result.folded_tail is not None:
            folded = sum(1 for node in result.folded_tail.graph.nodes if node.target is folded_dropout_linear)
            route.note += (
                f"; consistent sampling folds {folded} dropout layer(s) into the next Linear's per-sample weights"
            )
        return route if problem is None else _Route("full", problem)

    def _verify(self, batch: Batch, route: _Route, consistent: bool = False) -> str | None:
        """Check on the real input that the split and full replication give the same samples."""
        probe = batch.rows(_PROBE_ROWS)
        full = _Route("full", "")
        try:
            with torch.no_grad():
                split_out = self._sample_raw(probe, route, chunk=1, consistent=consistent)
                full_out = self._sample_raw(probe, full, consistent=consistent)
        except Exception as error:  # noqa: BLE001
            return f"the split model failed on the input ({type(error).__name__}: {error})"
        leaves_a = torch.utils._pytree.tree_leaves(split_out)
        leaves_b = torch.utils._pytree.tree_leaves(full_out)
        same = len(leaves_a) == len(leaves_b) and all(
            a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5)
            for a, b in zip(leaves_a, leaves_b, strict=True)
        )
        return None if same else "the split model disagreed with the full model on the input"

    def _sample_raw(
        self, batch: Batch, route: _Route, samples: int = 2, seed: int = 12345, chunk=None, consistent=False
    ) -> object:
        """``samples`` raw outputs ``(samples, B, ...)``, computed in chunks of ``chunk``."""
        outputs: list = []
        self._run(
            batch, route, samples, seed, 0, chunk or samples, lambda out, n: outputs.append(out), consistent=consistent
        )
        return torch.utils._pytree.tree_map(lambda *parts: torch.cat(parts), *outputs)

    def _run(
        self,
        batch: Batch,
        route: _Route,
        samples: int,
        seed: int,
        stream: int,
        chunk,
        consume,
        hint=None,
        consistent=False,
    ):
        """Sample ``batch`` through ``route``; the one call into the engine."""
        runtime, model = self._runtime, self.model
        plan = runtime.plan
        budget = self._budget(batch)
        settings = self._settings
        with (
            sampling_flags(runtime.flags),
            contextlib.ExitStack() as stack,
        ):
            weight_ids = plan.weight_ids(model, runtime.modules)
            inputs, index_map, start_cache, start_scopes = batch, None, None, None
            tail = None
            if route.kind == "fx":
                split = route.split
                with StochasticMode(plan, None, weight_ids=weight_ids):
                    boundary = split.prefix(*batch.args)
                shared = consistent and split.folded_tail is not None
                tail = split.folded_tail if shared else split.tail
                inputs = Batch(tuple(boundary), {}, batch.size, split.shared_inputs if shared else frozenset())
                index_map = split.tail_sites
            if route.prefix_modules:
                cache = ModulePrefixCache(model, route.prefix_modules, runtime.modules, route.used)
                start_cache = stack.enter_context(cache.installed(batch.size, {}))
            if route.scopes is not None:
                start_scopes = stack.enter_context(ScopedModes(route.scopes, runtime.modules).installed())

            def forward(n, args, kwargs, mode, entered):
                if tail is not None:
                    return select(tail(*args), settings.select, settings.output)
                if start_cache is not None:
                    start_cache(n, mode)
                if start_scopes is not None:
                    start_scopes(mode, entered)
                return select(model(*args, **kwargs), settings.select, settings.output)

            return run_samples(
                forward,
                inputs,
                plan,
                index_map,
                weight_ids,
                samples,
                seed,
                stream,
                chunk,
                budget,
                hint,
                consume,
                scoped=route.scopes is not None,
                overwritable=route.split.overwritable if route.kind == "fx" else frozenset(),
                linear_scaled=route.split.linear_scaled if route.kind == "fx" else frozenset(),
                consistent=consistent,
            )

    def _budget(self, batch: Batch) -> int:
        if self.memory_budget is not None:
            return self.memory_budget
        device = next((v.device for v in (*batch.args, *batch.kwargs.values()) if isinstance(v, Tensor)), None)
        if device is not None and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free * 0.25)
        return _DEFAULT_BUDGET_CPU

    def _device(self) -> torch.device | None:
        tensor = next(self.model.parameters(), None)
        if tensor is None:
            tensor = next(self.model.buffers(), None)
        return None if tensor is None else tensor.device

    # -- prediction -------------------------------------------------------------------------------------
    def predict(
        self,
        x: Tensor | Sequence[Any] | Mapping[str, Any],
        samples: int = 100,
        seed: int | None = 0,
        keep_samples: bool = False,
        target: Tensor | None = None,
        grad: bool = False,
        chunk_size: int | None = None,
        consistent: bool = False,
    ) -> Prediction:
        """Draw ``samples`` stochastic forward passes of a batch and reduce them.

        >>> import bayesdrop as bd
        >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        >>> pred = bd.wrap(net).predict(torch.randn(8, 4), samples=50, seed=0)
        >>> pred.mean.shape, pred.epistemic.shape, pred.n_samples
        (torch.Size([8, 3]), torch.Size([8]), 50)

        Args:
            x: the model's input: a ``(B, ...)`` tensor, a tuple of positional arguments, or a
                mapping of keyword arguments (a tokenizer's ``BatchEncoding``: ``input_ids``,
                ``attention_mask``, ...). Tensors with B rows are the batch; other values are
                passed as they are.
            samples: T >= 1, the number of MC samples.
            seed: samples are a function of the seed only (not of the chunking); None draws a
                seed from torch's global generator.
            keep_samples: also return the raw samples as ``pred.samples`` ``(B, T, ...)``.
            target: ``(B,)`` labels or ``(B, *out)`` regression targets: fills
                ``pred.log_likelihood``.
            grad: keep the autograd graph through the samples (e.g. for CLUE).
            chunk_size: samples per replicated forward pass; default from the memory budget.
            consistent: sample t uses the same masks (noise, weights) for every input row, so
                rows scored in different calls, batches or orders see the same ``samples``
                sub-networks (identical rows give identical samples); what BatchBALD's joint
                entropy needs. Default: independent noise per row.
        """
        return self._predict(x, samples, seed, keep_samples, target, grad, chunk_size, stream=0, consistent=consistent)

    def _predict(
        self, x, samples, seed, keep_samples, target, grad, chunk_size, stream, consistent=False
    ) -> Prediction:
        if not isinstance(consistent, bool):
            raise expected("consistent", "True or False", consistent)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise expected("samples", "an integer >= 1", samples)
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise expected("chunk_size", "None or an integer >= 1", chunk_size)
        seed = _resolve_seed(seed)
        batch = x if isinstance(x, Batch) else self._as_batch(x)
        device = _first_tensor(batch).device
        if target is not None:
            target = self._check_target(target, batch.size, device)
        point_regression = self.task is Task.REGRESSION and self._settings.output is Output.MEAN
        if point_regression and self.tau is None:
            if target is not None:
                raise expected(
                    "tau",
                    "the model precision (a positive float, or mc.fit_tau on held-out data) to score targets of a "
                    "point-output regression model",
                    None,
                )
            self._warn_once(
                "tau",
                "bayesdrop: a point-output regression model without `tau` reports aleatoric uncertainty 0 (total = "
                "epistemic). Pass tau to bd.wrap, or estimate it with mc.fit_tau(x_val, y_val).",
            )
        with _model_lock(self.model):
            self._ensure_prepared(batch)
            runtime = self._runtime
            if self.task is Task.CLASSIFICATION:
                reducer = ClassificationReducer(self._settings.output, keep_samples, target)
            else:
                reducer = RegressionReducer(self._settings.output, self.tau, keep_samples, target)
            key = (batch.row_key(), consistent)  # consistent runs may take a leaner route
            per_row = runtime.bytes_per_row.get(key)
            if per_row is not None:
                runtime.bytes_per_row.move_to_end(key)
            try:
                with torch.enable_grad() if grad else torch.no_grad():
                    measured = self._run(
                        batch,
                        runtime.route,
                        samples,
                        seed,
                        stream,
                        chunk_size,
                        reducer.update,
                        None if per_row is None else per_row * batch.size,
                        consistent,
                    )
            except BayesdropError:
                raise
            except Exception as error:
                raise BayesdropError(
                    f"Argument `x`: sampling {type(self.model).__name__} on {_describe_batch(batch)} "
                    f"with samples={samples} failed: {type(error).__name__}: {error}"
                ) from error
            if measured is not None and per_row is None:
                # Memory per sample grows with the batch: remember it per row, keyed by the row
                # shapes (a bounded number of them: sequence lengths vary), so a loader's last
                # batch is sized without measuring again.
                runtime.bytes_per_row[key] = measured / batch.size
                while len(runtime.bytes_per_row) > _SIZE_CACHE_ENTRIES:
                    runtime.bytes_per_row.popitem(last=False)
            return reducer.finalize()

    def _as_batch(self, x) -> Batch:
        if isinstance(x, Tensor):
            args, kwargs = (x,), {}
        elif isinstance(x, Mapping):
            if not all(isinstance(k, str) for k in x):
                raise expected("x", "a mapping with str keys (keyword arguments of the model)", list(x.keys()))
            args, kwargs = (), dict(x)
        elif isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], tuple) and isinstance(x[1], dict):
            args, kwargs = x  # (args, kwargs) from the training forward
        elif isinstance(x, (tuple, list)):
            args, kwargs = tuple(x), {}
        else:
            raise expected(
                "x", "a tensor, a tuple of positional inputs or a mapping of keyword inputs", type(x).__name__
            )
        values = [*args, *kwargs.values()]
        tensors = [v for v in values if isinstance(v, Tensor)]
        if not tensors:
            raise expected("x", "inputs with at least one batch-first tensor", _describe_values(values))
        first = kwargs.get("input_ids") if isinstance(kwargs.get("input_ids"), Tensor) else tensors[0]
        if first.dim() == 0 or first.shape[0] == 0:
            raise expected("x", "a non-empty batch-first tensor (B, ...)", tuple(first.shape))
        device = self._device()
        if device is not None:
            args = tuple(v.to(device) if isinstance(v, Tensor) else v for v in args)
            kwargs = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in kwargs.items()}
        return Batch(args, kwargs, first.shape[0])

    def _check_target(self, target, batch: int, device) -> Tensor:
        if not isinstance(target, Tensor):
            target = torch.as_tensor(target)
        if target.shape[0] != batch:
            raise expected("target", f"{batch} rows (one per input row)", f"{target.shape[0]} rows")
        if self.task is Task.CLASSIFICATION:
            if target.dim() != 1 or target.dtype.is_floating_point:
                raise expected(
                    "target", "a (B,) tensor of integer class labels", f"{target.dtype} of shape {tuple(target.shape)}"
                )
        return target.to(device)

    def predict_loader(
        self,
        loader: Iterable,
        samples: int = 100,
        seed: int | None = 0,
        keep_samples: bool = False,
        progress: bool = False,
        chunk_size: int | None = None,
        target_key: str = "labels",
        consistent: bool = False,
    ) -> Prediction:
        """Predict every batch of ``loader`` and concatenate.

        A batch is ``x``, ``(x, y, ...)``, or a mapping of keyword inputs (as Hugging Face
        collators yield) whose ``target_key`` entry, when present, is the target and is not
        passed to the model. Each batch gets its own noise stream derived from ``seed`` and the
        batch index, so the result is reproducible for a given seed and batching. When batches
        carry targets, ``pred.log_likelihood`` is filled (for a point-output regression model
        only with ``tau``: without it the targets are not scored, and a warning says so).
        With ``consistent`` every batch shares one stream: sample t is the same sub-network for
        every row of every batch (see :meth:`predict`).
        """
        batches = loader
        if progress:
            try:
                from tqdm.auto import tqdm

                batches = tqdm(loader, desc=f"MC x{samples}", unit="batch")
            except ImportError:  # pragma: no cover - tqdm is an optional extra
                pass
        seed = _resolve_seed(seed)  # one seed for the whole loader, so that its batches share their noise
        results = []
        for index, batch in enumerate(batches):
            if isinstance(batch, Mapping):
                inputs = {k: v for k, v in batch.items() if k != target_key}
                target = batch.get(target_key)
            elif isinstance(batch, (tuple, list)):
                inputs, target = batch[0], (batch[1] if len(batch) > 1 else None)
            else:
                inputs, target = batch, None
            if target is not None and self.task is Task.REGRESSION and self.output == "mean" and self.tau is None:
                self._warn_once(
                    "loader-targets",
                    "bayesdrop: the loader's targets are not scored (no pred.log_likelihood): a point-output "
                    "regression model needs `tau` for that (bd.wrap(..., tau=...) or mc.fit_tau).",
                )
                target = None
            results.append(
                self._predict(
                    inputs,
                    samples,
                    seed,
                    keep_samples,
                    target,
                    False,
                    chunk_size,
                    0 if consistent else index + 1,
                    consistent,
                )
            )
        if not results:
            raise expected("loader", "at least one batch", "an empty loader")
        return _concatenate(results)

    def fit_tau(self, x: Tensor | Sequence[Tensor], target: Tensor, samples: int = 100, seed: int = 0) -> float:
        """Estimate the model precision tau of a point-output regression model, and keep it.

        Draws ``samples`` MC means of held-out inputs once and picks the tau that maximises the
        mixture log-likelihood ``mean_i log (1/T) sum_t N(y_i; f_t(x_i), 1/tau)`` (a scan over
        log tau, then a golden-section refinement). Later ``predict`` calls add the aleatoric
        variance ``1 / tau`` and fill ``log_likelihood``.

        >>> import bayesdrop as bd
        >>> net = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
        >>> mc = bd.wrap(net, task="regression")
        >>> tau = mc.fit_tau(torch.randn(64, 1), torch.randn(64, 1), samples=20)
        >>> mc.tau == tau > 0
        True

        Args:
            x: ``(B, ...)`` held-out inputs (a validation split: on the training data the
                estimate is over-confident).
            target: ``(B, *out)`` their targets.
            samples: MC samples T.
            seed: sampling seed.

        Returns:
            The chosen tau (also stored as ``self.tau``).
        """
        from .metrics import mc_log_likelihood

        if self.task is not Task.REGRESSION or self.output != "mean":
            raise expected(
                "task",
                "'regression' with output='mean' (a Gaussian head predicts its own variance)",
                f"task={self.task.value!r}, output={self.output!r}",
            )
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise expected("samples", "an integer >= 2 (the mixture needs several samples)", samples)
        batch = self._as_batch(x)
        y = self._check_target(target, batch.size, _first_tensor(batch).device)
        self._runtime.warned.add("tau")  # the aleatoric-0 warning does not apply: tau is being fitted
        means = self._predict(batch, samples, seed, True, None, False, None, stream=0).samples.double()
        y = y.double().reshape(means.shape[0], *means.shape[2:])

        def objective(log_tau: float) -> float:
            return mc_log_likelihood(means, y, tau=math.exp(log_tau))

        spread = float(((y.unsqueeze(1) - means) ** 2).mean())
        centre = -math.log(max(spread, 1e-300))  # log(1 / mean squared error of the samples)
        grid = [centre - 12 + 24 * i / 96 for i in range(97)]
        values = [objective(u) for u in grid]
        best = max(range(len(grid)), key=values.__getitem__)
        low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        ratio = (math.sqrt(5) - 1) / 2
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        fa, fb = objective(a), objective(b)
        for _ in range(40):
            if fa >= fb:
                high, b, fb = b, a, fa
                a = high - ratio * (high - low)
                fa = objective(a)
            else:
                low, a, fa = a, b, fb
                b = low + ratio * (high - low)
                fb = objective(b)
        candidates = [(values[best], grid[best]), (fa, a), (fb, b)]
        self.tau = math.exp(max(candidates)[1])
        return self.tau

    def flops(self, x: Tensor | Sequence[Any] | Mapping[str, Any], samples: int = 100) -> dict[str, int]:
        """FLOPs of MC prediction of ``x`` as the engine runs it, next to the naive cost.

        Counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions) on
        one and two samples: ``per_sample`` is their difference (the stochastic tail),
        ``prefix`` what runs once. Returns ``prefix``, ``per_sample``, ``engine`` = prefix +
        samples * per_sample, ``forward`` (one full forward) and ``naive`` = samples * forward.
        """
        from torch.utils.flop_counter import FlopCounterMode

        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise expected("samples", "an integer >= 1", samples)
        batch = self._as_batch(x)
        with _model_lock(self.model), torch.no_grad():
            plan = self._ensure_prepared(batch)
            counter = FlopCounterMode(display=False)
            with sampling_flags(flag_plan(self.model, train=False)), counter, StochasticMode(plan, None):
                self.model(*batch.args, **batch.kwargs)
            forward = int(counter.get_total_flops())
            counts = []
            for n in (1, 2):
                counter = FlopCounterMode(display=False)
                with counter:
                    self._run(batch, self._runtime.route, n, 0, 0, n, lambda out, k: None)
                counts.append(int(counter.get_total_flops()))
        per_sample = max(counts[1] - counts[0], 0)
        prefix = max(counts[0] - per_sample, 0)
        return {
            "prefix": prefix,
            "per_sample": per_sample,
            "engine": prefix + samples * per_sample,
            "forward": forward,
            "naive": samples * forward,
        }

    # -- reporting ----------------------------------------------------------------------------------------
    @property
    def sites(self) -> list[SiteCall]:
        """Stochastic calls seen on the first call, in execution order: every dropout-like call
        (active or not) and the layers whose weights or inputs carry noise."""
        plan = self._runtime.plan
        return [s for s in self._runtime.sites if self._shown(s, plan)]

    @property
    def active_sites(self) -> list[SiteCall]:
        """The stochastic calls that are sampled, in execution order (empty before the first call)."""
        plan = self._runtime.plan
        return [] if plan is None else [s for s in self._runtime.sites if s.index in plan.active]

    @staticmethod
    def _shown(site: SiteCall, plan: SitePlan) -> bool:
        return site.kind not in (SiteKind.WEIGHT, SiteKind.LAYER_INPUT) or site.index in plan.active

    def describe(self) -> str:
        """What was made stochastic and how sampling runs."""
        runtime = self._runtime
        lines = [
            f"MCModel({type(self.model).__name__}): task={self.task.value}, method={self.method.value}, "
            f"output={self.output}, mode={self.mode.value}"
            + (f", p={self.p}" if self.p is not None else "")
            + (", last_layer=True" if self.last_layer else "")
        ]
        if runtime.plan is None:
            static = _static_dropout_sites(self.model)
            lines.append(
                f"stochastic sites: decided on the first predict ({static} dropout module(s) found statically)"
            )
            lines.append("sampling: not yet decided: the model is probed on the first call to predict")
        else:
            plan = runtime.plan
            active = [s for s in runtime.sites if s.index in plan.active]
            lines.append(f"stochastic sites ({len(active)} active, execution order):")
            for s in self.sites:
                state = "active" if s.index in plan.active else "off"
                what = {
                    SiteKind.WEIGHT: f"DropConnect on the weights of {s.function}",
                    SiteKind.LAYER_INPUT: f"{self.method.value} on the input of {s.function}",
                }.get(s.kind, f"{s.function} ({s.kind.value})")
                lines.append(f"  [{s.index}] {s.where:<24} {what}  p={s.p:g}  {state}")
            if runtime.held_in_eval:
                lines.append(f"held in eval mode (randomness bayesdrop cannot seed): {sorted(runtime.held_in_eval)}")
            lines.append(f"sampling: {runtime.route.note}")
        if self.memory_budget is not None:
            budget = f"a {self.memory_budget / 2**20:g} MiB budget"
        else:
            budget = f"a {_DEFAULT_BUDGET_CPU / 2**20:.0f} MiB budget (CPU default; CUDA: 25% of free memory)"
        lines.append(f"chunking: batch replication in chunks under {budget} of peak memory, halved on out-of-memory")
        return "\n".join(lines)

    def extra_repr(self) -> str:
        return f"task={self.task.value}, method={self.method.value}, mode={self.mode.value}"


def _restore(buffers: dict[str, Tensor], saved: dict[str, Tensor], names: Iterable[str]) -> None:
    with torch.no_grad():
        for name in names:
            buffers[name].copy_(saved[name])


def _resolve_seed(seed: int | None) -> int:
    """A checked seed; None draws one from torch's global generator."""
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise expected("seed", "None or a non-negative integer", seed)
    return seed


def _first_tensor(batch: Batch) -> Tensor:
    return next(v for v in (*batch.args, *batch.kwargs.values()) if isinstance(v, Tensor))


def _describe_values(values: Iterable[Any]) -> str:
    return ", ".join(str(tuple(v.shape)) if isinstance(v, Tensor) else type(v).__name__ for v in values)


def _describe_batch(batch: Batch) -> str:
    parts = [str(tuple(v.shape)) if isinstance(v, Tensor) else type(v).__name__ for v in batch.args]
    parts += [f"{k}={tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}" for k, v in batch.kwargs.items()]
    return "input " + ", ".join(parts)


def _short_list(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_selected(selected: Any, batch: int, settings: Settings) -> None:
    """The selected output must be batch-first tensors; fail on the first call with a clear message."""
    values = selected if settings.output in PAIR_OUTPUTS else (selected,)
    for value in values:
        if not isinstance(value, Tensor) or value.dim() == 0 or value.shape[0] != batch:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise BayesdropError(
                f"Expected the model's selected output to be batch-first tensors with {batch} rows for "
                f"output={settings.output.value!r}, but got {got}. Pass `select` to bd.wrap to choose the tensor "
                "to sample (a key, a position or a callable)."
            )


def _check_tau(tau: Any, task: Task) -> float | None:
    if tau is None:
        return None
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0 or math.isinf(tau):
        raise expected("tau", "a positive finite float", tau)
    if task is Task.CLASSIFICATION:
        raise expected("tau", "None for task='classification'", tau)
    return float(tau)


def _concatenate(results: list[Prediction]) -> Prediction:
    first = results[0]
    if len(results) == 1:
        return first

    def cat(name: str):
        values = [getattr(r, name) for r in results]
        return None if values[0] is None else torch.cat(values)

    return Prediction(
        task=first.task,
        n_samples=first.n_samples,
        **{
            name: cat(name)
            for name in (
                "mean",
                "total",
                "aleatoric",
                "epistemic",
                "variance",
                "log_mean",
                "variation_ratio",
                "log_likelihood",
                "kept_samples",
                "kept_sample_variances",
            )
        },
    )


def wrap(
    model: nn.Module,
    task: str = "classification",
    method: str = "dropout",
    p: float | None = None,
    last_layer: bool = False,
    layers: Sequence[str | type] | str | type | None = None,
    output: str | None = None,
    select: Selector = None,
    mode: str = "train",
    tau: float | None = None,
    memory_budget: int | None = None,
    example_input: Tensor | Sequence[Any] | Mapping[str, Any] | None = None,
) -> MCModel:
    """Wrap ``model`` for Monte-Carlo sampling; the model itself is never modified.

    >>> import bayesdrop as bd
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    >>> mc = bd.wrap(net, task="classification")
    >>> bd.unwrap(mc) is net
    True

    Args:
        model: any ``nn.Module`` with batch-first inputs and outputs (Hugging Face and timm
            models included).
        task: ``"classification"`` or ``"regression"``.
        method: ``"dropout"`` (the model's own dropout, or dropout added where ``layers`` /
            ``p`` say), ``"dropconnect"`` (weight masks, one per sample; needs ``p``) or
            ``"gaussian"`` (multiplicative N(1, p / (1 - p)) noise at the dropout sites).
        p: overrides every site's rate, for ``predict`` and for training through the wrapper;
            required for DropConnect, ``layers``, or a model without dropout (dropout is then
            added before its last executed layer).
        last_layer: keep only the last stochastic call in execution order.
        layers: Linear/Conv layers by name or type: DropConnect's weights, or where dropout
            is added for the other methods. Default for DropConnect: every Linear and Conv.
        output: classification ``"logits"`` (default), ``"probs"`` or ``"log_probs"``;
            regression ``"mean"`` (default), ``"mean_var"`` or ``"mean_logvar"``.
        select: which part of the model's output is sampled: None (a tensor as it is, a
            ``ModelOutput``'s or dict's ``logits``, a 1-tuple's element, a (mean, variance)
            pair), a key or attribute name, a position, or a callable (see
            ``bayesdrop.outputs``).
        mode: ``"train"`` (default): every dropout the model applies when it trains, at its
            training rate, with normalisation layers in eval mode and no buffer changed;
            ``"eval"``: modules stay in eval mode (dropout gated by ``self.training`` inside a
            module's code, like Hugging Face attention dropout, is then not sampled).
        tau: regression model precision: aleatoric variance 1 / tau for point outputs.
        memory_budget: bytes of peak memory for one chunk of replicated work (CPU default
            16 MiB; CUDA: a quarter of the free memory).
        example_input: probe the model now instead of on the first ``predict``.
    """
    if not isinstance(model, nn.Module):
        raise expected("model", "a torch.nn.Module", type(model).__name__)
    if isinstance(model, MCModel):
        raise expected("model", "an unwrapped nn.Module", "an MCModel (call bd.unwrap first)")
    task_value = _choice("task", task, Task)
    method_value = _choice("method", method, Method)
    mode_value = _choice("mode", mode, Mode)
    if p is not None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p) or not 0.0 <= float(p) < 1.0:
            raise expected("p", "a float in [0, 1)", p)
        p = float(p)
    allowed = _OUTPUTS[task_value]
    if output is None:
        output_value = allowed[0]
    else:
        try:
            output_value = Output(output)
        except ValueError:
            output_value = None
        if output_value not in allowed:
            raise expected(
                "output", f"one of {', '.join(repr(o.value) for o in allowed)} for task='{task_value.value}'", output
            )
    if select is not None and not (isinstance(select, (str, int)) or callable(select)) or isinstance(select, bool):
        raise expected("select", "None, a key or attribute name (str), a position (int) or a callable", select)
    tau_value = _check_tau(tau, task_value)
    if memory_budget is not None and (
        isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1
    ):
        raise expected("memory_budget", "None or a positive number of bytes", memory_budget)
    layer_names = None
    if layers is not None or method_value is Method.DROPCONNECT:
        if p is None:
            what = "method='dropconnect'" if method_value is Method.DROPCONNECT else "`layers`"
            raise expected("p", f"a rate in [0, 1) with {what} (the model has no rate for it)", None)
        resolved = _resolve_layers(model, layers)
        if not resolved:
            raise BayesdropError(
                f"{type(model).__name__} has no Linear or Conv layer for method='{method_value.value}'."
            )
        if layers is not None:
            layer_names = tuple(name for name, _ in resolved)
    settings = Settings(
        task_value, method_value, p, bool(last_layer), layer_names, output_value, select, mode_value, memory_budget
    )
    mc = MCModel(model, settings, tau_value)
    _check_something_stochastic(mc)
    if example_input is not None:
        mc._ensure_prepared(mc._as_batch(example_input))
    return mc


def _check_something_stochastic(mc: MCModel) -> None:
    """Fail at wrap time when a traceable model has no dropout at all and nothing is added."""
    s = mc._settings
    if s.method is Method.DROPCONNECT or s.layers is not None or s.p is not None or _static_dropout_sites(mc.model):
        return
    try:
        with sampling_flags(mc._flag_plan(frozenset())):
            graph = _split.trace(mc.model)
    except Exception:  # noqa: BLE001 - untraceable: decided on the first predict
        return
    possible = set(_DROPOUT_FUNCTIONS) | {F.scaled_dot_product_attention, F.multi_head_attention_forward}
    if not any(n.op == "call_function" and n.target in possible for n in graph.graph.nodes):
        raise BayesdropError(
            f"{type(mc.model).__name__} has nothing stochastic: no dropout module, no functional dropout and no "
            "attention dropout. Pass `p` to add dropout before the last layer, choose `layers`, or use "
            "method='dropconnect' with `p`."
        )


def unwrap(mc: MCModel) -> nn.Module:
    """The original model: same object, same state, same deterministic outputs."""
    if not isinstance(mc, MCModel):
        raise expected("mc", "an MCModel returned by bayesdrop.wrap", type(mc).__name__)
    return mc.model
