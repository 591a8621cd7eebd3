"""``wrap``: turn any ``nn.Module`` into an MC model; ``unwrap`` gives it back untouched."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from enum import Enum

import torch
from torch import Tensor, nn

from . import _split
from ._engine import ClassificationReducer, RegressionReducer, run_samples
from ._errors import BayesdropError, expected
from ._sites import Method, SiteCall, SiteKind, SitePlan, StochasticMode, TorchNoise, module_name_stack
from .layers import ConcreteDropout
from .prediction import Prediction

__all__ = ["MCModel", "wrap", "unwrap", "Task"]


class Task(str, Enum):
    """What the model predicts."""

    CLASSIFICATION = "classification"  #: class scores (B, C)
    REGRESSION = "regression"  #: real values (B, *out), optionally with a variance head


_OUTPUTS = {
    Task.CLASSIFICATION: ("logits", "probs", "log_probs"),
    Task.REGRESSION: ("mean", "mean_var", "mean_logvar"),
}
_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DEFAULT_BUDGET_CPU = 16 * 2**20


def _choice(argument: str, value, enum: type[Enum]):
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise expected(argument, f"one of {allowed}", value) from None


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


def _functional_dropout_nodes(gm: torch.fx.GraphModule) -> int:
    import torch.nn.functional as F

    from ._sites import _DROPOUT_FUNCTIONS

    possible = set(_DROPOUT_FUNCTIONS) | {F.scaled_dot_product_attention, F.multi_head_attention_forward}
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and n.target in possible)


class MCModel(nn.Module):
    """A model wrapped for Monte-Carlo sampling. Build it with :func:`bayesdrop.wrap`.

    Calling it (``mc(x)``) is calling the model: in train mode its stochastic layers are on
    (DropConnect / Gaussian noise included), in eval mode it is deterministic. ``predict`` draws
    MC samples through the sampling engine.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        method: Method,
        p: float | None,
        last_layer: bool,
        layers: Sequence[str | type] | None,
        output: str,
        tau: float | None,
        memory_budget: int | None,
    ) -> None:
        super().__init__()
        self.model = model
        self.task, self.method, self.p, self.last_layer = task, method, p, last_layer
        self.output, self.tau = output, tau
        self.memory_budget = memory_budget
        self._layer_names = self._resolve_layers(layers)
        weights = {id(module.weight): name for name, module in self._layer_names}
        if method is Method.DROPCONNECT:
            self._plan = SitePlan(method, p, None, weights, SiteKind.WEIGHT, catch_dropout_calls=False)
        else:
            self._plan = SitePlan(method, p, None, weights, SiteKind.LAYER_INPUT, catch_dropout_calls=True)
        self._layers_given = layers is not None
        self._prepared = False
        self._sites: list[SiteCall] = []
        self._split: _split.Split | None = None
        self._split_note = "not yet decided: the model is probed on the first call to predict"
        self._graph: torch.fx.GraphModule | None = None
        self._bytes_per_sample: dict[tuple, float] = {}
        self._static_check()

    # -- construction ------------------------------------------------------------------------
    def _resolve_layers(self, layers: Sequence[str | type] | None) -> list[tuple[str, nn.Module]]:
        named = dict(self.model.named_modules())
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
                        f"layer types present in {type(self.model).__name__} (Linear / Conv1d / Conv2d / Conv3d)",
                        item.__name__,
                    )
            elif isinstance(item, str):
                if item not in named:
                    options = ", ".join(n for n, _ in candidates) or "none"
                    raise expected(
                        "layers", f"names of Linear/Conv layers of {type(self.model).__name__} ({options})", item
                    )
                if not isinstance(named[item], _WEIGHT_LAYERS):
                    raise expected("layers", "names of Linear or Conv layers", f"{item} ({type(named[item]).__name__})")
                found = [(item, named[item])]
            else:
                raise expected("layers", "layer names (str) or layer types", item)
            chosen.extend(f for f in found if f not in chosen)
        return chosen

    def _static_check(self) -> None:
        if self.method is Method.DROPCONNECT or self._layers_given:
            if self.p is None:
                what = "method='dropconnect'" if self.method is Method.DROPCONNECT else "`layers`"
                raise expected("p", f"a rate in [0, 1) with {what} (the model has no rate for it)", None)
            if not self._layer_names:
                raise BayesdropError(
                    f"{type(self.model).__name__} has no Linear or Conv layer for method='{self.method.value}'."
                )
            return
        if self.p is not None or _static_dropout_sites(self.model):
            return
        try:
            self._graph = _split.trace(self.model)
        except Exception:  # noqa: BLE001 - untraceable: decide on the first predict
            return
        if not _functional_dropout_nodes(self._graph):
            raise BayesdropError(
                f"{type(self.model).__name__} has nothing stochastic: no dropout module, no "
                "functional dropout and no attention dropout. Pass `p` to add dropout before "
                "the last layer, choose `layers`, or use method='dropconnect' with `p`."
            )

    # -- training-time forward -------------------------------------------------------------
    def forward(self, *args, **kwargs):
        """The model's own forward; in train mode with the method's noise switched on."""
        if not self.training:
            return self.model(*args, **kwargs)
        if not self._prepared:  # learn which calls are stochastic (eval-mode probe, flags restored)
            inputs = self._as_inputs(args)
            with self._eval_mode(), torch.no_grad():
                self._prepare(inputs)
        if self.method is Method.DROPOUT and not self._layers_given and not self._inserted_dropout():
            return self.model(*args, **kwargs)  # the model's own dropout layers do the work
        with StochasticMode(self._plan, TorchNoise()):
            return self.model(*args, **kwargs)

    def _inserted_dropout(self) -> bool:
        return any(s.kind is SiteKind.LAYER_INPUT and s.index in self._plan.active for s in self._sites)

    # -- probing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _eval_mode(self):
        flags = {m: m.training for m in self.model.modules()}
        self.model.eval()
        try:
            yield
        finally:
            for m, flag in flags.items():
                m.training = flag

    def _prepare(self, inputs: tuple) -> None:
        plan = self._plan
        record: list[SiteCall] = []
        stack, handles = module_name_stack(self.model)
        try:
            with torch.no_grad(), StochasticMode(plan, None, record=record, module_stack=stack):
                self.model(*inputs)
        except BayesdropError:
            raise
        except Exception as error:
            shapes = ", ".join(str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__ for x in inputs)
            raise BayesdropError(
                f"Argument `x`: {type(self.model).__name__} rejected an input of shape {shapes}: {error}"
            ) from error
        finally:
            for h in handles:
                h.remove()
        self._sites = record
        plan.active = self._choose_active(record)
        self._prepared = True
        self._decide_split(inputs)

    def _choose_active(self, record: list[SiteCall]) -> frozenset[int]:
        dropout_calls = [s for s in record if s.kind not in (SiteKind.WEIGHT, SiteKind.LAYER_INPUT) and s.p > 0]
        weight_calls = [s for s in record if s.kind in (SiteKind.WEIGHT, SiteKind.LAYER_INPUT)]
        model = type(self.model).__name__
        if self.method is Method.DROPCONNECT or self._layers_given:
            chosen = weight_calls
            if not chosen:
                raise BayesdropError(f"None of the chosen `layers` of {model} ran in its forward pass.")
        elif dropout_calls:
            chosen = dropout_calls
        elif self.p is not None and weight_calls:
            chosen = weight_calls[-1:]  # no dropout at all: add it before the last executed layer
        else:
            raise BayesdropError(
                f"{model} has nothing stochastic: no dropout with p > 0 ran in its forward pass. "
                "Pass `p` to add dropout before the last layer, choose `layers`, or use "
                "method='dropconnect' with `p`."
            )
        if self.last_layer:
            chosen = chosen[-1:]
        return frozenset(s.index for s in chosen)

    def _decide_split(self, inputs: tuple) -> None:
        if self._graph is None:
            try:
                self._graph = _split.trace(self.model)
            except Exception as error:  # noqa: BLE001
                first_line = str(error).splitlines()[0][:120] if str(error) else ""
                self._split_note = (
                    f"full replication: the model cannot be traced by torch.fx ({type(error).__name__}: {first_line})"
                )
                return
        if any(isinstance(x, Tensor) is False for x in inputs):
            self._split_note = "full replication: non-tensor inputs"
            return
        batch = inputs[0].shape[0]
        try:
            result = _split.build_split(self._graph, self._plan, inputs, batch)
        except Exception as error:  # noqa: BLE001
            result = f"splitting failed ({type(error).__name__}: {error})"
        if isinstance(result, str):
            self._split_note = f"full replication: {result}"
            return
        # Check on the real input that both paths give the same samples before trusting the split.
        probe = tuple(x[: min(batch, 4)] for x in inputs)
        try:
            split_out = self._sample_raw(probe, 2, seed=12345, split=result)
            full_out = self._sample_raw(probe, 2, seed=12345, split=None)
            same = all(
                torch.allclose(a, b, rtol=1e-4, atol=1e-5)
                for a, b in zip(
                    torch.utils._pytree.tree_leaves(split_out), torch.utils._pytree.tree_leaves(full_out), strict=False
                )
            )
        except Exception as error:  # noqa: BLE001
            self._split_note = (
                f"full replication: the split graph failed on the input ({type(error).__name__}: {error})"
            )
            return
        if not same:
            self._split_note = "full replication: the split model disagreed with the full model on the input"
            return
        self._split = result
        self._split_note = (
            f"prefix cached: {result.prefix_nodes} graph operations run once per input, "
            f"{result.tail_nodes} repeated per sample"
        )

    def _sample_raw(self, inputs: tuple, samples: int, seed: int, split) -> object:
        outputs = []
        forward, values, flags, index_map = self._stages(inputs, split)
        run_samples(
            forward,
            values,
            flags,
            self._plan,
            index_map,
            samples,
            seed,
            0,
            samples,
            self._budget(inputs),
            None,
            lambda out, n: outputs.append(out),
        )
        return outputs[0]

    def _stages(self, inputs: tuple, split):
        if split is None:
            return self.model, list(inputs), [isinstance(x, Tensor) for x in inputs], None
        with StochasticMode(self._plan, None):
            boundary = split.prefix(*inputs)
        return split.tail, list(boundary), split.batch_dependent, split.tail_sites

    def _budget(self, inputs: tuple) -> int:
        if self.memory_budget is not None:
            return self.memory_budget
        device = inputs[0].device if inputs and isinstance(inputs[0], Tensor) else torch.device("cpu")
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free * 0.25)
        return _DEFAULT_BUDGET_CPU

    def _device(self) -> torch.device | None:
        for tensor in list(self.model.parameters()) + list(self.model.buffers()):
            return tensor.device
        return None

    # -- prediction ------------------------------------------------------------------------------
    def predict(
        self,
        x: Tensor | Sequence[Tensor],
        samples: int = 100,
        seed: int | None = 0,
        keep_samples: bool = False,
        target: Tensor | None = None,
        grad: bool = False,
        chunk_size: int | None = None,
    ) -> Prediction:
        """Draw ``samples`` stochastic forward passes of a batch and reduce them.

        >>> import bayesdrop as bd
        >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        >>> pred = bd.wrap(net).predict(torch.randn(8, 4), samples=50, seed=0)
        >>> pred.mean.shape, pred.epistemic.shape, pred.n_samples
        (torch.Size([8, 3]), torch.Size([8]), 50)

        Args:
            x: ``(B, ...)`` input batch, or a tuple of batch-first inputs.
            samples: T >= 1, the number of MC samples.
            seed: samples are a function of the seed only (not of the chunking); None draws a
                seed from torch's global generator.
            keep_samples: also return the raw samples as ``pred.samples`` ``(B, T, ...)``.
            target: ``(B,)`` labels or ``(B, *out)`` regression targets: fills
                ``pred.log_likelihood``.
            grad: keep the autograd graph through the samples (e.g. for CLUE).
            chunk_size: samples per replicated forward pass; default from the memory budget.
        """
        return self._predict(x, samples, seed, keep_samples, target, grad, chunk_size, stream=0)

    def _predict(self, x, samples, seed, keep_samples, target, grad, chunk_size, stream) -> Prediction:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise expected("samples", "an integer >= 1", samples)
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise expected("chunk_size", "None or an integer >= 1", chunk_size)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise expected("seed", "None or a non-negative integer", seed)
        inputs = self._as_inputs(x)
        batch = inputs[0].shape[0]
        if target is not None:
            target = self._check_target(target, batch, inputs[0].device)
        grad_context = torch.enable_grad() if grad else torch.no_grad()
        with self._eval_mode(), grad_context:
            if not self._prepared:
                with torch.no_grad():
                    self._prepare(inputs)
            if self.task is Task.CLASSIFICATION:
                reducer = ClassificationReducer(self.output, keep_samples, target)
            else:
                if target is not None and self.output == "mean" and self.tau is None:
                    raise expected(
                        "tau",
                        "the model precision (a positive float) to score targets of a point-output regression model",
                        None,
                    )
                reducer = RegressionReducer(self.output, self.tau, keep_samples, target)
            forward, values, flags, index_map = self._stages(inputs, self._split)
            # Memory per sample grows with the batch: remember it per row, keyed by the row shapes,
            # so a loader's short last batch is sized without measuring again.
            key = tuple((tuple(v.shape[1:]), v.dtype) for v, f in zip(values, flags, strict=False) if f)
            per_row = self._bytes_per_sample.get(key)
            try:
                measured = run_samples(
                    forward,
                    values,
                    flags,
                    self._plan,
                    index_map,
                    samples,
                    seed,
                    stream,
                    chunk_size,
                    self._budget(inputs),
                    None if per_row is None else per_row * batch,
                    reducer.update,
                )
            except BayesdropError:
                raise
            except Exception as error:
                shapes = ", ".join(str(tuple(v.shape)) for v in inputs)
                raise BayesdropError(
                    f"Argument `x`: sampling {type(self.model).__name__} on input of shape {shapes} "
                    f"with samples={samples} failed: {type(error).__name__}: {error}"
                ) from error
            if measured is not None:
                self._bytes_per_sample[key] = measured / batch
            return reducer.finalize()

    def _as_inputs(self, x) -> tuple:
        inputs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        if not inputs or not all(isinstance(v, Tensor) for v in inputs):
            raise expected("x", "a tensor or a tuple of tensors", type(x).__name__)
        if inputs[0].dim() == 0 or inputs[0].shape[0] == 0:
            raise expected("x", "a non-empty batch-first tensor (B, ...)", tuple(inputs[0].shape))
        device = self._device()
        if device is not None:
            inputs = tuple(v.to(device) for v in inputs)
        return inputs

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
        seed: int = 0,
        keep_samples: bool = False,
        progress: bool = False,
        chunk_size: int | None = None,
    ) -> Prediction:
        """Predict every batch of ``loader`` (yielding ``x`` or ``(x, y, ...)``) and concatenate.

        Each batch gets its own noise stream derived from ``seed`` and the batch index, so the
        result is reproducible for a given seed and batching. When batches carry targets,
        ``pred.log_likelihood`` is filled.
        """
        batches = loader
        if progress:
            try:
                from tqdm.auto import tqdm

                batches = tqdm(loader, desc=f"MC x{samples}", unit="batch")
            except ImportError:  # pragma: no cover - tqdm is an optional extra
                pass
        results = []
        for index, batch in enumerate(batches):
            if isinstance(batch, (tuple, list)):
                x, target = batch[0], (batch[1] if len(batch) > 1 else None)
            else:
                x, target = batch, None
            if self.task is Task.REGRESSION and self.output == "mean" and self.tau is None:
                target = None
            results.append(self._predict(x, samples, seed, keep_samples, target, False, chunk_size, stream=index + 1))
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
        inputs = self._as_inputs(x)
        y = self._check_target(target, inputs[0].shape[0], inputs[0].device)
        means = self._predict(inputs, samples, seed, True, None, False, None, stream=0).samples.double()
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

    def flops(self, x: Tensor | Sequence[Tensor], samples: int = 100) -> dict[str, int]:
        """FLOPs of MC prediction of ``x`` as the engine runs it, next to the naive cost.

        Counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions).
        Returns ``prefix`` (run once), ``per_sample`` (the stochastic tail, per sample),
        ``engine`` = prefix + samples * per_sample, ``forward`` (one full forward) and
        ``naive`` = samples * forward.
        """
        from torch.utils.flop_counter import FlopCounterMode

        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise expected("samples", "an integer >= 1", samples)
        inputs = self._as_inputs(x)
        with self._eval_mode(), torch.no_grad():
            if not self._prepared:
                self._prepare(inputs)
            counter = FlopCounterMode(display=False)
            with counter, StochasticMode(self._plan, None):
                self.model(*inputs)
            forward = int(counter.get_total_flops())
            prefix = 0
            values, flags, index_map, tail = list(inputs), [True] * len(inputs), None, self.model
            if self._split is not None:
                counter = FlopCounterMode(display=False)
                with counter, StochasticMode(self._plan, None):
                    values = list(self._split.prefix(*inputs))
                prefix = int(counter.get_total_flops())
                flags, index_map, tail = self._split.batch_dependent, self._split.tail_sites, self._split.tail
            counter = FlopCounterMode(display=False)
            with counter:
                run_samples(
                    tail,
                    values,
                    flags,
                    self._plan,
                    index_map,
                    1,
                    0,
                    0,
                    1,
                    self._budget(inputs),
                    None,
                    lambda out, n: None,
                )
            per_sample = int(counter.get_total_flops())
        return {
            "prefix": prefix,
            "per_sample": per_sample,
            "engine": prefix + samples * per_sample,
            "forward": forward,
            "naive": samples * forward,
        }

    # -- reporting ---------------------------------------------------------------------------------
    @property
    def sites(self) -> list[SiteCall]:
        """Stochastic calls seen on the first predict, in execution order: every dropout-like
        call (active or not) and the layers whose weights or inputs carry noise."""
        return [s for s in self._sites if self._shown(s)]

    def _shown(self, site: SiteCall) -> bool:
        return site.kind not in (SiteKind.WEIGHT, SiteKind.LAYER_INPUT) or site.index in self._plan.active

    def describe(self) -> str:
        """What was made stochastic and how sampling runs."""
        lines = [
            f"MCModel({type(self.model).__name__}): task={self.task.value}, method={self.method.value}, "
            f"output={self.output}"
            + (f", p={self.p}" if self.p is not None else "")
            + (", last_layer=True" if self.last_layer else "")
        ]
        if not self._prepared:
            static = _static_dropout_sites(self.model)
            lines.append(
                f"stochastic sites: decided on the first predict ({static} dropout module(s) found statically)"
            )
        else:
            active = [s for s in self._sites if s.index in self._plan.active]
            lines.append(f"stochastic sites ({len(active)} active, execution order):")
            for s in self.sites:
                state = "active" if s.index in self._plan.active else "off"
                what = {
                    SiteKind.WEIGHT: f"DropConnect on the weights of {s.function}",
                    SiteKind.LAYER_INPUT: f"{self.method.value} on the input of {s.function}",
                }.get(s.kind, f"{s.function} ({s.kind.value})")
                lines.append(f"  [{s.index}] {s.where:<24} {what}  p={s.p:g}  {state}")
        lines.append(f"sampling: {self._split_note}")
        if self.memory_budget is not None:
            budget = f"a {self.memory_budget / 2**20:g} MiB budget"
        else:
            budget = f"a {_DEFAULT_BUDGET_CPU / 2**20:.0f} MiB budget (CPU default; CUDA: 25% of free memory)"
        lines.append(f"chunking: batch replication in chunks under {budget}, halved on out-of-memory")
        return "\n".join(lines)

    def extra_repr(self) -> str:
        return f"task={self.task.value}, method={self.method.value}"


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
    tau: float | None = None,
    memory_budget: int | None = None,
    example_input: Tensor | Sequence[Tensor] | None = None,
) -> MCModel:
    """Wrap ``model`` for Monte-Carlo sampling; the model itself is never modified.

    >>> import bayesdrop as bd
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    >>> mc = bd.wrap(net, task="classification")
    >>> bd.unwrap(mc) is net
    True

    Args:
        model: any ``nn.Module`` with batch-first inputs and outputs.
        task: ``"classification"`` or ``"regression"``.
        method: ``"dropout"`` (the model's own dropout, or dropout added where ``layers`` /
            ``p`` say), ``"dropconnect"`` (weight masks, one per sample; needs ``p``) or
            ``"gaussian"`` (multiplicative N(1, p / (1 - p)) noise at the dropout sites).
        p: overrides every site's rate; required for DropConnect, ``layers``, or a model
            without dropout (dropout is then added before its last executed layer).
        last_layer: keep only the last stochastic call in execution order.
        layers: Linear/Conv layers by name or type: DropConnect's weights, or where dropout
            is added for the other methods. Default for DropConnect: every Linear and Conv.
        output: classification ``"logits"`` (default), ``"probs"`` or ``"log_probs"``;
            regression ``"mean"`` (default), ``"mean_var"`` or ``"mean_logvar"``.
        tau: regression model precision: aleatoric variance 1 / tau for point outputs.
        memory_budget: bytes for one chunk of replicated work (CPU default 16 MiB; CUDA: a
            quarter of the free memory).
        example_input: probe the model now instead of on the first ``predict``.
    """
    if not isinstance(model, nn.Module):
        raise expected("model", "a torch.nn.Module", type(model).__name__)
    if isinstance(model, MCModel):
        raise expected("model", "an unwrapped nn.Module", "an MCModel (call bd.unwrap first)")
    task_value = _choice("task", task, Task)
    method_value = _choice("method", method, Method)
    if p is not None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0 or math.isnan(p):
            raise expected("p", "a float in [0, 1)", p)
        p = float(p)
    if output is None:
        output = _OUTPUTS[task_value][0]
    elif output not in _OUTPUTS[task_value]:
        raise expected(
            "output", f"one of {', '.join(map(repr, _OUTPUTS[task_value]))} for task='{task_value.value}'", output
        )
    if tau is not None and (isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0):
        raise expected("tau", "a positive float", tau)
    if tau is not None and task_value is Task.CLASSIFICATION:
        raise expected("tau", "None for task='classification'", tau)
    if memory_budget is not None and (not isinstance(memory_budget, int) or memory_budget < 1):
        raise expected("memory_budget", "None or a positive number of bytes", memory_budget)
    mc = MCModel(
        model,
        task_value,
        method_value,
        p,
        bool(last_layer),
        layers,
        output,
        None if tau is None else float(tau),
        memory_budget,
    )
    if example_input is not None:
        inputs = mc._as_inputs(example_input)
        with mc._eval_mode(), torch.no_grad():
            mc._prepare(inputs)
    return mc


def unwrap(mc: MCModel) -> nn.Module:
    """The original model: same object, same state, same deterministic outputs."""
    if not isinstance(mc, MCModel):
        raise expected("mc", "an MCModel returned by bayesdrop.wrap", type(mc).__name__)
    return mc.model
