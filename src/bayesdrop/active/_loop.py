"""The active-learning loop: train -> score the pool -> acquire -> label, resumable by round."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import bayesdrop as bd

from .. import training
from .._errors import BayesdropError, expected
from .._io import atomic_open
from ._acquisition import Heuristic, batchbald, epig, random_scores, score
from ._pool import Pool

_STATE_VERSION = 1


@dataclass(frozen=True)
class LoopConfig:
    """One active-learning run.

    Args:
        heuristic: a :class:`Heuristic` name.
        acquire: items labelled per round.
        initial_per_class: class-balanced initial labels per class (round 0).
        budget: stop once this many items are labelled.
        pool_subset: unlabelled items scored per round, drawn afresh with the round's seed
            (Gal et al. 2017 score a random 2,000); None scores all of them.
        samples: MC samples K per pool point (drawn with ``consistent=True``).
        seed: every random choice of the run derives from it.
        batchbald_samples: sampled label configurations of BatchBALD.
        epig_targets: pool items drawn as EPIG's target inputs.
        batch_size: pool items per engine call.
    """

    heuristic: str = "bald"
    acquire: int = 10
    initial_per_class: int = 2
    budget: int = 1000
    pool_subset: int | None = 2000
    samples: int = 100
    seed: int = 0
    batchbald_samples: int = 10_000
    epig_targets: int = 100
    batch_size: int = 512

    def __post_init__(self) -> None:
        Heuristic(self.heuristic)  # a clear ValueError listing the names
        for name in ("acquire", "initial_per_class", "budget", "samples", "batchbald_samples", "epig_targets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise expected(name, "an integer >= 1", value)
        subset = self.pool_subset
        if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
            raise expected("pool_subset", "None or an integer >= 1", self.pool_subset)

    def round_seed(self, round: int, purpose: int) -> int:
        """A distinct, reproducible seed for each round and purpose (training, subset, MC, ...)."""
        return (self.seed * 1_000_003 + round * 101 + purpose) % 2**62


@dataclass
class Round:
    """What one round did: trained on ``labels`` items, measured ``metrics``, then labelled
    ``acquired`` (empty in the last round); ``seconds`` of wall time per step (train, evaluate,
    acquire) and the process's CPU time (cpu)."""

    round: int
    labels: int
    metrics: dict = field(default_factory=dict)
    acquired: list[int] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


TrainStep = Callable[["bd.MCModel", Dataset, Dataset | None, int], None]
Evaluate = Callable[["bd.MCModel", int], Mapping[str, float]]


def fit_step(**options) -> TrainStep:
    """The default training step: :func:`bayesdrop.training.fit` with ``options`` (epochs,
    weight decay, patience for early stopping on the validation set, ...)."""

    def step(mc: bd.MCModel, train_data: Dataset, val_data: Dataset | None, seed: int) -> None:
        training.fit(mc, train_data, val_data=val_data, seed=seed, **options)

    return step


def run_loop(
    make_model: Callable[[], nn.Module],
    x: Tensor,
    y: Tensor,
    config: LoopConfig,
    state_path: str | Path,
    train: TrainStep,
    evaluate: Evaluate | None = None,
    validation: Sequence[int] = (),
    wrap_options: Mapping | None = None,
    on_round: Callable[[Round], None] | None = None,
) -> list[Round]:
    """Run (or resume) active learning on the items ``x`` ``(N, ...)`` with labels ``y`` ``(N,)``.

    Every round builds a fresh model (``make_model()`` under the round's seed: the protocols
    reset the weights), trains it on the labelled items with ``train`` (validation items
    ``validation`` are never acquired), measures ``evaluate(mc, seed)``, scores a seeded subset
    of the unlabelled pool with consistent MC samples and labels the ``acquire`` best. The state
    (pool, rounds) is written atomically to ``state_path`` after every round; calling again with
    the same arguments resumes after the last completed round, with the same choices.
    """
    path = Path(state_path)
    if x.shape[0] != y.shape[0]:
        raise expected("y", f"{x.shape[0]} labels (one per item of x)", y.shape[0])
    fingerprint = {"config": asdict(config), "items": int(x.shape[0]), "validation": sorted(int(i) for i in validation)}
    if path.exists():
        state = json.loads(path.read_text())
        if state.get("version") != _STATE_VERSION or state.get("fingerprint") != fingerprint:
            raise BayesdropError(
                f"Argument `state_path`: {path} holds another run (its config, items or validation set differ); "
                "pass a new path, or delete the file to start again."
            )
        pool = Pool.from_state_dict(state["pool"])
        rounds = [Round(**r) for r in state["rounds"]]
    else:
        pool = Pool(int(x.shape[0]), excluded=validation)
        pool.label(pool.balanced_initial(y.tolist(), config.initial_per_class, config.round_seed(0, 0)), round=0)
        rounds = []
    val_data = TensorDataset(x[list(validation)], y[list(validation)]) if len(validation) else None
    while not rounds or rounds[-1].acquired:
        index = len(rounds)
        started, cpu_started = time.perf_counter(), time.process_time()
        with training.seeded(config.round_seed(index, 1)):
            model = make_model()
        mc = bd.wrap(model, **dict(wrap_options or {}))
        labelled = torch.as_tensor(pool.labelled)
        train(mc, TensorDataset(x[labelled], y[labelled]), val_data, config.round_seed(index, 2))
        trained = time.perf_counter()
        metrics = dict(evaluate(mc, config.round_seed(index, 3))) if evaluate is not None else {}
        evaluated = time.perf_counter()
        acquired: list[int] = []
        if len(pool.labelled) < config.budget and len(pool.unlabelled):
            count = min(config.acquire, config.budget - len(pool.labelled), len(pool.unlabelled))
            acquired = _acquire(mc, x, pool, config, index, count)
            pool.label(acquired, round=index + 1)
        done = time.perf_counter()
        seconds = {
            "train": trained - started,
            "evaluate": evaluated - trained,
            "acquire": done - evaluated,
            "cpu": time.process_time() - cpu_started,  # all threads of this process
        }
        rounds.append(Round(index, int(len(labelled)), metrics, [int(i) for i in acquired], seconds))
        state = {
            "version": _STATE_VERSION,
            "fingerprint": fingerprint,
            "pool": pool.state_dict(),
            "rounds": [asdict(r) for r in rounds],
        }
        with atomic_open(path) as f:  # a run killed at any moment leaves the old state or the new one
            json.dump(state, f)
        if on_round is not None:
            on_round(rounds[-1])
    return rounds


def _acquire(mc: bd.MCModel, x: Tensor, pool: Pool, config: LoopConfig, index: int, count: int) -> list[int]:
    heuristic = Heuristic(config.heuristic)
    size = config.pool_subset or len(pool.unlabelled)
    subset = pool.random_unlabelled(size, config.round_seed(index, 4))
    if heuristic is Heuristic.RANDOM:  # no model needed
        return subset[random_scores(len(subset), config.round_seed(index, 5)).topk(count).indices.numpy()].tolist()
    needs_samples = heuristic in (Heuristic.BATCHBALD, Heuristic.EPIG)
    loader = DataLoader(TensorDataset(x[torch.as_tensor(subset)]), batch_size=config.batch_size)
    mc_seed = config.round_seed(index, 6)
    pred = mc.predict_loader(loader, samples=config.samples, seed=mc_seed, keep_samples=needs_samples, consistent=True)
    if heuristic is Heuristic.BATCHBALD:
        picked = batchbald(pred, count, samples=config.batchbald_samples, seed=config.round_seed(index, 7))
    elif heuristic is Heuristic.EPIG:
        targets = pool.random_unlabelled(config.epig_targets, config.round_seed(index, 8))
        target_loader = DataLoader(TensorDataset(x[torch.as_tensor(targets)]), batch_size=config.batch_size)
        target_pred = mc.predict_loader(
            target_loader, samples=config.samples, seed=mc_seed, keep_samples=True, consistent=True
        )
        picked = epig(pred, target_pred).topk(count).indices
    else:
        picked = score(heuristic, pred).topk(count).indices
    return subset[picked.numpy()].tolist()


__all__ = ["LoopConfig", "Round", "fit_step", "run_loop"]
