"""Active-learning experiments by name: data set, model, method and protocol in one config;
runs tracked in MLflow per round, resumable, repeated over heuristics and seeds (locally or as
Ray trials) and summarised as learning curves and labels-to-accuracy tables."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

import bayesdrop as bd

from .. import metrics, training
from .._errors import BayesdropError, expected
from .._io import atomic_open
from ._loop import LoopConfig, Round, run_loop

__all__ = [
    "ACTIVE_DATASETS",
    "ActiveConfig",
    "ActiveData",
    "ActiveResult",
    "OutOfTime",
    "active_grid",
    "grid_report",
    "labels_to_accuracy",
    "learning_curve_area",
    "load_active_data",
    "load_active_result",
    "run_active",
    "run_active_grid",
    "summarize",
]

ACTIVE_DATASETS = {
    "mnist-10k": "the 10,000 MNIST test images: a seeded test part (test_size), the rest is the pool",
    "mnist": "MNIST: the 60,000 training images are the pool, the test set the test part",
    "fashion-mnist": "Fashion-MNIST: the 60,000 training images are the pool, the test set the test part",
    "digits": "scikit-learn's 1,797 digits at 28x28 (no download; for quick runs and tests)",
}
METHODS = ("dropout", "dropconnect")
RESULT_FILE = "result.json"
STATE_FILE = "state.json"

# fields that say where and how a run is recorded, not what it computes
_RECORDING = frozenset({"data_dir", "output_dir", "tracking", "tracking_uri", "experiment_name", "name"})


@dataclass(frozen=True)
class ActiveConfig:
    """One active-learning run (one heuristic, one seed).

    The protocol defaults are Gal, Islam & Ghahramani (2017): 2 labels per class to start,
    10 acquired per round from a random 2,000-item pool subset, K = 100, up to 1,000 labels,
    100 validation items, the paper's CNN.

    Args:
        dataset: one of :data:`ACTIVE_DATASETS`.
        model: a model of ``bayesdrop.models`` (e.g. ``gal_cnn``); ``model_options`` its arguments.
        method: ``dropout`` (the model's own dropout) or ``dropconnect`` (weight masks on the
            ``dropconnect_layers`` at ``rate``; the model's dropout is switched off).
        heuristic: a :class:`Heuristic` name.
        samples: MC samples K per pool item (consistent masks).
        acquire, initial_per_class, budget, pool_subset: the protocol (see :class:`LoopConfig`).
        validation: labelled validation items for early stopping (never acquired).
        test_size: test items (None: the whole test part); ``eval_samples`` MC samples each.
        epochs: at most this many epochs per round, an epoch being ``epoch_items`` items drawn
            by cycling the labelled set (so that a 20-item set still gets enough steps before
            early stopping can act).
        patience: early stopping on the validation NLL (best weights restored).
        weight_decay: L2 coefficient ``c / N`` on the loss, N labelled items (Gal et al.: 3.5).
        seed: seeds the initial labels, initialisation, training, subsets and MC masks.
        data_seed: seeds the test / validation split (shared by all seeds of a study).
        data_dir, output_dir, tracking, tracking_uri, experiment_name, name: where the run is
            recorded (run folders ``output_dir/<name>``, MLflow).
    """

    dataset: str = "mnist-10k"
    model: str = "gal_cnn"
    model_options: dict = field(default_factory=dict)
    method: str = "dropout"
    rate: float | None = None
    dropconnect_layers: tuple[str, ...] = ("classifier.0", "classifier.3")
    heuristic: str = "bald"
    samples: int = 100
    acquire: int = 10
    initial_per_class: int = 2
    budget: int = 1000
    pool_subset: int | None = 2000
    validation: int = 100
    test_size: int | None = 2000
    eval_samples: int = 20
    epochs: int = 50
    epoch_items: int = 512
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 3.5
    patience: int = 3
    seed: int = 0
    data_seed: int = 0
    batchbald_samples: int = 10_000
    epig_targets: int = 100
    data_dir: str | None = None
    output_dir: str = "runs/active"
    tracking: bool = False
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment_name: str = "bayesdrop-active"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.dataset not in ACTIVE_DATASETS:
            raise expected("dataset", f"one of {sorted(ACTIVE_DATASETS)}", self.dataset)
        if self.method not in METHODS:
            raise expected("method", f"one of {METHODS}", self.method)
        if self.method == "dropconnect" and self.rate is None:
            raise BayesdropError("Argument `rate`: DropConnect needs the weight-drop rate (e.g. 0.5); got None.")
        if self.rate is not None and not 0.0 <= float(self.rate) < 1.0:
            raise expected("rate", "None or a float in [0, 1)", self.rate)
        for name in ("validation", "eval_samples", "epochs", "epoch_items", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise expected(name, "an integer >= 1", value)
        if self.test_size is not None and (isinstance(self.test_size, bool) or self.test_size < 1):
            raise expected("test_size", "None or an integer >= 1", self.test_size)
        if not self.lr > 0:
            raise expected("lr", "a float > 0", self.lr)
        if not self.weight_decay >= 0:
            raise expected("weight_decay", "a float >= 0", self.weight_decay)
        object.__setattr__(self, "dropconnect_layers", tuple(self.dropconnect_layers))
        self.loop_config()  # checks the protocol fields

    def loop_config(self) -> LoopConfig:
        return LoopConfig(
            heuristic=self.heuristic,
            acquire=self.acquire,
            initial_per_class=self.initial_per_class,
            budget=self.budget,
            pool_subset=self.pool_subset,
            samples=self.samples,
            seed=self.seed,
            batchbald_samples=self.batchbald_samples,
            epig_targets=self.epig_targets,
        )

    def protocol(self) -> dict[str, Any]:
        """The fields that decide what the run computes (not where it is recorded)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _RECORDING}
        out["dropconnect_layers"] = list(self.dropconnect_layers)
        return out

    def key(self) -> str:
        text = json.dumps(self.protocol(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def run_name(self) -> str:
        if self.name:
            return self.name
        method = "" if self.method == "dropout" else f"-{self.method}{self.rate:g}"
        return f"{self.dataset}-{self.heuristic}{method}-K{self.samples}-b{self.acquire}-s{self.seed}-{self.key()}"

    def folder(self) -> Path:
        return Path(self.output_dir) / self.run_name()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dropconnect_layers"] = list(self.dropconnect_layers)
        return out


@dataclass(frozen=True)
class ActiveData:
    """Items ``x`` ``(N, ...)`` with labels ``y`` ``(N,)`` (pool and validation), the
    ``validation`` indices into them, and a held-out test part."""

    x: Tensor
    y: Tensor
    validation: list[int]
    x_test: Tensor
    y_test: Tensor
    num_classes: int


def load_active_data(config: ActiveConfig) -> ActiveData:
    """The pool / validation / test parts of ``config.dataset``, split with ``config.data_seed``."""
    from .. import data

    generator = torch.Generator().manual_seed(config.data_seed)
    if config.dataset in ("mnist-10k", "digits"):
        if config.dataset == "digits":
            x_all, y_all = data.load_digits(28)
        else:
            x_all, y_all = data.load_mnist("test", config.data_dir)
        test_size = config.test_size or len(x_all) // 5
        if test_size + config.validation >= len(x_all):
            raise expected("test_size", f"fewer than {len(x_all) - config.validation} items", test_size)
        order = torch.randperm(len(x_all), generator=generator)
        test, rest = order[:test_size], order[test_size:].sort().values
        x, y, x_test, y_test = x_all[rest], y_all[rest], x_all[test], y_all[test]
    else:
        load = data.load_mnist if config.dataset == "mnist" else data.load_fashion_mnist
        x, y = load("train", config.data_dir)
        x_test, y_test = load("test", config.data_dir)
        if config.test_size is not None and config.test_size < len(x_test):
            keep = torch.randperm(len(x_test), generator=generator)[: config.test_size]
            x_test, y_test = x_test[keep], y_test[keep]
    validation = torch.randperm(len(x), generator=generator)[: config.validation].sort().values.tolist()
    return ActiveData(x, y, validation, x_test, y_test, int(y.max()) + 1)


def _make_model(config: ActiveConfig, data: ActiveData) -> torch.nn.Module:
    from ..models import create_model

    options = {"in_channels": int(data.x.shape[1]), "num_classes": data.num_classes, **config.model_options}
    if config.method == "dropconnect":  # weight masks replace the model's unit dropout
        options |= {"dropout": 0.0, **({"conv_dropout": 0.0} if config.model.replace("-", "_") == "gal_cnn" else {})}
    return create_model(config.model, **options)


def _wrap_options(config: ActiveConfig) -> dict[str, Any]:
    if config.method == "dropconnect":
        return {"method": "dropconnect", "p": config.rate, "layers": list(config.dropconnect_layers)}
    return {"method": "dropout", "p": config.rate}


class _Cycled(Dataset):
    """``length`` items cycling through ``base`` (an epoch of a fixed size on a small labelled set)."""

    def __init__(self, base: Dataset, length: int) -> None:
        self.base, self.length = base, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Any:
        return self.base[i % len(self.base)]


def _train_step(config: ActiveConfig):
    def step(mc: bd.MCModel, train_data: Dataset, val_data: Dataset | None, seed: int) -> None:
        n = len(train_data)
        training.fit(
            mc,
            _Cycled(train_data, max(n, config.epoch_items)),
            val_data=val_data,
            epochs=config.epochs,
            patience=config.patience,
            batch_size=config.batch_size,
            lr=config.lr,
            weight_decay=2 * config.weight_decay / n,  # the gradient of (c / N) |w|^2
            seed=seed,
        )

    return step


def _evaluate_step(config: ActiveConfig, data: ActiveData):
    loader = DataLoader(TensorDataset(data.x_test), batch_size=1024)

    def evaluate(mc: bd.MCModel, seed: int) -> dict[str, float]:
        probs = mc.predict_loader(loader, samples=config.eval_samples, seed=seed).mean
        return {
            "accuracy": metrics.accuracy(probs, data.y_test),
            "nll": metrics.nll(probs, data.y_test),
            "ece": metrics.ece(probs, data.y_test),
        }

    return evaluate


@dataclass
class ActiveResult:
    """A finished run: its config, the per-round curve and what it cost.

    Attributes:
        labels: labelled items per round; accuracy, nll, ece: test metrics per round.
        acquired: the items labelled after each round (indices into the pool's data set).
        cpu_seconds, wall_seconds: summed over rounds (including rounds of earlier, killed
            processes).
    """

    config: dict
    labels: list[int]
    accuracy: list[float]
    nll: list[float]
    ece: list[float]
    acquired: list[list[int]]
    cpu_seconds: float
    wall_seconds: float
    folder: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def labels_to(self, accuracy: float) -> int | None:
        return labels_to_accuracy(self.labels, self.accuracy, accuracy)


def labels_to_accuracy(labels: Sequence[int], accuracy: Sequence[float], threshold: float) -> int | None:
    """The fewest labels at which the test accuracy reached ``threshold`` (None if never).

    >>> labels_to_accuracy([20, 30, 40], [0.5, 0.91, 0.89], 0.9)
    30
    """
    for n, a in zip(labels, accuracy, strict=True):
        if a >= threshold:
            return int(n)
    return None


def learning_curve_area(labels: Sequence[int], accuracy: Sequence[float]) -> float:
    """Area under the accuracy-vs-labels curve divided by its label range (the mean accuracy
    over the budget, trapezoidal rule); the accuracy itself for a single point.

    >>> learning_curve_area([0, 10, 20], [0.0, 1.0, 1.0])
    0.75
    """
    if len(labels) < 2:
        return float(accuracy[0]) if len(accuracy) else math.nan
    x, y = np.asarray(labels, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def load_active_result(config: ActiveConfig) -> ActiveResult | None:
    """The finished run of ``config`` (None if it has not finished, or the folder holds another)."""
    path = config.folder() / RESULT_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if ActiveConfig(**_config_arguments(record["config"])).protocol() != config.protocol():
        return None
    return ActiveResult(**record)


def _config_arguments(record: dict) -> dict:
    known = {f.name for f in fields(ActiveConfig)}
    return {k: v for k, v in record.items() if k in known}


def _result(config: ActiveConfig, rounds: list[Round]) -> ActiveResult:
    return ActiveResult(
        config=config.to_dict(),
        labels=[r.labels for r in rounds],
        accuracy=[float(r.metrics.get("accuracy", math.nan)) for r in rounds],
        nll=[float(r.metrics.get("nll", math.nan)) for r in rounds],
        ece=[float(r.metrics.get("ece", math.nan)) for r in rounds],
        acquired=[list(r.acquired) for r in rounds],
        cpu_seconds=sum(r.seconds.get("cpu", 0.0) for r in rounds),
        wall_seconds=sum(sum(v for k, v in r.seconds.items() if k != "cpu") for r in rounds),
        folder=str(config.folder()),
    )


def _log_round(tracker: Any, r: Round) -> None:
    tracker.log_metrics(
        {
            **r.metrics,
            "labels": r.labels,
            **{f"{k}_seconds": v for k, v in r.seconds.items()},
        },
        step=r.round,
    )
    if r.acquired:
        tracker.log_text(json.dumps(r.acquired), f"acquired/round_{r.round:04d}.json")


class OutOfTime(BayesdropError):
    """Raised by :func:`run_active` when its ``deadline`` passed (the state is saved)."""


def run_active(
    config: ActiveConfig, *, verbose: bool = True, data: ActiveData | None = None, deadline: float | None = None
) -> ActiveResult:
    """Run (or resume, or read back) one active-learning run; see :class:`ActiveConfig`.

    The run folder holds ``state.json`` (written after every round: a killed run resumes from
    its last completed round) and, once finished, ``result.json``. With ``tracking``, every
    round is logged to MLflow (test accuracy, NLL, ECE, labels, seconds, the acquired indices);
    a resumed run logs the earlier rounds again into its new MLflow run.

    ``deadline`` (a ``time.monotonic()`` value): stop with :class:`OutOfTime` after the first
    round that ends past it; calling again resumes.
    """
    done = load_active_result(config)
    if done is not None:
        return done
    from ..experiments import lock_run_folder

    folder = config.folder()
    folder.mkdir(parents=True, exist_ok=True)
    lock = lock_run_folder(folder)  # one process per run: RunFolderInUse otherwise
    try:
        return _run_locked(config, folder, verbose, data, deadline)
    finally:
        lock.unlink(missing_ok=True)


def _run_locked(
    config: ActiveConfig, folder: Path, verbose: bool, data: ActiveData | None, deadline: float | None
) -> ActiveResult:
    from ..experiments import make_tracker

    done = load_active_result(config)  # finished by another process while this one waited
    if done is not None:
        return done
    with atomic_open(folder / "config.json") as f:
        json.dump(config.to_dict(), f, indent=2)
    data = data if data is not None else load_active_data(config)
    tracker = make_tracker(config.tracking, config.tracking_uri, config.experiment_name)
    tracker.start(
        config.run_name(),
        config.protocol(),
        {"bayesdrop.run_key": config.key(), "bayesdrop.kind": "active"},
    )
    state_path = folder / STATE_FILE
    if state_path.is_file():  # resuming: the new MLflow run gets the earlier rounds too
        for r in json.loads(state_path.read_text()).get("rounds", []):
            _log_round(tracker, Round(**r))

    def on_round(r: Round) -> None:
        _log_round(tracker, r)
        if verbose:
            m = r.metrics
            print(
                f"[{config.run_name()}] round {r.round:3d}  labels {r.labels:5d}  "
                f"accuracy {m.get('accuracy', math.nan):.4f}  nll {m.get('nll', math.nan):.3f}  "
                f"({sum(v for k, v in r.seconds.items() if k != 'cpu'):.1f} s)",
                flush=True,
            )
        if deadline is not None and time.monotonic() > deadline and r.acquired:
            raise OutOfTime(f"{config.run_name()}: stopped after round {r.round} (deadline); run again to resume")

    try:
        rounds = run_loop(
            lambda: _make_model(config, data),
            data.x,
            data.y,
            config.loop_config(),
            state_path,
            _train_step(config),
            evaluate=_evaluate_step(config, data),
            validation=data.validation,
            wrap_options=_wrap_options(config),
            on_round=on_round,
        )
    except BaseException as error:
        tracker.end("KILLED" if isinstance(error, (KeyboardInterrupt, OutOfTime)) else "FAILED")
        raise
    result = _result(config, rounds)
    with atomic_open(folder / RESULT_FILE) as f:
        json.dump(result.to_dict(), f)
    tracker.log_metrics(
        {
            "total_cpu_seconds": result.cpu_seconds,
            "learning_curve_area": learning_curve_area(result.labels, result.accuracy),
        }
    )
    tracker.log_artifact(folder / RESULT_FILE)
    tracker.end("FINISHED")
    return result


def _active_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """A Ray trial: one run, resumed if its folder has a state."""
    return run_active(ActiveConfig(**payload), verbose=False).to_dict()


def run_active_grid(
    configs: Sequence[ActiveConfig],
    *,
    ray: bool = False,
    ray_address: str | None = None,
    cpus_per_trial: float = 1.0,
    verbose: bool = True,
) -> list[ActiveResult]:
    """Run every config (heuristics x seeds, say), finished ones read back; with ``ray``, the
    pending ones run as Ray Tune trials on a local instance (or at ``ray_address``)."""
    configs = [replace(c, output_dir=str(Path(c.output_dir).resolve())) for c in configs]
    pending = [c for c in configs if load_active_result(c) is None]
    if pending and (ray or ray_address):
        from ..experiments import run_ray_trials

        records, errors = run_ray_trials(
            _active_trial,
            [c.to_dict() for c in pending],
            address=ray_address,
            cpus=cpus_per_trial,
            storage=Path(configs[0].output_dir) / "_ray",
            name="active",
        )
        for record in records:  # the driver's disk gets every result, even from remote workers
            cfg = ActiveConfig(**_config_arguments(record["config"]))
            if load_active_result(cfg) is None:
                cfg.folder().mkdir(parents=True, exist_ok=True)
                with atomic_open(cfg.folder() / RESULT_FILE) as f:
                    json.dump(record, f)
        if errors:
            raise BayesdropError(
                f"{len(errors)} of {len(pending)} Ray trials failed (finished runs are kept and "
                f"skipped when the grid is run again): {errors[0]}"
            )
    else:
        cache: dict[str, ActiveData] = {}
        for c in pending:
            data_key = json.dumps([c.dataset, c.data_seed, c.test_size, c.validation, c.data_dir])
            if data_key not in cache:
                cache[data_key] = load_active_data(c)
            started = time.perf_counter()
            run_active(c, verbose=verbose, data=cache[data_key])
            if verbose:
                print(f"finished {c.run_name()} in {time.perf_counter() - started:.0f} s", flush=True)
    results = [load_active_result(c) for c in configs]
    missing = [c.run_name() for c, r in zip(configs, results, strict=True) if r is None]
    if missing:
        raise BayesdropError(f"Runs without a result after the grid ran: {missing[:3]}")
    return [r for r in results if r is not None]


def group_label(config: dict, varying: Sequence[str]) -> str:
    """A curve's name: the heuristic, plus the other fields that vary across the compared runs."""
    parts = [config["heuristic"]]
    if "method" in varying or "rate" in varying:
        parts.append(config["method"] + (f" p={config['rate']:g}" if config.get("rate") is not None else ""))
    if "samples" in varying:
        parts.append(f"K={config['samples']}")
    if "acquire" in varying:
        parts.append(f"batch {config['acquire']}")
    return ", ".join(parts)


def summarize(results: Sequence[ActiveResult], thresholds: Sequence[float] = (0.9, 0.95)) -> dict[str, dict]:
    """Per curve (heuristic, and method / K / batch where they vary): labels needed to reach
    each threshold per seed (None where never reached) with median and quartiles over the seeds
    that reached it, the learning-curve area per seed, seeds and CPU time."""
    out: dict[str, dict] = {}
    for label, members in _curves(results).items():
        members = sorted(members, key=lambda r: r.config["seed"])
        entry: dict[str, Any] = {"seeds": [r.config["seed"] for r in members]}
        for t in thresholds:
            values = [r.labels_to(t) for r in members]
            key = f"labels_to_{round(t * 100):d}"
            entry[key] = values
            entry[key + "_quartiles"] = _quartiles([v for v in values if v is not None])
        entry["learning_curve_area"] = [learning_curve_area(r.labels, r.accuracy) for r in members]
        entry["final_accuracy"] = [r.accuracy[-1] for r in members]
        entry["final_labels"] = [r.labels[-1] for r in members]
        entry["cpu_seconds"] = [round(r.cpu_seconds, 1) for r in members]
        out[label] = entry
    return out


def _curves(results: Sequence[ActiveResult]) -> dict[str, list[ActiveResult]]:
    """The runs of each curve: grouped by heuristic, and by method / rate / K / acquisition size
    where those vary among ``results``."""
    varying = [
        name
        for name in ("method", "rate", "samples", "acquire")
        if len({json.dumps(r.config.get(name)) for r in results}) > 1
    ]
    groups: dict[str, list[ActiveResult]] = {}
    for r in results:
        groups.setdefault(group_label(r.config, varying), []).append(r)
    return groups


def first_picks(results: Sequence[ActiveResult], x: Tensor, y: Tensor, picks: int = 100) -> dict[str, dict]:
    """What each curve acquires first, pooled over its seeds: the mean intensity of its first
    ``picks`` acquired items (``x`` scaled to [0, 1] by its maximum) and their class shares,
    beside the same for the whole of ``x`` (key ``"all items"``). ``x``: ``(N, ...)``, ``y``: ``(N,)``."""
    scale = float(x.max()) or 1.0
    intensity = x.flatten(1).double().mean(1) / scale
    classes = int(y.max()) + 1

    def profile(index: Tensor) -> dict[str, Any]:
        share = torch.bincount(y[index].long(), minlength=classes).double() / len(index)
        return {"mean_intensity": float(intensity[index].mean()), "class_share": [round(float(v), 3) for v in share]}

    out = {"all items": profile(torch.arange(len(y)))}
    for label, members in _curves(results).items():
        index = [i for r in members for i in [j for step in r.acquired for j in step][:picks]]
        if index:
            out[label] = profile(torch.tensor(index))
    return out


def _quartiles(values: Sequence[float]) -> list[float] | None:
    """[q1, median, q3] (the median alone repeated for one value), None for none."""
    if not values:
        return None
    if len(values) == 1:
        return [float(values[0])] * 3
    q = statistics.quantiles(values, n=4, method="inclusive")
    return [float(q[0]), float(statistics.median(values)), float(q[2])]


def active_grid(raw: dict[str, Any]) -> list[ActiveConfig]:
    """Configs from a mapping (a YAML file's or the CLI's): list values are axes (e.g.
    ``heuristic: [bald, random]``, ``seed: [0, 1, 2]``), every combination one run, the seed
    varying slowest (a partial grid then covers every heuristic)."""
    from ..experiments import settings_grid

    return settings_grid(ActiveConfig, raw, value_lists=frozenset({"dropconnect_layers"}), major="seed")


def grid_report(results: Sequence[ActiveResult], thresholds: Sequence[float] = (0.9, 0.95)) -> str:
    """The labels-to-accuracy table (median [q1, q3] over seeds), learning-curve area and CPU
    time per curve, as Markdown."""
    summary = summarize(results, thresholds)
    head = [
        "curve",
        "seeds",
        *(f"labels to {t:.0%}" for t in thresholds),
        "curve area",
        "final accuracy",
        "CPU s / run",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, e in summary.items():
        cells = [label, str(len(e["seeds"]))]
        for t in thresholds:
            key = f"labels_to_{round(t * 100):d}"
            q, reached = e[key + "_quartiles"], sum(v is not None for v in e[key])
            cells.append(
                "never"
                if q is None
                else f"{q[1]:.0f} [{q[0]:.0f}, {q[2]:.0f}]"
                + ("" if reached == len(e[key]) else f" ({reached}/{len(e[key])})")
            )
        cells.append(f"{statistics.fmean(e['learning_curve_area']):.4f}")
        cells.append(f"{statistics.fmean(e['final_accuracy']):.4f}")
        cells.append(f"{statistics.fmean(e['cpu_seconds']):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
