"""Split a traced model into a deterministic prefix (run once) and a stochastic tail.

The model is traced with ``torch.fx``; one forward pass on a real input (the probe) tells which
graph nodes make active stochastic calls. Every node that depends on such a node belongs to the
tail, which the engine repeats for every MC sample; everything else is the prefix, computed once
per input. The user's model is shared, not copied: both halves call its modules and parameters.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.nn.modules import module as _module_hooks

from ._sites import Method, SiteKind, SitePlan, StochasticMode, folded_dropout_linear


class _Tracer(fx.Tracer):
    """fx tracer that keeps bayesdrop's own layers opaque (they read their rate as a float)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        from .layers import ConcreteDropout

        return isinstance(m, ConcreteDropout) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` with its modules' training flags as they are now (the caller
    sets the sampling flags: code written ``p if self.training else 0`` is traced as it samples)."""
    graph = _Tracer().trace(model)
    return fx.GraphModule(model, graph, model.__class__.__name__)


@dataclass
class Split:
    """A model cut in two: ``tail(*replicated(prefix(x)))`` equals ``model(x)``."""

    prefix: fx.GraphModule
    tail: fx.GraphModule
    batch_dependent: list[bool]  # per boundary value: replicate along dim 0?
    tail_sites: list[int]  # global site index of each candidate call in the tail, in order
    prefix_nodes: int
    tail_nodes: int
    overwritable: frozenset[int] = field(default_factory=frozenset)  # see StochasticMode
    # Consistent sampling: the tail with its "dropout -> Linear" chains folded into per-sample
    # weights (see folded_dropout_linear); boundary values read only by a fold are not replicated.
    folded_tail: fx.GraphModule | None = None
    shared_inputs: frozenset[int] = field(default_factory=frozenset)  # positions in the boundary
    # overwritable dropout sites whose only reader is a Linear: see StochasticMode
    linear_scaled: frozenset[int] = field(default_factory=frozenset)


class _Probe(fx.Interpreter):
    """Runs the graph node by node, noting values and which nodes make active calls."""

    def __init__(self, gm: fx.GraphModule, mode: StochasticMode) -> None:
        super().__init__(gm)
        self.mode = mode
        self.sites: dict[fx.Node, list[int]] = {}
        self.values: dict[fx.Node, object] = {}

    def run_node(self, n: fx.Node):
        before = len(self.mode.record)
        result = super().run_node(n)
        self.sites[n] = [call.index for call in self.mode.record[before:]]
        self.values[n] = result
        return result


def _depends_on_input(graph: fx.Graph) -> set[fx.Node]:
    dependent: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" or any(a in dependent for a in node.all_input_nodes):
            dependent.add(node)
    return dependent


def build_split(gm: fx.GraphModule, plan: SitePlan, x: tuple, batch: int, weight_ids: dict) -> Split | str:
    """Split ``gm`` at its first active stochastic node; returns a reason string if it can't."""
    record: list = []
    mode = StochasticMode(plan, noise=None, record=record, weight_ids=weight_ids)
    probe = _Probe(gm, mode)
    with mode, torch.no_grad():
        probe.run(*x)
    active = {call.index for call in record if plan.is_active(call.index, call.p)}
    graph = gm.graph
    dependent = _depends_on_input(graph)
    tail: set[fx.Node] = set()
    for node in graph.nodes:
        if any(i in active for i in probe.sites.get(node, ())) or any(a in tail for a in node.all_input_nodes):
            tail.add(node)
    if not tail:
        return "no graph node made an active stochastic call"
    # Non-tensor values that depend on the input (sizes, shapes) must be recomputed from the
    # replicated tensors in the tail: a batch size computed in the prefix would be wrong there.
    changed = True
    while changed:
        changed = False
        for node in graph.nodes:
            if node in tail or node.op == "output":
                continue
            value = probe.values.get(node)
            if node in dependent and not isinstance(value, Tensor) and any(u in tail for u in node.users):
                tail.add(node)
                changed = True
    output = next(n for n in graph.nodes if n.op == "output")
    tail.add(output)
    boundary = [n for n in graph.nodes if n not in tail and n in dependent and any(u in tail for u in n.users)]
    batch_dependent = []
    for node in boundary:
        value = probe.values[node]
        if not isinstance(value, Tensor) or value.dim() == 0 or value.shape[0] != batch:
            return f"value `{node.name}` crossing the split is not a batch-first tensor"
        batch_dependent.append(True)
    prefix_graph = fx.Graph()
    env = {}

    def copy_into(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
        if node not in env:
            for a in node.all_input_nodes:
                copy_into(g, a, env)
            env[node] = g.node_copy(node, lambda a: env[a])
        return env[node]

    for node in graph.nodes:
        if node.op == "placeholder":
            copy_into(prefix_graph, node, env)
    for node in boundary:
        copy_into(prefix_graph, node, env)
    prefix_graph.output(tuple(env[n] for n in boundary))
    tail_graph = fx.Graph()
    tail_env: dict[fx.Node, fx.Node] = {}
    for node in boundary:
        tail_env[node] = tail_graph.placeholder(node.name)
    for node in graph.nodes:
        if node in tail:
            copy_into(tail_graph, node, tail_env)
    prefix_module = fx.GraphModule(gm, prefix_graph, "Prefix")
    tail_module = fx.GraphModule(gm, tail_graph, "Tail")
    tail_sites = [i for node in graph.nodes if node in tail for i in probe.sites.get(node, ())]

    def count(g):
        return sum(1 for n in g.nodes if n.op in ("call_module", "call_function", "call_method"))

    by_index = {call.index: call for call in record}
    overwritable = set()
    for node in graph.nodes:
        indices = probe.sites.get(node, ())
        if node in tail and len(indices) == 1 and by_index[indices[0]].kind in (SiteKind.DROPOUT, SiteKind.FEATURE):
            source = node.args[0] if node.args else node.kwargs.get("input")
            if isinstance(source, fx.Node) and _owned(tail_env[source], tail_module):
                overwritable.add(indices[0])
    folds = _folds(gm, graph, tail, boundary, probe.sites, probe.values, by_index, plan)
    linear_scaled = {probe.sites[fold.dropout][0] for fold in folds.values() if fold.flatten is None} & overwritable
    folded_tail, shared_inputs = None, frozenset()
    if folds:
        shared_sources = {fold.dropout.args[0] for fold in folds.values() if fold.shared}
        folded_graph = fx.Graph()
        folded_env = {node: folded_graph.placeholder(node.name) for node in boundary}
        dropped = {fold.dropout for fold in folds.values()} | {fold.flatten for fold in folds.values()}
        for node in graph.nodes:
            if node not in tail or node in dropped:
                continue
            if node in folds:
                dropout, p, counted, shared, flatten = folds[node]  # a _Fold
                weight, bias = _linear_parameters(
                    node, gm, folded_graph, lambda a: copy_into(folded_graph, a, folded_env)
                )
                rows = folded_env[dropout.args[0]]
                if flatten is not None:  # flatten first: it commutes with an element-wise mask
                    rows = folded_graph.node_copy(flatten, lambda a, d=dropout, r=rows: r if a is d else folded_env[a])
                if dropout.op == "call_module":  # read the module's rate when sampling, as the plain tail does
                    p = folded_graph.call_function(getattr, (folded_graph.get_attr(dropout.target), "p"))
                folded_env[node] = folded_graph.call_function(
                    folded_dropout_linear, (rows, p, weight, bias, shared, counted)
                )
            else:
                copy_into(folded_graph, node, folded_env)
        folded_tail = fx.GraphModule(gm, folded_graph, "FoldedTail")
        shared_inputs = frozenset(i for i, node in enumerate(boundary) if node in shared_sources)
        _activations_in_place(folded_tail)
    _activations_in_place(tail_module)
    return Split(
        prefix=prefix_module,
        tail=tail_module,
        batch_dependent=batch_dependent,
        tail_sites=tail_sites,
        prefix_nodes=count(prefix_graph),
        tail_nodes=count(tail_graph),
        overwritable=frozenset(overwritable),
        linear_scaled=frozenset(linear_scaled),
        folded_tail=folded_tail,
        shared_inputs=shared_inputs,
    )


class _Fold(NamedTuple):
    """A "dropout [-> flatten] -> Linear" chain that consistent sampling folds (see :func:`_folds`)."""

    dropout: fx.Node
    p: float
    counts_linear: bool  # the Linear is an (inactive) candidate call of its own
    shared: bool  # the dropout's input is a boundary value only it reads: not replicated
    flatten: fx.Node | None


def _dropout_rate(node: fx.Node, gm: fx.GraphModule) -> float | None:
    """The rate of a plain element-wise dropout node (``nn.Dropout`` or ``F.dropout`` with a
    constant rate), else None."""
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        plain = type(module) is nn.Dropout and not module._forward_hooks and not module._forward_pre_hooks
        return float(module.p) if plain else None
    if node.op == "call_function" and node.target is F.dropout:
        p = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 0.5)
        return float(p) if isinstance(p, (int, float)) else None
    return None


def _linear_parameters(node: fx.Node, gm: fx.GraphModule, graph: fx.Graph, copy) -> tuple:
    """Weight and bias of the Linear ``node`` as values in ``graph`` (``copy`` maps a node there)."""
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        bias = graph.get_attr(f"{node.target}.bias") if module.bias is not None else None
        return graph.get_attr(f"{node.target}.weight"), bias
    weight = node.args[1] if len(node.args) > 1 else node.kwargs["weight"]
    bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
    return (copy(weight) if isinstance(weight, fx.Node) else weight), (
        copy(bias) if isinstance(bias, fx.Node) else bias
    )


_LINEAR_FUNCTIONS = (F.linear, torch._C._nn.linear)  # fx records the latter for F.linear


def _folds(gm, graph, tail, boundary, sites, values, by_index, plan: SitePlan) -> dict[fx.Node, _Fold]:
    """``{linear node: _Fold}`` for the tail's "dropout [-> flatten] -> Linear" chains on 2-d
    rows whose dropout output only the Linear (or the flatten) reads: under consistent sampling
    each sample's mask can move into its own copy of the weights."""
    if plan.method not in (Method.DROPOUT, Method.GAUSSIAN) or not plan.catch_dropout_calls:
        return {}
    if _module_hooks._global_forward_hooks or _module_hooks._global_forward_pre_hooks:
        return {}
    folds = {}
    for node in graph.nodes:
        indices = sites.get(node, ())
        if node not in tail or len(indices) != 1 or by_index[indices[0]].kind is not SiteKind.DROPOUT:
            continue
        p = _dropout_rate(node, gm)
        source = node.args[0] if node.args else None
        if p is None or not isinstance(source, fx.Node) or len(node.users) != 1:
            continue
        (user,) = node.users
        flatten = None
        if _flattens(user, node, gm, values) and len(user.users) == 1:
            flatten, (user,) = user, user.users
        rows = values.get(flatten if flatten is not None else source)
        if not isinstance(rows, Tensor) or rows.dim() != 2:
            continue  # masks of (B, ..., in) rows vary along "...": not a weight's
        feeding = flatten if flatten is not None else node
        if user.op == "call_module":
            module = gm.get_submodule(user.target)
            linear = type(module) is nn.Linear and not module._forward_hooks and not module._forward_pre_hooks
            linear = linear and user.args == (feeding,) and not user.kwargs
        else:
            linear = user.op == "call_function" and user.target in _LINEAR_FUNCTIONS and user.args[:1] == (feeding,)
        # A Linear chosen for added layer-input dropout is a candidate call itself: foldable while inactive.
        linear_sites = sites.get(user, ())
        if linear and all(not plan.is_active(i, by_index[i].p) for i in linear_sites) and len(linear_sites) <= 1:
            shared = source in boundary and len(source.users) == 1
            folds[user] = _Fold(node, p, bool(linear_sites), shared, flatten)
    return folds


_FLATTEN_FUNCTIONS = (torch.flatten, torch.reshape)


def _flattens(node: fx.Node, source: fx.Node, gm: fx.GraphModule, values: dict) -> bool:
    """Whether ``node`` turns the rows ``source`` ``(B, ...)`` into ``(B, features)`` in row-major
    order (``nn.Flatten``, ``torch.flatten``, ``.flatten`` / ``.view`` / ``.reshape``), reading
    nothing else that depends on ``source``."""
    if not node.args or node.args[0] is not source or any(a is source for a in node.args[1:]):
        return False
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        known = type(module) is nn.Flatten and not module._forward_hooks and not module._forward_pre_hooks
    elif node.op == "call_function":
        known = node.target in _FLATTEN_FUNCTIONS
    else:
        known = node.op == "call_method" and node.target in ("flatten", "view", "reshape")
    before, after = values.get(source), values.get(node)
    return (
        known
        and isinstance(before, Tensor)
        and isinstance(after, Tensor)
        and after.dim() == 2
        and after.shape[0] == before.shape[0]
        and not node.kwargs
        and all(not isinstance(a, fx.Node) for a in node.args[1:])
    )


# Operations whose result is a new tensor, and those whose result may share its input's memory.
_FRESH_FUNCTIONS = {
    F.linear, F.bilinear, F.conv1d, F.conv2d, F.conv3d, F.gelu, F.silu, F.mish, F.softplus, F.layer_norm,
    F.group_norm, F.batch_norm, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d,
    F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.softmax,
    F.log_softmax, F.embedding, folded_dropout_linear, torch.relu, torch.tanh, torch.sigmoid, torch.matmul,
    torch.bmm, torch.cat, torch.add,
    torch.mul, torch.sub, operator.add, operator.sub, operator.mul, operator.truediv, operator.matmul,
}  # fmt: skip
_INPLACE_ARGUMENT_FUNCTIONS = {F.relu, F.relu6, F.elu, F.selu, F.celu, F.leaky_relu, F.hardtanh, F.hardswish}
_FRESH_METHODS = {"tanh", "sigmoid", "softmax", "log_softmax", "matmul", "add", "sub", "mul", "gelu"}
_VIEW_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose", "contiguous"}
_FRESH_MODULES = (
    nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.GELU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softmax, nn.LogSoftmax, nn.Embedding,
)  # fmt: skip
_INPLACE_FLAG_MODULES = (
    nn.ReLU, nn.ReLU6, nn.ELU, nn.SELU, nn.CELU, nn.LeakyReLU, nn.Hardtanh, nn.SiLU, nn.Mish, nn.Hardswish
)  # fmt: skip


def _in_place_without_grad(x: Tensor, name: str) -> Tensor:
    """``torch.<name>(x)`` with autograd on, ``x.<name>_()`` (overwriting ``x``) without."""
    return getattr(torch, name)(x) if torch.is_grad_enabled() else getattr(x, name + "_")()


_IN_PLACE_ACTIVATIONS = ("relu", "tanh", "sigmoid")
_ACTIVATION_FUNCTIONS = {torch.relu: "relu", F.relu: "relu", torch.tanh: "tanh", torch.sigmoid: "sigmoid"}
_ACTIVATION_MODULES = ((nn.ReLU, "relu"), (nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid"))


def _activation(node: fx.Node, gm: fx.GraphModule) -> str | None:
    """``"relu"``, ``"tanh"`` or ``"sigmoid"`` for a call of that activation on one tensor that
    makes a fresh result (not already in place, no hooks), else None."""
    if node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS:
        extra = dict(node.kwargs)
        if node.target is F.relu and len(node.args) == 2:
            extra["inplace"] = node.args[1]
        plain = len(node.args) in (1, 1 + (node.target is F.relu)) and extra in ({}, {"inplace": False})
        return _ACTIVATION_FUNCTIONS[node.target] if plain else None
    if node.op == "call_method" and node.target in _IN_PLACE_ACTIVATIONS and len(node.args) == 1 and not node.kwargs:
        return node.target
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        if module._forward_hooks or module._forward_pre_hooks or getattr(module, "inplace", False):
            return None
        return next((name for kind, name in _ACTIVATION_MODULES if type(module) is kind), None)
    return None


def _activations_in_place(gm: fx.GraphModule) -> None:
    """Rewrite ``gm`` so that ReLU, tanh and sigmoid overwrite their input when autograd is off
    and nothing else reads that input (a fresh tensor the tail made): one allocation and one
    memory pass less per call on the replicated rows. With autograd on they run as written."""
    changed = False
    for node in list(gm.graph.nodes):
        kind = _activation(node, gm)
        source = node.args[0] if node.args else next(iter(node.kwargs.values()), None)
        if kind is None or not isinstance(source, fx.Node) or source.op == "placeholder" or not _owned(source, gm):
            continue
        with gm.graph.inserting_after(node):
            replacement = gm.graph.call_function(_in_place_without_grad, (source, kind))
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
        changed = True
    if changed:
        gm.recompile()


def _owned(node: fx.Node, gm: fx.GraphModule) -> bool:
    """Whether the tensor ``node`` makes is read by nothing but its one user in ``gm``'s graph and
    shares memory with nothing that is (or that the caller holds). Placeholders of the tail are
    the engine's replicated copies. Conservative: an operation not listed is not owned."""
    if len(node.users) != 1 or _module_hooks._global_forward_hooks:
        return False
    if node.op == "placeholder":
        return True
    source = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    if node.op == "call_function":
        if node.target in _FRESH_FUNCTIONS:
            return True
        if node.target in _INPLACE_ARGUMENT_FUNCTIONS:
            bound = inspect.signature(node.target).bind_partial(*node.args, **node.kwargs).arguments
            return not bound.get("inplace", False) or (source is not None and _owned(source, gm))
        if node.target is torch.flatten or node.target is _in_place_without_grad:
            return source is not None and _owned(source, gm)
        return False
    if node.op == "call_method":
        if node.target in _FRESH_METHODS:
            return True
        return node.target in _VIEW_METHODS and source is not None and _owned(source, gm)
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        if module._forward_hooks or module._forward_pre_hooks:
            return False
        if isinstance(module, _FRESH_MODULES):
            return True
        if isinstance(module, (*_INPLACE_FLAG_MODULES, nn.Flatten, nn.Identity)):
            aliases = isinstance(module, (nn.Flatten, nn.Identity)) or getattr(module, "inplace", False)
            return not aliases or (source is not None and _owned(source, gm))
    return False
