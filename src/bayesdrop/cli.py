"""The ``bayesdrop`` command: run, sweep, evaluate, plot, active, explain, list, quickstart.

Heavy libraries (torch models, MLflow, Ray, matplotlib) load only inside the subcommand that
needs them, so ``bayesdrop --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

_EPILOG = """\
examples:
  bayesdrop quickstart                      # MC-dropout LeNet on Fashion-MNIST, < 5 min on CPU
  bayesdrop list                            # data sets, models and methods
  bayesdrop run --dataset digits --model lenet5 --method dropconnect --rate 0.2 --samples 50
  bayesdrop run --config my_experiment.yaml --epochs 3 --no-track
  bayesdrop sweep configs/sweep_fashion.yaml             # 2x2x2 grid, resumable
  bayesdrop sweep configs/sweep_fashion.yaml --ray       # same grid as Ray Tune trials
  bayesdrop sweep configs/sweep_fashion.yaml --rate 0.1,0.3,0.5 --samples 10,100
  bayesdrop evaluate runs/<run folder> --samples 500     # re-evaluate a trained model
  bayesdrop plot runs/<run folder> --image 7 --morph-to 42
  bayesdrop plot runs                                    # sweep charts from finished runs
  bayesdrop active --dataset digits --heuristic bald,random --seed 0,1 --budget 60  # active learning
  bayesdrop explain --dataset credit --lam 0.5,1,2        # CLUE: explain the most uncertain points
  mlflow ui --backend-store-uri sqlite:///mlflow.db      # browse the tracked runs

Tracking goes to MLflow in the working folder (sqlite:///mlflow.db, artifacts in ./mlruns)
unless --no-track is given. An interrupted sweep resumes where it stopped: run it again.
"""

_FIELD_HELP = {
    "dataset": "data set name (see `bayesdrop list datasets`)",
    "model": "model name (see `bayesdrop list models`)",
    "model_options": "extra model arguments in YAML flow syntax, e.g. '{hidden: [64]}'",
    "method": "dropout, dropconnect, gaussian or concrete",
    "rate": "dropout rate p in [0, 1) (initial rate for concrete)",
    "samples": "MC samples T at evaluation",
    "epochs": "training epochs",
    "batch_size": "training batch size",
    "optimizer": "adam or sgd",
    "lr": "learning rate",
    "momentum": "SGD momentum",
    "schedule": "learning-rate schedule: none, cosine or step",
    "weight_decay": "L2 weight decay (ignored when --length-scale is set)",
    "length_scale": "prior length-scale l: weight decay l^2 (1-p) / (2 N tau)",
    "tau": "model precision tau of the prior weight decay",
    "val_fraction": "share of the training data held out for validation",
    "patience": "early stopping after this many epochs without improvement",
    "val_samples": "MC samples of the per-epoch validation",
    "train_size": "use only this many training examples",
    "test_size": "use only the first n test examples",
    "ood_dataset": "out-of-distribution test set (auto, mnist, fashion-mnist, null)",
    "seed": "seed of splits, initialisation, training noise and MC sampling",
    "device": "auto, cpu, cuda or cuda:<i>",
    "data_dir": "folder to look for the data first",
    "output_dir": "folder for runs, models and charts",
    "charts": "draw the charts (true/false)",
    "chart_image": "test-set index of the image to rotate and morph",
    "chart_morph_to": "test-set index of the image to morph into",
    "chart_steps": "steps of the rotation / morph charts",
    "tracking": "MLflow tracking on/off (true/false); see --no-track",
    "tracking_uri": "MLflow tracking URI",
    "experiment_name": "MLflow experiment name",
    "progress": "progress bars (true/false)",
    "name": "run name (default: built from the parameters)",
}


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _add_config_flags(parser: argparse.ArgumentParser, sweep: bool) -> None:
    from .experiments._config import ExperimentConfig

    group = parser.add_argument_group(
        "experiment settings (override the config file"
        + ("; comma-separated values make a sweep axis, e.g. --rate 0.1,0.5)" if sweep else ")")
    )
    defaults = ExperimentConfig.__dataclass_fields__
    for f in fields(ExperimentConfig):
        flag = "--" + f.name.replace("_", "-")
        group.add_argument(
            flag,
            dest=f.name,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=f"{_FIELD_HELP.get(f.name, f.name)} (default {defaults[f.name].default!r})",
        )
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow (same as --tracking false)")


def _add_dataclass_flags(parser: argparse.ArgumentParser, which: str) -> None:
    if which == "active":
        from .active import ActiveConfig as Config
    else:
        from .explain import ExplainConfig as Config

    group = parser.add_argument_group("settings (comma-separated values make an axis, e.g. --seed 0,1,2)")
    for f in fields(Config):
        default = f.default if f.default is not f.default_factory else f.default_factory()  # type: ignore[misc]
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=f"default {default!r}",
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesdrop`` command."""
    parser = argparse.ArgumentParser(
        prog="bayesdrop",
        description="Uncertainty experiments with Monte-Carlo dropout, DropConnect, Gaussian "
        "and Concrete dropout: train, sample, measure, chart and track.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "quickstart",
        formatter_class=_Formatter,
        help="MC-dropout LeNet on Fashion-MNIST (digits if absent), < 5 min on CPU",
        description="Train an MC-dropout LeNet-5 on Fashion-MNIST (scikit-learn's "
        "digits when Fashion-MNIST is not installed), evaluate it with MC "
        "samples, print the metrics table, draw the charts and log the run to "
        "MLflow.",
        epilog="example:\n  bayesdrop quickstart --no-track",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: 2 on Fashion-MNIST, 15 on digits)"
    )
    p.add_argument("--samples", type=int, default=50, help="MC samples T")
    p.add_argument("--output-dir", default="runs", help="folder for the run")
    p.add_argument("--data-dir", default=None, help="folder to look for Fashion-MNIST first")
    p.add_argument(
        "--dataset",
        default=None,
        choices=("fashion-mnist", "digits"),
        help="force a data set (default: Fashion-MNIST if found, else digits)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")

    p = sub.add_parser(
        "run",
        formatter_class=_Formatter,
        help="run one experiment",
        description="Train, evaluate, chart and track one experiment, from a YAML config and/or flags (flags win).",
        epilog="examples:\n  bayesdrop run --dataset digits --model mlp --rate 0.3"
        "\n  bayesdrop run --config exp.yaml --samples 200 --no-track",
    )
    p.add_argument("--config", default=None, help="YAML config file")
    _add_config_flags(p, sweep=False)

    p = sub.add_parser(
        "sweep",
        formatter_class=_Formatter,
        help="run the grid of a config with lists (locally or on Ray)",
        description="Run every combination of the list-valued keys of a config. "
        "Finished runs are recorded; running the same sweep again skips them "
        "and resumes an interrupted one from its last epoch.",
        epilog="examples:\n  bayesdrop sweep configs/sweep_fashion.yaml\n"
        "  bayesdrop sweep configs/sweep_fashion.yaml --ray --cpus-per-trial 2\n"
        "  bayesdrop sweep configs/sweep_fashion.yaml --ray-address ray://head:10001",
    )
    p.add_argument("config", nargs="?", default=None, help="YAML sweep config")
    p.add_argument(
        "--ray",
        action="store_true",
        help="run on a local Ray instance, one Ray "
        "Tune trial per trained model (runs differing only in samples share one)",
    )
    p.add_argument("--ray-address", default=None, help="address of a Ray cluster (implies --ray)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs of each Ray trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs of each Ray trial")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state only")
    _add_config_flags(p, sweep=True)

    p = sub.add_parser(
        "evaluate",
        formatter_class=_Formatter,
        help="re-evaluate a finished run's model",
        description="Load a run's trained model and evaluate it again (e.g. with "
        "more MC samples); prints the metrics table.",
        epilog="example:\n  bayesdrop evaluate runs/<run folder> --samples 500",
    )
    p.add_argument("run_dir", help="a run folder (holding model.pt and config.json)")
    p.add_argument("--samples", type=int, default=None, help="MC samples (default: the run's)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: the run's)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")

    p = sub.add_parser(
        "plot",
        formatter_class=_Formatter,
        help="draw charts of a run (rotation, morph) or of a sweep folder",
        description="For a run folder: the uncertainty along a rotation and a "
        "morph of chosen test images. For a sweep output folder: metric vs "
        "dropout rate and vs number of samples, from the finished runs.",
        epilog="examples:\n  bayesdrop plot runs/<run folder> --image 3 "
        "--morph-to 10 --steps 16\n  bayesdrop plot runs",
    )
    p.add_argument("path", help="a run folder, or a sweep's output folder")
    p.add_argument("--image", type=int, default=None, help="test image to rotate / morph")
    p.add_argument("--morph-to", type=int, default=None, help="test image to morph into")
    p.add_argument("--steps", type=int, default=None, help="steps along the path")
    p.add_argument("--samples", type=int, default=None, help="MC samples")
    p.add_argument(
        "--metrics",
        default=None,
        help="sweep charts: comma-separated metrics "
        "(default accuracy, nll, brier, ece, aurc and OOD AUROC when present)",
    )
    p.add_argument("--out", default=None, help="folder for the PNGs (default: the input folder)")

    p = sub.add_parser(
        "active",
        formatter_class=_Formatter,
        help="Bayesian active learning: heuristics x seeds, resumable, tracked",
        description="Run active learning (train -> score the pool with consistent MC samples -> "
        "acquire -> label) for every combination of the list-valued settings, e.g. several "
        "heuristics and seeds. Every round is saved: running the same command again resumes. "
        "Writes the labels-to-accuracy table, learning curves and the acquired images to the "
        "output folder, and logs each round to MLflow unless --no-track.",
        epilog="examples:\n"
        "  bayesdrop active --dataset mnist-10k --data-dir ../shared/data/mnist "
        "--heuristic bald,random --seed 0,1,2\n"
        "  bayesdrop active --config active.yaml --ray\n"
        "  bayesdrop active --dataset digits --heuristic bald,batchbald --budget 100 --samples 20 --no-track\n"
        "heuristics: bald, batchbald, epig, max_entropy, variation_ratio, mean_std, margin, "
        "least_confidence, random; data sets: mnist-10k, mnist, fashion-mnist, digits",
    )
    p.add_argument("--config", default=None, help="YAML file of settings (lists are axes); flags win")
    p.add_argument("--thresholds", default="0.9,0.95", help="accuracies of the labels-to-accuracy table")
    p.add_argument("--ray", action="store_true", help="run the pending runs as Ray Tune trials on a local Ray")
    p.add_argument("--ray-address", default=None, help="address of a Ray cluster (implies --ray)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs of each Ray trial")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    _add_dataclass_flags(p, "active")

    p = sub.add_parser(
        "explain",
        formatter_class=_Formatter,
        help="CLUE: explain the uncertainty of the most uncertain test points",
        description="Train (once; cached) an MC-dropout network and a VAE on a data set, then find "
        "CLUEs for the most uncertain test points: the smallest changes, along the VAE's data "
        "manifold, that make the network confident. Prints and writes the summary (uncertainty "
        "before and after, L1 change, class flips, VAE log-likelihood of the explanations), draws "
        "the charts and logs to MLflow unless --no-track. A list of lambdas makes a sweep.",
        epilog="examples:\n"
        "  bayesdrop explain --dataset credit --lam 0.5,1,2\n"
        "  bayesdrop explain --dataset compas-no-recid --uncertainty epistemic --no-track\n"
        "  bayesdrop explain --dataset mnist-10k --data-dir ../shared/data/mnist --max-points 64\n"
        "data sets: credit, compas, compas-no-recid, lsat, wine (../shared/data or --data-dir), mnist-10k",
    )
    p.add_argument("--config", default=None, help="YAML file of settings (lists are axes); flags win")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    _add_dataclass_flags(p, "explain")

    p = sub.add_parser(
        "list",
        help="list data sets, models and methods",
        description="List what experiments can use.",
        epilog="examples:\n  bayesdrop list\n  bayesdrop list models",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", nargs="?", default="all", choices=("all", "datasets", "models", "methods"))
    return parser


def _raw_from_args(args: argparse.Namespace, sweep: bool) -> dict[str, Any]:
    from .experiments._config import field_names, load_config, parse_value

    overrides: dict[str, Any] = {}
    for name in field_names():
        text = getattr(args, name, None)
        if text is not None:
            overrides[name] = parse_value(text) if sweep else _single(name, text)
    if args.no_track:
        overrides["tracking"] = False
    return load_config(args.config, **overrides)


def _single(name: str, text: str) -> Any:
    from ._errors import BayesdropError
    from .experiments._config import parse_value

    value = parse_value(text)
    if isinstance(value, list):
        raise BayesdropError(
            f"Expected argument `--{name.replace('_', '-')}` to be one value, but got {text!r}; "
            "use `bayesdrop sweep` for a grid of values."
        )
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiments import ExperimentConfig, run_experiment

    raw = _raw_from_args(args, sweep=False)
    lists = [k for k, v in raw.items() if isinstance(v, list)]
    if lists:
        from ._errors import BayesdropError

        raise BayesdropError(f"The config has lists for {lists}: use `bayesdrop sweep`.")
    run_experiment(ExperimentConfig(**raw))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments import expand_grid, load_result, run_dir, run_sweep

    configs = expand_grid(_raw_from_args(args, sweep=True))
    if args.dry_run:
        for c in configs:
            state = "finished" if load_result(c) is not None else "pending"
            print(f"{state:9s} {run_dir(c)}")
        return 0
    run_sweep(
        configs,
        ray=args.ray,
        ray_address=args.ray_address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from torch.utils.data import TensorDataset

    from .experiments._run import _ood_data, format_metrics, load_trained
    from .training import evaluate_model

    cfg, mc, splits = load_trained(args.run_dir, device=args.device)
    samples = args.samples or cfg.samples
    seed = cfg.seed if args.seed is None else args.seed
    x, y = splits.x_test, splits.y_test
    if cfg.test_size is not None:
        x, y = x[: cfg.test_size], y[: cfg.test_size]
    t0 = time.perf_counter()
    ev = evaluate_model(mc, TensorDataset(x, y), samples=samples, seed=seed, ood_data=_ood_data(cfg, len(x)))
    if args.json:
        print(json.dumps({k: v for k, v in ev.metrics.items()}, indent=2, default=str))
    else:
        print(format_metrics(ev.metrics, title=f"{cfg.slug()}  (T = {samples} MC samples)"))
        print(f"evaluated in {time.perf_counter() - t0:.1f}s")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from ._errors import BayesdropError

    path = Path(args.path)
    if (path / "model.pt").is_file():
        from torch.utils.data import TensorDataset

        from .experiments._charts_run import draw_run_charts
        from .experiments._run import _ood_data, load_trained
        from .training import evaluate_model

        cfg, mc, splits = load_trained(path)
        changes = {
            k: v
            for k, v in (
                ("chart_image", args.image),
                ("chart_morph_to", args.morph_to),
                ("chart_steps", args.steps),
                ("samples", args.samples),
            )
            if v is not None
        }
        cfg = cfg.with_(**changes)
        x, y = splits.x_test, splits.y_test
        if cfg.test_size is not None:
            x, y = x[: cfg.test_size], y[: cfg.test_size]
        ev = evaluate_model(
            mc, TensorDataset(x, y), samples=cfg.samples, seed=cfg.seed, ood_data=_ood_data(cfg, len(x))
        )
        for p in draw_run_charts(mc, cfg, ev, x, y, args.out or path):
            print(p)
        return 0
    if path.is_dir():
        import json

        from .experiments import RunResult, draw_sweep_charts

        records = sorted(path.glob("*/result.json"))
        if not records:
            raise BayesdropError(
                f"Expected argument `path` to be a run folder (with model.pt) or a sweep folder "
                f"(with */result.json), but got {str(path)!r} holding neither."
            )
        results = [RunResult(**json.loads(r.read_text())) for r in records]
        metrics = args.metrics.split(",") if args.metrics else None
        paths = draw_sweep_charts(results, args.out or path, metrics=metrics)
        if not paths:
            print("The finished runs vary neither rate nor samples: nothing to draw.")
        for p in paths:
            print(p)
        return 0
    raise BayesdropError(f"Expected argument `path` to be an existing folder, but got {str(path)!r}.")


def _settings(args: argparse.Namespace, config_class: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then the --config YAML file, then the flags (values parsed as YAML would)."""
    from .experiments._config import parse_value

    raw = dict(defaults)
    if args.config:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            from ._errors import BayesdropError

            raise BayesdropError(f"Argument `--config`: no file {path}.")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            from ._errors import expected

            raise expected("--config", "a YAML mapping of settings", type(loaded).__name__)
        raw.update(loaded)
    for f in fields(config_class):
        if hasattr(args, f.name):
            raw[f.name] = parse_value(getattr(args, f.name))
    if args.no_track:
        raw["tracking"] = False
    return raw


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import ExplainConfig, explain_grid, load_explain_data, run_explain

    configs = explain_grid(_settings(args, ExplainConfig, {"tracking": True}))
    data = load_explain_data(configs[0]) if len({(c.dataset, c.data_dir) for c in configs}) == 1 else None
    header = (
        "| lambda | uncertainty | points | before (mean) | after (mean) | L1 / column "
        "| log p original | log p CLUE | flips |"
    )
    rows = [header, "|" + "---|" * 9]
    for c in configs:
        r = run_explain(c, data=data)
        kind = r["uncertainty"]
        flips = f"{r['class_flip_rate']:.2f}" if "class_flip_rate" in r else "-"
        rows.append(
            f"| {c.lam:g} | {kind} | {r['points']} | {r['before'][kind]['mean']:.4f} | {r['after'][kind]['mean']:.4f} "
            f"| {r['l1_per_column']['mean']:.4f} | {r['log_p_original']['mean']:.2f} "
            f"| {r['log_p_clue']['mean']:.2f} | {flips} |"
        )
        for chart in r.get("charts", []):
            print(f"chart: {chart}")
    print("\n".join(rows))
    return 0


def _cmd_active(args: argparse.Namespace) -> int:
    from .active import (
        ActiveConfig,
        active_grid,
        first_picks,
        grid_report,
        load_active_data,
        plot_acquired,
        plot_learning_curves,
        run_active_grid,
    )
    from .experiments._config import parse_value
    from .experiments._tracking import write_json_atomic

    raw = _settings(args, ActiveConfig, {"output_dir": "runs/active", "tracking": True})
    thresholds = parse_value(args.thresholds)
    thresholds = [float(t) for t in (thresholds if isinstance(thresholds, list) else [thresholds])]
    configs = active_grid(raw)
    print(f"{len(configs)} run(s) in {configs[0].output_dir}", flush=True)
    results = run_active_grid(configs, ray=args.ray, ray_address=args.ray_address, cpus_per_trial=args.cpus_per_trial)
    out = Path(configs[0].output_dir)
    table = grid_report(results, thresholds)
    print(table)
    data = load_active_data(configs[0])
    summary = {"runs": [r.folder for r in results], "table": table, "first_picks": first_picks(results, data.x, data.y)}
    write_json_atomic(out / "active_summary.json", summary)
    plot_learning_curves(
        results, thresholds=thresholds, title="Active learning", path=out / "active_learning_curves.png"
    )
    plot_acquired(results, data.x, data.y, path=out / "active_acquired.png")
    print(f"charts: {out / 'active_learning_curves.png'}, {out / 'active_acquired.png'}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .experiments import METHODS

    what = args.what
    if what in ("all", "datasets"):
        from .data import list_datasets

        print("data sets:")
        for name, text in list_datasets().items():
            print(f"  {name:28s} {text}")
    if what in ("all", "models"):
        from . import models

        print("models:")
        listed = models.list_models()
        items = listed.items() if isinstance(listed, dict) else ((n, "") for n in listed)
        for name, text in items:
            print(f"  {name:28s} {text}")
    if what in ("all", "methods"):
        texts = {
            "dropout": "MC dropout: the model's dropout layers stay on at prediction",
            "dropconnect": "DropConnect: Bernoulli masks on the weights of Linear/Conv layers",
            "gaussian": "Gaussian dropout: multiplicative N(1, p/(1-p)) noise at dropout sites",
            "concrete": "Concrete dropout: dropout rates learned with the relaxed objective",
        }
        print("methods:")
        for name in METHODS:
            print(f"  {name:28s} {texts[name]}")
    return 0


def quickstart_config(
    dataset: str,
    *,
    epochs: int | None,
    samples: int,
    output_dir: str,
    data_dir: str | None,
    device: str,
    tracking: bool,
) -> Any:
    """The quickstart experiment for ``dataset`` (``"fashion-mnist"`` or ``"digits"``)."""
    from .experiments import ExperimentConfig

    if dataset == "fashion-mnist":
        return ExperimentConfig(
            dataset="fashion-mnist",
            model="lenet5",
            method="dropout",
            rate=0.25,
            samples=samples,
            epochs=epochs or 2,
            batch_size=128,
            lr=2e-3,
            val_fraction=0.05,
            val_samples=5,
            seed=0,
            device=device,
            data_dir=data_dir,
            output_dir=output_dir,
            tracking=tracking,
            experiment_name="bayesdrop-quickstart",
            name=None,
        )
    return ExperimentConfig(
        dataset="digits",
        model="lenet5",
        method="dropout",
        rate=0.25,
        samples=samples,
        epochs=epochs or 15,
        batch_size=64,
        lr=2e-3,
        val_fraction=0.1,
        val_samples=5,
        seed=0,
        device=device,
        output_dir=output_dir,
        tracking=tracking,
        experiment_name="bayesdrop-quickstart",
    )


def quickstart_dataset(data_dir: str | None = None) -> str:
    """``"fashion-mnist"`` when its test set can be read, else ``"digits"`` (with a note)."""
    from . import data
    from ._errors import BayesdropError

    try:
        data.load_fashion_mnist("test", data_dir)
        return "fashion-mnist"
    except BayesdropError as err:
        # the whole message: every place looked and how to get the data (its first line
        # alone ends in "Looked in:" and lists none)
        details = "\n".join(f"    {line}" for line in str(err).splitlines())
        print(f"[bayesdrop] Fashion-MNIST not found; using scikit-learn's digits instead.\n{details}")
        return "digits"


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .experiments import run_experiment

    dataset = args.dataset or quickstart_dataset(args.data_dir)
    cfg = quickstart_config(
        dataset,
        epochs=args.epochs,
        samples=args.samples,
        output_dir=args.output_dir,
        data_dir=args.data_dir,
        device=args.device,
        tracking=not args.no_track,
    )
    t0 = time.perf_counter()
    result = run_experiment(cfg)
    print(f"[bayesdrop] quickstart finished in {time.perf_counter() - t0:.1f}s; run folder {result.run_dir}")
    if result.mlflow_run_id:
        print("[bayesdrop] see it in MLflow: mlflow ui --backend-store-uri sqlite:///mlflow.db")
    return 0


_COMMANDS = {
    "active": _cmd_active,
    "explain": _cmd_explain,
    "run": _cmd_run,
    "sweep": _cmd_sweep,
    "evaluate": _cmd_evaluate,
    "plot": _cmd_plot,
    "list": _cmd_list,
    "quickstart": _cmd_quickstart,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesdrop`` command; returns the exit status.

    Errors of bayesdrop (bad config values, missing data) are printed as one line with exit
    status 2; ``--help`` on any subcommand explains it with examples.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"bayesdrop {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    from ._errors import BayesdropError

    try:
        return _COMMANDS[args.command](args)
    except BayesdropError as err:
        print(f"bayesdrop {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bayesdrop {args.command}: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
