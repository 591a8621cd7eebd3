"""What the wrapper does to the user's modules while it samples, and undoes afterwards.

- ``sampling_flags``: training flags as the model has them when it trains (so that dropout
  written ``p if self.training else 0`` runs at its training rate), except normalisation layers,
  recurrent layers and modules held in eval (they would change buffers or draw random numbers
  bayesdrop cannot seed). Restored on exit.
- ``CallRecorder``: the names of the modules being executed, and every module call with the
  number of stochastic candidate calls before it started and when it ended (probe only).
- ``ModulePrefixCache``: the deterministic prefix cached at module boundaries, for models that
  ``torch.fx`` cannot trace: a module whose every call ends before the first active stochastic
  call computes once per ``predict`` on the un-replicated batch; its output is replicated.
- ``ScopedModes``: the sampling mode entered only inside the modules that make stochastic
  calls, so the rest of the network runs at full speed.

Each of these changes attributes of the user's modules for the duration of one call, under the
wrapper's lock; nothing process-wide is touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_leaves, tree_map, tree_unflatten

from ._engine import replicate
from .layers import ConcreteDropout

# Layers held in eval mode while sampling: normalisation layers (their statistics must not move)
# recurrent layers (their inter-layer dropout runs inside a fused kernel bayesdrop cannot seed), and
# ConcreteDropout (its training relaxation is not the Bernoulli dropout it samples in eval mode).
FROZEN_LAYERS: tuple[type[nn.Module], ...] = (
    ConcreteDropout,
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.RNNBase,
)


def flag_plan(model: nn.Module, train: bool, held_in_eval: frozenset[str] = frozenset()) -> list:
    """``[(module, training flag while sampling)]`` for every module of ``model``."""
    return [
        (module, train and not isinstance(module, FROZEN_LAYERS) and name not in held_in_eval)
        for name, module in model.named_modules()
    ]


@contextlib.contextmanager
def sampling_flags(plan: list) -> Iterator[None]:
    """Set the training flags of a ``flag_plan``; the previous flags are restored on exit."""
    # `training` is a plain attribute of every nn.Module: set it directly, without the cost of
    # nn.Module.__setattr__ (this runs twice per predict over every module of the model).
    saved = [(module.__dict__, module.training) for module, _ in plan]
    try:
        for module, flag in plan:
            module.__dict__["training"] = flag
        yield
    finally:
        for attributes, flag in saved:
            attributes["training"] = flag


@dataclass(frozen=True)
class ModuleCall:
    """One call of a named submodule during the probe."""

    name: str
    start: int  # candidate stochastic calls made before it started
    end: int  # ... and when it returned
    parent: int  # index of the enclosing call in the record, -1 for the root's forward
    outputs: tuple[int | None, ...] = ()  # id() of each tensor leaf of its output (None: not a tensor)
    ops_at_end: int = 0  # torch operations run before it returned


class CallRecorder:
    """Forward hooks on every named submodule: a stack of names and a record of calls."""

    def __init__(self, model: nn.Module, counter: Callable[[], int], ops: Callable[[], int] = lambda: 0) -> None:
        self.model, self.counter, self.ops = model, counter, ops
        self.stack: list[str] = []
        self.calls: list[ModuleCall] = []
        self._open: list[tuple[str, int, int]] = []  # (name, start, parent) of calls in progress
        self._handles: list = []

    def __enter__(self) -> CallRecorder:
        for name, module in self.model.named_modules():
            if not name:
                continue
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre(self, name: str):
        def hook(_module, _inputs):
            parent = self._open[-1][2] if self._open else -1
            # Reserve the call's slot now so that nested calls can point to it as their parent.
            self.calls.append(ModuleCall(name, self.counter(), -1, parent))
            self._open.append((name, self.counter(), len(self.calls) - 1))
            self.stack.append(name)

        return hook

    def _post(self, _module, _inputs, output):
        if not self._open:
            return
        name, start, slot = self._open.pop()
        self.stack.pop()
        parent = self.calls[slot].parent
        leaves = tuple(id(v) if isinstance(v, Tensor) else None for v in tree_leaves(output))
        self.calls[slot] = ModuleCall(name, start, self.counter(), parent, leaves, self.ops())


def prefix_modules(calls: list[ModuleCall], first_active: int) -> tuple[str, ...]:
    """The outermost modules whose every call returns before the first active stochastic call."""
    done = [c.end >= 0 and c.end <= first_active for c in calls]
    outermost = {c.name for c, ok in zip(calls, done, strict=True) if ok and (c.parent < 0 or not done[c.parent])}
    unsafe = {c.name for c, ok in zip(calls, done, strict=True) if not ok or (c.parent >= 0 and done[c.parent])}
    return tuple(name for name in dict.fromkeys(c.name for c in calls) if name in outermost - unsafe)


def _is_rows(value: object, size: int) -> bool:
    return isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == size


def used_outputs(
    calls: list[ModuleCall], names: tuple[str, ...], last_use: dict[int, int], final: set[int]
) -> dict[tuple[str, int], tuple[bool, ...]]:
    """Which tensor leaves of each prefix module's output the rest of the forward pass uses.

    A leaf counts as used when a later torch operation took it as an argument (``last_use``:
    ``id -> index of the last operation``) or when it is part of the sampled output (``final``).
    The others (a BERT encoder's hidden states, when only its pooled output is read) need not be
    replicated.
    """
    used: dict[tuple[str, int], tuple[bool, ...]] = {}
    positions: dict[str, int] = {}
    for call in calls:
        if call.name not in names:
            continue
        position = positions.get(call.name, 0)
        positions[call.name] = position + 1
        used[(call.name, position)] = tuple(
            leaf is not None and (last_use.get(leaf, -1) >= call.ops_at_end or leaf in final) for leaf in call.outputs
        )
    return used


class ModulePrefixCache:
    """Runs the prefix modules once per ``predict`` on ``size`` rows and replicates their outputs.

    ``store`` holds the outputs of one ``predict`` call, keyed by module name and the call's
    position within the forward pass; it is shared by all chunks of that call.
    """

    _MISSING = object()

    def __init__(
        self,
        model: nn.Module,
        names: tuple[str, ...],
        modules: dict[str, nn.Module],
        used: dict[tuple[str, int], tuple[bool, ...]] | None = None,
    ) -> None:
        self.model, self.names, self.modules = model, names, modules
        self.used = used  # see used_outputs; None: replicate every batch-first leaf

    @contextlib.contextmanager
    def installed(self, size: int, store: dict) -> Iterator[Callable[[int, object], None]]:
        """Install on the model's modules; yields ``start_forward(n, mode)`` to call before each
        chunk's forward pass, with the chunk's ``StochasticMode``."""
        modules = self.modules
        state = {"n": 1, "counts": {}, "mode": None}
        saved: list[tuple[nn.Module, object]] = []

        def make(name: str, original: Callable):
            def cached_forward(*args, **kwargs):
                n = state["n"]
                position = state["counts"].get(name, 0)
                state["counts"][name] = position + 1
                key = (name, position)
                mode = state["mode"]
                if key in store:
                    # The module's candidate stochastic calls (all inactive) are skipped with it:
                    # advance the count so that later sites keep their numbers (and noise streams).
                    mode.count += store[key][1]
                else:

                    def first_block(v):
                        return v[:size] if _is_rows(v, n * size) and not isinstance(v, nn.Parameter) else v

                    before, paused = mode.count, getattr(mode, "paused", None)
                    if paused is not None:
                        mode.paused = True  # computed once per call: not part of the per-sample memory
                    try:
                        value = original(*tree_map(first_block, args), **tree_map(first_block, kwargs))
                    finally:
                        if paused is not None:
                            mode.paused = paused
                    store[key] = (value, mode.count - before)

                leaves, spec = tree_flatten(store[key][0])
                wanted = self.used.get(key) if self.used is not None else None
                if wanted is not None and len(wanted) != len(leaves):
                    wanted = None  # another output structure than in the probe: replicate it all
                widen = [_is_rows(v, size) and (wanted is None or wanted[i]) for i, v in enumerate(leaves)]
                if n == 1 and hasattr(mode, "hold"):  # measuring: the copies more samples will make
                    mode.hold(sum(v.nelement() * v.element_size() for v, w in zip(leaves, widen, strict=True) if w))
                leaves = [replicate(v, n) if w else v for v, w in zip(leaves, widen, strict=True)]
                return tree_unflatten(leaves, spec)

            return cached_forward

        try:
            for name in self.names:
                module = modules[name]
                saved.append((module, module.__dict__.get("forward", self._MISSING)))
                module.forward = make(name, module.forward)

            def start_forward(n: int, mode) -> None:
                state["n"], state["counts"], state["mode"] = n, {}, mode

            yield start_forward
        finally:
            for module, previous in saved:
                if previous is self._MISSING:
                    del module.forward
                else:
                    module.forward = previous


class ScopedModes:
    """The chunk's ``StochasticMode`` entered only inside the modules that make stochastic calls.

    A torch-function mode costs a Python call for every torch operation it sees; most of a
    network (its matrix products, norms, activations) has no stochastic call. ``starts`` maps
    each such module to the number of candidate calls made before each of its calls in the
    probe, so its sites keep their numbers (and noise streams) without counting the rest.
    """

    _MISSING = object()

    def __init__(self, starts: dict[str, tuple[int, ...]], modules: dict[str, nn.Module]) -> None:
        self.starts, self.modules = starts, modules

    @contextlib.contextmanager
    def installed(self) -> Iterator[Callable[[object, bool], None]]:
        """Install on the model's modules; yields ``start_forward(mode, entered)`` to call before
        each forward pass (``entered``: the mode is already active around the whole pass)."""
        state = {"mode": None, "inside": False, "counts": {}}
        saved: list[tuple[nn.Module, object]] = []

        def make(name: str, original: Callable):
            starts = self.starts[name]

            def scoped_forward(*args, **kwargs):
                position = state["counts"].get(name, 0)
                state["counts"][name] = position + 1
                if state["inside"]:
                    return original(*args, **kwargs)
                mode = state["mode"]
                if position >= len(starts):
                    raise RuntimeError(f"module {name} was called more often than in the probe")
                mode.count = starts[position]
                state["inside"] = True
                try:
                    with mode:
                        return original(*args, **kwargs)
                finally:
                    state["inside"] = False

            return scoped_forward

        try:
            for name in self.starts:
                module = self.modules[name]
                saved.append((module, module.__dict__.get("forward", self._MISSING)))
                module.forward = make(name, module.forward)

            def start_forward(mode, entered: bool) -> None:
                state["mode"], state["inside"], state["counts"] = mode, entered, {}

            yield start_forward
        finally:
            for module, previous in reversed(saved):
                if previous is self._MISSING:
                    del module.forward
                else:
                    module.forward = previous
