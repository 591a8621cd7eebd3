"""Sweeps: the grid of a config's lists, run locally or as Ray Tune trials, resumable."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import BayesdropError, expected
from .._io import atomic_open
from ._config import ExperimentConfig
from ._ray import run_ray_trials
from ._run import RESULT_FILE, RunResult, load_result, run_dir, run_experiment
from ._tracking import ensure_experiment, make_tracker, resolve_tracking_uri, write_json_atomic

__all__ = ["SweepResult", "run_sweep", "sweep_table", "draw_sweep_charts"]

# columns of the sweep summary, when present
_SUMMARY = (
    "accuracy",
    "nll",
    "brier",
    "ece",
    "aurc",
    "mutual_information",
    "ood_auroc_entropy",
    "ood_auroc_mutual_information",
    "rmse",
    "mc_log_likelihood",
    "gaussian_nll",
    "crps",
    "picp_95",
    "train_seconds",
    "eval_seconds",
)


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`.

    Attributes:
        results: one :class:`RunResult` per config, in grid order.
        skipped: keys of the runs found finished and not redone.
        charts: sweep charts (metric vs rate, metric vs samples).
        summary_path: CSV with one row per run.
    """

    results: list[RunResult]
    skipped: list[str] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    summary_path: str | None = None


def _absolute(cfg: ExperimentConfig) -> ExperimentConfig:
    """Paths made absolute, so a run does the same from any working folder (Ray trials)."""
    changes: dict[str, Any] = {
        "output_dir": str(Path(cfg.output_dir).resolve()),
        "tracking_uri": resolve_tracking_uri(cfg.tracking_uri),
    }
    if cfg.data_dir is not None:
        changes["data_dir"] = str(Path(cfg.data_dir).resolve())
    return replace(cfg, **changes)


def _row(r: RunResult) -> dict[str, Any]:
    c = r.config
    row = {
        "method": c["method"],
        "rate": c["rate"],
        "samples": c["samples"],
        "model": c["model"],
        "dataset": c["dataset"],
        "seed": c["seed"],
    }
    row.update({k: r.metrics[k] for k in _SUMMARY if k in r.metrics})
    row["key"] = r.key
    return row


def sweep_table(results: Sequence[RunResult]) -> str:
    """A fixed-width text table, one row per run (the swept parameters and main metrics)."""
    rows = [_row(r) for r in results]
    if not rows:
        return "(no runs)"
    cols = list(dict.fromkeys(k for row in rows for k in row))

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) and not isinstance(v, bool) and (abs(v) < 1e4) else str(v)

    cells = [[fmt(row.get(c, "")) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _write_summary(results: Sequence[RunResult], path: Path) -> Path:
    rows = [_row(r) for r in results]
    cols = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_open(path, "w") as fh:
        fh.write(buf.getvalue())
    return path


def draw_sweep_charts(
    results: Sequence[RunResult], out: str | Path, prefix: str = "sweep", metrics: Sequence[str] | None = None
) -> list[Path]:
    """Metric vs dropout rate (per method, at the largest T) and vs samples (per method and
    rate), when the sweep varies those. Files: ``<prefix>_vs-rate_<...>.png``, ....

    Args:
        results: the runs' results.
        out: folder for the PNGs.
        prefix: file name prefix.
        metrics: metric names to draw (default: :data:`charts.PREFERRED_METRICS` present).
    """
    from .charts import plot_metric_vs

    rows = [{**r.config, **r.metrics} for r in results]
    if not rows:
        return []
    out = Path(out)
    rates = sorted({r["rate"] for r in rows})
    samples = sorted({r["samples"] for r in rows})
    shared = [k for k in ("dataset", "model") if len({r[k] for r in rows}) == 1]
    fixed_txt = "_".join(f"{k}-{rows[0][k]}" for k in shared)  # for file names
    what = ", ".join(str(rows[0][k]) for k in shared)  # for titles
    paths = []
    if len(rates) > 1:
        t_max = samples[-1]
        paths.append(
            plot_metric_vs(
                rows,
                "rate",
                out / f"{prefix}_vs-rate_{fixed_txt}_T{t_max}.png",
                fixed={"samples": t_max},
                group=("method",),
                metrics=metrics,
                title=f"Metrics vs dropout rate ({what}{', ' if what else ''}T={t_max})",
            )
        )
    if len(samples) > 1:
        group = ("method", "rate") if len(rates) > 1 else ("method",)
        paths.append(
            plot_metric_vs(
                rows,
                "samples",
                out / f"{prefix}_vs-samples_{fixed_txt}.png",
                group=group,
                metrics=metrics,
                title=f"Metrics vs number of MC samples{f' ({what})' if what else ''}",
            )
        )
    return paths


def _trial(payload: dict[str, Any]) -> dict[str, Any]:
    """Ray Tune function trainable: the runs that share one trained model, one after the other
    (the first trains it, the others reuse it); returns their completion records."""
    records = []
    for raw in payload["experiments"]:
        cfg = ExperimentConfig(**raw)
        result = load_result(cfg) or run_experiment(cfg, verbose=False)
        records.append(result.to_dict())
    return {"n_runs": len(records), "records": records}


def _run_ray(
    pending: list[ExperimentConfig], *, address: str | None, cpus: float, gpus: float, storage: Path
) -> list[RunResult]:
    # one trial per trained model: runs differing only in evaluation (samples) share it
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in pending:
        groups.setdefault(c.train_key(), []).append(c.to_dict())
    records, errors = run_ray_trials(
        _trial,
        [{"experiments": group} for group in groups.values()],
        address=address,
        cpus=cpus,
        gpus=gpus,
        storage=storage,
        name="sweep",
    )
    results = [RunResult(**r) for record in records for r in record["records"]]
    # record on the driver too (a remote worker's disk is not ours)
    for r in results:
        cfg = ExperimentConfig(**r.config)
        if load_result(cfg) is None:
            write_json_atomic(run_dir(cfg) / RESULT_FILE, r.to_dict())
    if errors:
        raise BayesdropError(
            f"{len(errors)} of {len(groups)} Ray trials failed (the finished runs are recorded "
            f"and skipped when the sweep is run again): {errors[0]}"
        )
    return results


def run_sweep(
    configs: Sequence[ExperimentConfig],
    *,
    ray: bool = False,
    ray_address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    charts: bool = True,
    verbose: bool = True,
    on_result: Callable[[RunResult], None] | None = None,
) -> SweepResult:
    """Run every config of a sweep, skipping the finished ones, locally or on Ray Tune.

    A run counts as finished when its completion record (``<run_dir>/result.json``, written
    atomically at the very end of the run) exists; an interrupted sweep is resumed by running
    it again: finished runs are skipped, an interrupted run continues from its last epoch
    checkpoint.

    Args:
        configs: the grid (:func:`expand_grid`); all must share ``output_dir``.
        ray: run on Ray Tune, one trial per trained model (the pending runs that differ only
            in evaluation settings such as ``samples`` share a trial), on a local Ray instance.
        ray_address: address of a running Ray cluster (implies ``ray``), e.g. ``"auto"`` or
            ``"ray://head:10001"``.
        cpus_per_trial, gpus_per_trial: resources of each trial.
        charts: draw the sweep charts (metric vs rate / samples) at the end.
        verbose: print progress and tables.
        on_result: called with each run's result as it finishes (local runs).

    Returns:
        A :class:`SweepResult` with every run's result in grid order.
    """
    if not configs:
        raise expected("configs", "a non-empty list of ExperimentConfig", list(configs))
    if len({c.output_dir for c in configs}) != 1:
        raise expected("configs", "configs sharing one `output_dir`", sorted({c.output_dir for c in configs}))
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise expected(
            "cpus_per_trial", "a positive number (and gpus_per_trial >= 0)", (cpus_per_trial, gpus_per_trial)
        )
    say = print if verbose else (lambda *a, **k: None)
    configs = [_absolute(c) for c in configs]
    out = Path(configs[0].output_dir)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, RunResult] = {}
    for c in configs:
        r = load_result(c)
        if r is not None:
            done[c.key()] = r
    skipped = list(done)
    pending = [c for c in configs if c.key() not in done]
    say(
        f"[bayesdrop] sweep: {len(configs)} runs, {len(skipped)} already finished, "
        f"{len(pending)} to run{' on Ray' if (ray or ray_address) and pending else ''}"
    )
    if pending:
        for c in {(c.tracking_uri, c.experiment_name) for c in pending if c.tracking}:
            ensure_experiment(*c)
    if pending and (ray or ray_address):
        for r in _run_ray(pending, address=ray_address, cpus=cpus_per_trial, gpus=gpus_per_trial, storage=out / "_ray"):
            done[r.key] = r
    else:
        for i, c in enumerate(pending, 1):
            say(f"[bayesdrop] run {i}/{len(pending)}: {c.slug()}")
            r = run_experiment(c, verbose=verbose)
            done[r.key] = r
            if on_result is not None:
                on_result(r)
    results = [done[c.key()] for c in configs]
    summary = _write_summary(results, out / "sweep_summary.csv")
    chart_paths = [str(p) for p in draw_sweep_charts(results, out)] if charts else []
    say(sweep_table(results))
    if chart_paths:
        say(f"[bayesdrop] sweep charts: {', '.join(chart_paths)}")
    first = configs[0]
    if pending and first.tracking:  # the sweep's own MLflow run: summary table and charts
        tracker = make_tracker(True, first.tracking_uri, first.experiment_name)
        axes = {
            k: sorted({str(getattr(c, k)) for c in configs})
            for k in first.to_dict()
            if len({str(getattr(c, k)) for c in configs}) > 1
        }
        tracker.start(
            f"sweep {out.name}",
            {"n_runs": len(configs), **{f"sweep.{k}": ",".join(v) for k, v in axes.items()}},
            {"bayesdrop.sweep": str(out)},
        )
        tracker.log_artifact(summary)
        for p in chart_paths:
            tracker.log_artifact(p, "charts")
        tracker.end("FINISHED")
    return SweepResult(results=results, skipped=skipped, charts=chart_paths, summary_path=str(summary))
