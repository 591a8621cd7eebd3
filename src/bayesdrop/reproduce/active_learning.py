"""Bayesian active learning reproductions (Gal, Islam & Ghahramani 2017; Kirsch et al. 2019).

Experiments (runs share folders where their configs agree, e.g. BALD of ``gal_mnist`` and of
``batchbald_mnist``):

- ``gal_mnist``: the Gal et al. protocol on the 10,000-image MNIST test set (2,000 held out for
  testing, 100 for validation, 7,900 in the pool): BALD, Var Ratios, Max Entropy, Mean STD and
  Random, 3 seeds, 20 -> 1,000 labels, 10 per round from a random 2,000-item subset, K = 100.
- ``batchbald_mnist``: BatchBALD vs BALD at acquisition size 10, same data and protocol.
- ``fashion``: Fashion-MNIST (pool: the 60,000 training images; 2,000 test images):
  BALD, BatchBALD, EPIG, Random, 20 -> 500 labels.
- ``fashion_dropconnect``: BALD with MC dropout vs MC DropConnect (p = 0.5 on the dense
  layers) at K = 20 and K = 100 on Fashion-MNIST.

Every run writes its state after each round, so ``run`` can be stopped at any time (``--hours``
stops cleanly after a round) and resumed. Processes share the pending runs: each takes the next
one no other live process holds (a ``.lock`` in its folder); ``--worker i/n`` splits them statically
instead. ``report`` writes ``docs/results/active_learning.{md,json}`` and the charts from the
finished runs, listing the unfinished ones.

Run: ``python -m bayesdrop.reproduce.active_learning run --hours 2`` (one process per core,
``OMP_NUM_THREADS=1``), then ``python -m bayesdrop.reproduce.active_learning report``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..active import (
    ActiveConfig,
    ActiveResult,
    OutOfTime,
    first_picks,
    grid_report,
    load_active_data,
    load_active_result,
    plot_acquired,
    plot_learning_curves,
    run_active,
    summarize,
)
from ..experiments import RunFolderInUse
from ._common import _REPO, dataset_dir, machine_description, write_text_atomic

__all__ = ["EXPERIMENTS", "Experiment", "experiment_configs", "run_pending", "write_report"]

RUNS = _REPO / "docs" / "results" / "active_learning_runs"
RESULTS = _REPO / "docs" / "results"


@dataclass(frozen=True)
class Experiment:
    title: str
    base: ActiveConfig
    variants: tuple[dict, ...]
    seeds: tuple[int, ...]
    thresholds: tuple[float, ...]
    published: str = ""


def _mnist(**changes: Any) -> ActiveConfig:
    return ActiveConfig(dataset="mnist-10k", output_dir=str(RUNS), **changes)


def _fashion(**changes: Any) -> ActiveConfig:
    return ActiveConfig(dataset="fashion-mnist", budget=500, output_dir=str(RUNS), **changes)


EXPERIMENTS: dict[str, Experiment] = {
    "gal_mnist": Experiment(
        "Gal et al. 2017 protocol, MNIST test set",
        _mnist(),
        tuple({"heuristic": h} for h in ("bald", "variation_ratio", "max_entropy", "mean_std", "random")),
        (0, 1, 2),
        (0.90, 0.95),
        "Gal et al. 2017, Table 1 (full MNIST, labels to 10% / 5% test error): BALD 145 / 335, "
        "Var Ratios 120 / 295, Max Entropy 165 / 355, Random 255 / 835.",
    ),
    "batchbald_mnist": Experiment(
        "BatchBALD vs BALD, acquisition size 10, MNIST test set",
        _mnist(),
        ({"heuristic": "batchbald"}, {"heuristic": "bald"}),
        (0, 1, 2),
        (0.90, 0.95),
        "Kirsch et al. 2019 (full MNIST, median labels to 90% / 95%): BatchBALD 90 / 200, "
        "BALD (batch 10) 120 / 250, BALD (batch 1) 96 / 206.",
    ),
    "fashion": Experiment(
        "Fashion-MNIST, Gal protocol to 500 labels",
        _fashion(),
        tuple({"heuristic": h} for h in ("bald", "batchbald", "epig", "random")),
        (0, 1, 2),
        (0.75, 0.80),
        "No published MC-dropout numbers exist for this protocol: these are the reference.",
    ),
    "fashion_dropconnect": Experiment(
        "Fashion-MNIST, BALD with MC dropout vs MC DropConnect",
        _fashion(heuristic="bald"),
        (
            {"samples": 20},
            {"samples": 100},
            {"method": "dropconnect", "rate": 0.5, "samples": 20},
            {"method": "dropconnect", "rate": 0.5, "samples": 100},
        ),
        (0, 1, 2),
        (0.75, 0.80),
        "baal reports MC DropConnect ahead of MC dropout above about 80 samples.",
    ),
}


def experiment_configs(name: str, data_dir: str | None = None) -> list[ActiveConfig]:
    """The runs of experiment ``name``, seed-major (all variants of seed 0 first)."""
    exp = EXPERIMENTS[name]
    return [replace(exp.base, seed=s, data_dir=data_dir, **v) for s in exp.seeds for v in exp.variants]


def _all_configs(names: Sequence[str]) -> list[ActiveConfig]:
    seen: dict[str, ActiveConfig] = {}
    for name in names:
        for c in experiment_configs(name):
            c = replace(c, data_dir=dataset_dir(c.dataset))
            seen.setdefault(c.run_name(), c)
    by_seed = sorted(seen.values(), key=lambda c: (c.seed, list(EXPERIMENTS).index(_first_experiment(c, names))))
    return by_seed


def _first_experiment(config: ActiveConfig, names: Sequence[str]) -> str:
    for name in names:
        if any(c.run_name() == config.run_name() for c in experiment_configs(name)):
            return name
    return names[0]


def run_pending(names: Sequence[str], hours: float | None = None, worker: tuple[int, int] = (0, 1)) -> None:
    """Run (or resume) the unfinished runs of the experiments ``names``; this worker takes
    every ``worker[1]``-th of them starting at ``worker[0]``, skipping runs another live process
    holds (so processes started with the same ``worker`` share the runs as they go)."""
    deadline = time.monotonic() + hours * 3600 if hours else None
    pending = [c for c in _all_configs(names) if load_active_result(c) is None]
    mine = pending[worker[0] :: worker[1]]
    print(f"{len(pending)} runs pending, this worker takes {len(mine)}", flush=True)
    cache: dict[str, Any] = {}
    for c in mine:
        if deadline is not None and time.monotonic() > deadline:
            break
        if c.dataset not in cache:
            cache[c.dataset] = load_active_data(c)
        try:
            run_active(c, data=cache[c.dataset], deadline=deadline)
        except RunFolderInUse:
            print(f"{c.run_name()}: run by another process, skipped", flush=True)
        except OutOfTime as stop:
            print(stop, flush=True)
            break


def _partial(config: ActiveConfig) -> dict[str, Any] | None:
    path = config.folder() / "state.json"
    if not path.is_file():
        return None
    rounds = json.loads(path.read_text())["rounds"]
    return {
        "run": config.run_name(),
        "rounds": len(rounds),
        "labels": rounds[-1]["labels"] if rounds else None,
        "cpu_seconds": round(sum(r["seconds"].get("cpu", 0.0) for r in rounds), 1),
    }


def write_report(names: Sequence[str] = tuple(EXPERIMENTS), out: Path = RESULTS) -> dict[str, Any]:
    """Summaries, tables and charts of the finished runs; the JSON and the Markdown page."""
    report: dict[str, Any] = {"tables": {}, "experiments": {}, "machine": machine_description()}
    lines = [
        "# Bayesian active learning: reproductions",
        "",
        "Built by `python -m bayesdrop.reproduce.active_learning run` (resumable; see the module's "
        "docstring) and `python -m bayesdrop.reproduce.active_learning report`. Runs: "
        "`docs/results/active_learning_runs/<run>/` (state after every round, result when finished).",
        "",
        f"Machine: {machine_description()}; one process per core, `OMP_NUM_THREADS=1`.",
        "",
    ]
    total_cpu = 0.0
    counted: set[str] = set()
    for name in names:
        exp = EXPERIMENTS[name]
        configs = experiment_configs(name)
        results: list[ActiveResult] = [r for r in (load_active_result(c) for c in configs) if r is not None]
        unfinished = [p for c in configs if load_active_result(c) is None for p in [_partial(c)] if p is not None]
        missing = [c.run_name() for c in configs if load_active_result(c) is None and _partial(c) is None]
        for r in results:
            if r.folder not in counted:
                counted.add(r.folder)
                total_cpu += r.cpu_seconds
        # every table has labels_to_90 / labels_to_95 (null where a seed never got there), beside
        # the experiment's own thresholds
        summary = summarize(results, sorted({*exp.thresholds, 0.9, 0.95})) if results else {}
        report["tables"][name] = {
            label: {k: v for k, v in entry.items() if k.startswith("labels_to_") and not k.endswith("quartiles")}
            for label, entry in summary.items()
        }
        charts = []
        if results:
            curve = out / f"active_learning_{name}.png"
            plot_learning_curves(results, thresholds=exp.thresholds, title=exp.title, path=curve)
            charts.append(curve.name)
        report["experiments"][name] = {
            "title": exp.title,
            "protocol": {k: v for k, v in exp.base.protocol().items() if k not in ("seed", "heuristic")},
            "variants": list(exp.variants),
            "seeds": list(exp.seeds),
            "thresholds": list(exp.thresholds),
            "summary": summary,
            "finished_runs": len(results),
            "planned_runs": len(configs),
            "unfinished": unfinished,
            "not_started": missing,
            "published": exp.published,
            "charts": charts,
        }
        lines += [f"## {name}: {exp.title}", ""]
        if exp.published:
            lines += [f"Published: {exp.published}", ""]
        lines += [f"Finished runs: {len(results)} of {len(configs)}."]
        if unfinished:
            lines += ["Unfinished (resumable): " + ", ".join(f"{u['run']} ({u['labels']} labels)" for u in unfinished)]
        lines.append("")
        if summary:
            lines += [grid_report(results, exp.thresholds), ""]
            for c in charts:
                lines += [f"![{name}]({c})", ""]
            picks = _first_picks(results, configs[0])
            report["experiments"][name]["first_picks"] = picks
            lines += _first_picks_table(picks)
    timing = _round_timing()
    if timing:
        report["round_seconds_gal_bald"] = timing
        lines += [
            "## Time of one round (Gal protocol, BALD, K = 100; median over the runs so far)",
            "",
            "| labels | train | test evaluation | score 2,000 + acquire | CPU |",
            "|---|---|---|---|---|",
        ]
        for labels, t in timing.items():
            lines.append(
                f"| {labels} | {t['train']:.1f} s | {t['evaluate']:.1f} s | {t['acquire']:.1f} s | {t['cpu']:.1f} s |"
            )
        lines.append("")
    report["cpu_hours_finished_runs"] = round(total_cpu / 3600, 2)
    lines += [f"CPU time of the finished runs: {total_cpu / 3600:.2f} h.", ""]
    with_text = out / "active_learning.json"
    write_text_atomic(with_text, json.dumps(report, indent=1, default=str))
    notes = out / "active_learning_notes.md"
    if notes.is_file():
        lines += [notes.read_text()]
    write_text_atomic(out / "active_learning.md", "\n".join(lines))
    return report


_FIRST_PICKS = 100  # acquired items per seed that the "acquires first" tables look at


def _first_picks(results: Sequence[ActiveResult], config: ActiveConfig) -> dict[str, dict]:
    """:func:`first_picks` of the runs, on the data set of ``config`` (read as the charts read it)."""
    data = load_active_data(replace(config, data_dir=dataset_dir(config.dataset)))
    return first_picks(results, data.x, data.y, _FIRST_PICKS)


def _first_picks_table(picks: dict[str, dict]) -> list[str]:
    classes = len(picks["all items"]["class_share"])
    lines = [
        f"What each curve acquires first: its first {_FIRST_PICKS} acquired items per seed, pooled (all items:",
        "the pool and validation set), mean pixel intensity (0 to 1) and the share of each class in percent.",
        "",
        "| curve | mean intensity | " + " | ".join(f"class {c}" for c in range(classes)) + " |",
        "|---|---|" + "---|" * classes,
    ]
    for label, entry in picks.items():
        shares = " | ".join(f"{100 * v:.0f}" for v in entry["class_share"])
        lines.append(f"| {label} | {entry['mean_intensity']:.3f} | {shares} |")
    return [*lines, ""]


def _round_timing(at: Sequence[int] = (20, 100, 500, 1000)) -> dict[int, dict[str, float]]:
    """Median seconds of each step of a round at some label counts, over the BALD runs of
    ``gal_mnist`` (finished or not). Rounds of a process that was paused show up as outliers;
    the median keeps them out."""
    import statistics

    found: dict[int, list[dict[str, float]]] = {n: [] for n in at}
    for c in experiment_configs("gal_mnist"):
        path = c.folder() / "state.json"
        if c.heuristic != "bald" or not path.is_file():
            continue
        for r in json.loads(path.read_text())["rounds"]:
            if r["labels"] in found and r["acquired"]:
                found[r["labels"]].append(r["seconds"])
    return {
        n: {k: statistics.median(s[k] for s in rows) for k in ("train", "evaluate", "acquire", "cpu")}
        for n, rows in found.items()
        if rows
    }


def _acquired_grid(name: str, out: Path) -> Path | None:
    configs = [c for c in experiment_configs(name) if c.seed == 0]
    results = [r for r in (load_active_result(c) for c in configs) if r is not None]
    if not results:
        return None
    data = load_active_data(replace(configs[0], data_dir=dataset_dir(configs[0].dataset)))
    path = out / f"active_learning_{name}_acquired.png"
    plot_acquired(results, data.x, data.y, path=path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bayesdrop.reproduce.active_learning",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume the pending runs")
    run.add_argument("--experiments", default=",".join(EXPERIMENTS), help="comma-separated experiment names")
    run.add_argument("--hours", type=float, default=None, help="stop after the round that passes this much time")
    run.add_argument("--worker", default="0/1", help="i/n: take every n-th pending run from the i-th")
    report = sub.add_parser("report", help="write docs/results/active_learning.{md,json} and charts")
    report.add_argument("--experiments", default=",".join(EXPERIMENTS))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.experiments.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"--experiments: unknown {unknown}; choose from {sorted(EXPERIMENTS)}")
    if args.command == "run":
        try:
            i, n = (int(v) for v in args.worker.split("/"))
            assert 0 <= i < n
        except (ValueError, AssertionError):
            parser.error(f"--worker: expected i/n with 0 <= i < n, got {args.worker!r}")
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        run_pending(names, args.hours, (i, n))
    else:
        write_report(names)
        for name in names:
            _acquired_grid(name, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
