"""One experiment end to end: data, model, wrapping, training, evaluation, charts, tracking."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import TensorDataset

from .._errors import BayesdropError
from ..training import (
    EpochStats,
    History,
    evaluate_model,
    fit,
    load_checkpoint,
    network,
    resolve_device,
    save_checkpoint,
)
from ..training._utils import seeded
from ._config import ExperimentConfig
from ._lock import lock_run_folder
from ._tracking import Tracker, make_tracker, write_json_atomic

__all__ = [
    "RunResult",
    "run_experiment",
    "run_dir",
    "load_result",
    "build_model",
    "load_data",
    "format_metrics",
    "load_trained",
    "wrap_model",
]

RESULT_FILE = "result.json"


@dataclass
class RunResult:
    """What a finished run left behind.

    Attributes:
        key: the run key (:meth:`ExperimentConfig.key`).
        config: the config as a dict.
        metrics: the final metrics (``bayesdrop.metrics.evaluate``), plus ``train_seconds``
            and ``eval_seconds``.
        run_dir: folder of the run (model, metrics, charts, ``result.json``).
        charts: paths of the charts drawn.
        mlflow_run_id: the MLflow run, or None when tracking was off.
        history: per-epoch training statistics (dicts).
        reused_training: True when the trained model came from an earlier run with the same
            training settings (e.g. the same model evaluated with another number of samples).
    """

    key: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    run_dir: str
    charts: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    reused_training: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return dict(self.__dict__)


def run_dir(cfg: ExperimentConfig) -> Path:
    """Folder of a run: ``<output_dir>/<slug>-<key>``."""
    return Path(cfg.output_dir) / f"{cfg.slug()}-{cfg.key()}"


def load_result(cfg: ExperimentConfig) -> RunResult | None:
    """The completion record of a run, or None if the run has not finished."""
    path = run_dir(cfg) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return RunResult(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None  # unreadable record: the run is redone


# ------------------------------------------------------------------------------ components
def load_data(cfg: ExperimentConfig) -> Any:
    """``bayesdrop.data.load_dataset`` for the config (test set cut to ``test_size``)."""
    from .. import data

    splits = data.load_dataset(
        cfg.dataset,
        cfg.data_dir,
        val_size=cfg.val_fraction,
        max_train=cfg.train_size,
        seed=cfg.seed,
        split=cfg.split or 0,
    )
    if splits.x_test is None or splits.y_test is None:
        raise BayesdropError(
            f"Data set {cfg.dataset!r} has no labelled test split to evaluate on; choose another `dataset`."
        )
    return splits


def _ood_data(cfg: ExperimentConfig, n_test: int) -> TensorDataset | None:
    from .. import data

    other = cfg.ood_dataset
    if other == "auto":
        other = {"fashion-mnist": "mnist", "mnist": "fashion-mnist"}.get(cfg.dataset)
    if other is None:
        return None
    if {cfg.dataset, other} != {"fashion-mnist", "mnist"}:
        raise BayesdropError(
            f"Expected argument `ood_dataset` to be 'mnist' for dataset 'fashion-mnist' (or the "
            f"reverse), 'auto' or null, but got {other!r} for dataset {cfg.dataset!r}."
        )
    roots = {"fashion_root": cfg.data_dir} if cfg.dataset == "fashion-mnist" else {"mnist_root": cfg.data_dir}
    try:
        pair = data.load_ood_pair(cfg.dataset, **roots, n=min(n_test, 10_000), seed=cfg.seed)
    except BayesdropError:
        if cfg.ood_dataset == "auto":  # optional: skip OOD metrics when the data is absent
            return None
        raise
    return TensorDataset(pair.x_out, pair.y_out)


def build_model(cfg: ExperimentConfig, splits: Any) -> nn.Module:
    """The unwrapped network for the config and its data (``bayesdrop.data.DatasetSplits``).

    Dropout layers at ``rate`` for methods dropout and gaussian (whose noise replaces them),
    none (rate 0) for DropConnect (its weight masks are the noise), and Concrete dropout layers
    for method concrete, with Gal et al.'s regularisers ``l^2 / (tau N)`` and ``2 / (tau N)``.
    A regression net is wrapped in ``models.Standardized`` (the training split's statistics), so
    it learns on standardised data and answers in the targets' units.
    """
    from .. import models

    p = 0.0 if cfg.method == "dropconnect" else cfg.rate
    n_train = len(splits.x_train)
    if splits.task == "regression":
        net = models.create_model(
            cfg.model,
            in_features=int(math.prod(splits.input_shape)),
            out_features=int(math.prod(splits.y_train.shape[1:])) or 1,
            dropout=p,
            **(cfg.model_options or {}),
        )
        if cfg.method == "concrete":
            net = _to_concrete(net, cfg, n_train)
        return models.Standardized(net, splits.x_train.flatten(1), splits.y_train)
    model = models.create_model(
        cfg.model,
        in_channels=int(splits.input_shape[0]),
        input_size=int(splits.input_shape[-1]),
        num_classes=splits.num_classes,
        dropout=p,
        **(cfg.model_options or {}),
    )
    if cfg.method == "concrete":
        model = _to_concrete(model, cfg, n_train)
    return model


def _to_concrete(model: nn.Module, cfg: ExperimentConfig, n: int) -> nn.Module:
    """Replace every ``Dropout -> Linear/Conv`` pair by ``ConcreteDropout(Linear/Conv)``."""
    import bayesdrop as bd

    tau = cfg.tau or 1.0
    length_scale = cfg.length_scale or 1e-2
    replaced = 0
    for parent in model.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for a, b in zip(names, names[1:], strict=False):
            first, second = parent._modules[a], parent._modules[b]
            if isinstance(first, nn.modules.dropout._DropoutNd) and isinstance(
                second, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
            ):
                parent._modules[a] = nn.Identity()
                parent._modules[b] = bd.ConcreteDropout(
                    second,
                    init_p=cfg.rate,
                    weight_regularizer=length_scale**2 / (tau * n),
                    dropout_regularizer=2 / (tau * n),
                )
                replaced += 1
    if replaced == 0:
        raise BayesdropError(
            f"Model {cfg.model!r} has no Dropout -> Linear/Conv pair in an nn.Sequential to turn "
            "into Concrete dropout; choose another `model` or `method`."
        )
    return model


def wrap_model(model: nn.Module, cfg: ExperimentConfig, task: str) -> nn.Module:
    """``bd.wrap`` with the config's method (Concrete dropout is sampled as dropout).

    Regression: ``output="mean_var"`` for a net with a variance head, else ``"mean"`` with the
    model precision ``cfg.tau``.
    """
    import bayesdrop as bd

    options: dict[str, Any] = {"task": task}
    if task == "regression":
        if (cfg.model_options or {}).get("heteroscedastic"):
            options["output"] = "mean_var"
        else:
            options |= {"output": "mean", "tau": cfg.tau}
    if cfg.method in ("dropout", "concrete"):
        return bd.wrap(model, method="dropout", **options)
    return bd.wrap(model, method=cfg.method, p=cfg.rate, **options)


def format_metrics(metrics: dict[str, Any], title: str = "") -> str:
    """The metrics as a text table (``bayesdrop.metrics``' formatter)."""
    from .. import metrics as _metrics

    table = _metrics.format_table(metrics)
    return f"{title}\n{table}" if title else table


def load_trained(folder: str | Path, device: str | None = None) -> tuple[ExperimentConfig, Any, Any]:
    """Rebuild a finished run from its folder: ``(config, wrapped model, data splits)``.

    Args:
        folder: a run folder (holding ``config.json`` and ``model.pt``).
        device: overrides the config's device.
    """
    folder = Path(folder)
    if not (folder / "model.pt").is_file() or not (folder / "config.json").is_file():
        raise BayesdropError(
            f"Expected argument `run_dir` to be a finished run folder with config.json and "
            f"model.pt, but got {str(folder)!r}."
        )
    raw = json.loads((folder / "config.json").read_text())
    if device is not None:
        raw["device"] = device
    cfg = ExperimentConfig(**raw)
    splits = load_data(cfg)
    model = build_model(cfg, splits)
    mc = wrap_model(model, cfg, splits.task)
    dev = resolve_device(cfg.device)
    state = load_checkpoint(folder / "model.pt", map_location=dev)
    network(mc).load_state_dict(state["model"])
    if state.get("tau_estimated") is not None:
        mc.tau = state["tau_estimated"]
    mc.to(dev)
    return cfg, mc, splits


def _estimate_tau(mc: Any, cfg: ExperimentConfig, splits: Any, say: Any) -> float | None:
    """For a point-output regression model without a configured tau: fit it on the validation split."""
    if splits.task != "regression" or getattr(mc, "output", None) != "mean" or cfg.tau is not None:
        return None
    if splits.x_val is None or len(splits.x_val) < 2:
        raise BayesdropError(
            "Expected argument `tau` (or a validation split, val_fraction > 0, to estimate it on) for a "
            f"point-output regression model on {cfg.dataset!r}, but got tau=None and no validation split."
        )
    tau = mc.fit_tau(splits.x_val, splits.y_val, samples=max(cfg.samples, 2), seed=cfg.seed)
    say(f"[bayesdrop] tau estimated on the {len(splits.x_val)} validation rows: {tau:.4g}")
    return tau


# ------------------------------------------------------------------------------------ run
def _train_paths(cfg: ExperimentConfig) -> tuple[Path, Path]:
    base = Path(cfg.output_dir) / "_trained" / cfg.train_key()
    return base / "checkpoint.pt", base / "model.pt"


def run_experiment(cfg: ExperimentConfig, *, verbose: bool = True, tracker: Tracker | None = None) -> RunResult:
    """Run one experiment: train (or reuse a trained model), evaluate, chart, track, record.

    Training checkpoints after every epoch, so a killed run resumes where it stopped; runs
    that differ only in evaluation settings (``samples``, ...) share one trained model. The
    completion record ``<run_dir>/result.json`` is written atomically last: a run without it
    is not finished and is redone by :func:`run_sweep`.

    Args:
        cfg: the experiment.
        verbose: print progress and the metrics table.
        tracker: where to log (default: MLflow per ``cfg.tracking``).

    Returns:
        The :class:`RunResult`.
    """
    t_start = time.perf_counter()
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    say = print if verbose else (lambda *a, **k: None)
    lock = lock_run_folder(out)
    try:
        tracker = tracker or make_tracker(cfg.tracking, cfg.tracking_uri, cfg.experiment_name)
        tracker.start(
            cfg.slug(), cfg.params(), {"bayesdrop.run_key": cfg.key(), "bayesdrop.train_key": cfg.train_key()}
        )
        status = "FAILED"
        try:
            result = _run(cfg, out, tracker, say, t_start)
            status = "FINISHED"
            return result
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            tracker.end(status)
    finally:
        lock.unlink(missing_ok=True)


def _run(cfg: ExperimentConfig, out: Path, tracker: Tracker, say: Any, t_start: float) -> RunResult:
    # Seeded from cfg.seed as seed_everything would (initialisation, noise), but scoped: the
    # caller's global random state (torch, Python, NumPy) is put back when the run ends.
    with seeded(cfg.seed, resolve_device(cfg.device), python_and_numpy=True):
        return _run_seeded(cfg, out, tracker, say, t_start)


def _plain(obj: Any) -> Any:
    """``obj`` as JSON-like plain data (what a checkpoint may hold)."""
    return json.loads(json.dumps(obj, default=str))


def _run_seeded(cfg: ExperimentConfig, out: Path, tracker: Tracker, say: Any, t_start: float) -> RunResult:
    import bayesdrop

    device = resolve_device(cfg.device)
    splits = load_data(cfg)
    x_test, y_test = splits.x_test, splits.y_test
    if cfg.test_size is not None:
        x_test, y_test = x_test[: cfg.test_size], y_test[: cfg.test_size]
    train = TensorDataset(splits.x_train, splits.y_train)
    val = TensorDataset(splits.x_val, splits.y_val) if splits.x_val is not None else None
    test = TensorDataset(x_test, y_test)
    say(
        f"[bayesdrop] {cfg.slug()}: {splits.name} train {len(train)}, val "
        f"{0 if val is None else len(val)}, test {len(test)}; device {device}"
    )

    model = build_model(cfg, splits)
    mc = wrap_model(model, cfg, splits.task)
    ckpt_path, model_path = _train_paths(cfg)
    reused = model_path.is_file()
    t0 = time.perf_counter()
    if reused:
        state = load_checkpoint(model_path, map_location=device)
        network(mc).load_state_dict(state["model"])
        mc.to(device)
        history = [EpochStats(**e) for e in state["history"]]
        say(f"[bayesdrop] reusing the model trained with the same settings ({model_path})")
    else:

        def on_epoch(e: EpochStats) -> None:
            tracker.log_metrics(e.metrics(), step=e.epoch)
            val_txt = ""
            if e.val_loss is not None:
                val_txt = f", val {'NLL' if splits.task == 'classification' else 'MSE'} {e.val_loss:.4f}"
            if e.val_accuracy is not None:
                val_txt += f", val acc {e.val_accuracy:.4f}"
            say(f"[bayesdrop] epoch {e.epoch}/{cfg.epochs}: train loss {e.train_loss:.4f}{val_txt} ({e.seconds:.1f}s)")

        hist: History = fit(
            mc,
            train,
            task=splits.task,
            val_data=val,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer=cfg.optimizer,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            length_scale=None if cfg.method == "concrete" else cfg.length_scale,
            tau=cfg.tau,
            p=cfg.rate,
            schedule=cfg.schedule,
            patience=cfg.patience,
            val_samples=cfg.val_samples,
            checkpoint=ckpt_path,
            device=device,
            seed=cfg.seed,
            progress=cfg.progress,
            callback=on_epoch,
        )
        history = hist.epochs
        save_checkpoint(
            model_path,
            {
                "model": network(mc).state_dict(),
                "history": [asdict(e) for e in history],
                "config": _plain(cfg.to_dict()),
                "best_epoch": hist.best_epoch,
                "bayesdrop_version": bayesdrop.__version__,
            },
        )
    train_seconds = time.perf_counter() - t0
    if reused:  # the shared model's training curve, logged to this run too (not timed as training)
        for e in history:
            tracker.log_metrics(e.metrics(), step=e.epoch)

    t1 = time.perf_counter()
    estimated_tau = _estimate_tau(mc, cfg, splits, say)
    ood = _ood_data(cfg, len(test))
    if ood is None and cfg.ood_dataset == "auto" and cfg.dataset in ("fashion-mnist", "mnist"):
        say(
            "[bayesdrop] OOD metrics skipped: the other data set's test images were not found "
            "(put MNIST / Fashion-MNIST IDX files in $BAYESDROP_DATA)"
        )
    ev = evaluate_model(mc, test, samples=cfg.samples, seed=cfg.seed, ood_data=ood, progress=cfg.progress)
    eval_seconds = time.perf_counter() - t1
    metrics = dict(ev.metrics)
    metrics["train_seconds"] = round(train_seconds, 3)
    metrics["eval_seconds"] = round(eval_seconds, 3)
    if estimated_tau is not None:
        metrics["tau_estimated"] = estimated_tau
    if cfg.method == "concrete":
        rates = [float(m.p.detach()) for m in mc.modules() if isinstance(m, bayesdrop.ConcreteDropout)]
        metrics["concrete_p_mean"] = sum(rates) / len(rates)
    table = format_metrics(ev.metrics, title=f"{cfg.slug()}  (T = {cfg.samples} MC samples)")
    say(table)
    tracker.log_metrics(metrics)
    (out / "metrics.txt").write_text(table + "\n")
    write_json_atomic(out / "metrics.json", metrics)
    write_json_atomic(out / "config.json", cfg.to_dict())
    tracker.log_artifact(out / "metrics.txt")
    tracker.log_artifact(out / "metrics.json")
    tracker.log_artifact(out / "config.json")
    save_checkpoint(
        out / "model.pt",
        {
            "model": network(mc).state_dict(),
            "config": _plain(cfg.to_dict()),
            "history": [asdict(e) for e in history],
            "tau_estimated": None if estimated_tau is None else float(estimated_tau),
            "bayesdrop_version": bayesdrop.__version__,
        },
    )
    tracker.log_artifact(out / "model.pt", "model")

    charts: list[str] = []
    if cfg.charts:
        from ._charts_run import draw_run_charts

        charts = [str(p) for p in draw_run_charts(mc, cfg, ev, x_test, y_test, out)]
        for p in charts:
            tracker.log_artifact(p, "charts")
        say(f"[bayesdrop] charts: {', '.join(charts)}")
    result = RunResult(
        key=cfg.key(),
        config=cfg.to_dict(),
        metrics=metrics,
        run_dir=str(out),
        charts=charts,
        mlflow_run_id=tracker.run_id,
        history=[e.__dict__ for e in history],
        reused_training=reused,
    )
    write_json_atomic(out / RESULT_FILE, result.to_dict())
    say(f"[bayesdrop] done in {time.perf_counter() - t_start:.1f}s -> {out}")
    return result
