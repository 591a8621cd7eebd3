"""Split a traced model into a deterministic prefix (run once) and a stochastic tail.

The model is traced with ``torch.fx``; one forward pass on a real input (the probe) tells which
graph nodes make active stochastic calls. Every node that depends on such a node belongs to the
tail, which the engine repeats for every MC sample; everything else is the prefix, computed once
per input. The user's model is shared, not copied: both halves call its modules and parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, fx, nn

from ._sites import SitePlan, StochasticMode


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

    return Split(
        prefix=prefix_module,
        tail=tail_module,
        batch_dependent=batch_dependent,
        tail_sites=tail_sites,
        prefix_nodes=count(prefix_graph),
        tail_nodes=count(tail_graph),
    )
