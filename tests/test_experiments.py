"""Experiments: config validation, grids, run keys, resumable sweeps, MLflow, Ray, charts."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import bayesdrop as bd
from bayesdrop.experiments import (
    ExperimentConfig,
    expand_grid,
    load_config,
    load_result,
    parse_value,
    run_dir,
    run_experiment,
    run_sweep,
)
from bayesdrop.experiments import _run as run_module
from bayesdrop.experiments.charts import plot_metric_vs, plot_uncertainty_path
from bayesdrop.training import evaluate_model

# a run of a few seconds: digits, LeNet-5, 1 epoch on 96 images, 40 test images
TINY = dict(
    dataset="digits",
    model="lenet5",
    epochs=1,
    train_size=96,
    test_size=40,
    val_fraction=0.1,
    val_samples=2,
    samples=4,
    batch_size=48,
    charts=False,
    tracking=False,
)


# ----------------------------------------------------------------------------- validation
def test_unknown_key_names_the_key_and_the_allowed_keys() -> None:
    with pytest.raises(
        bd.BayesdropError,
        match="Unknown config key `dropout_rate`; expected one of: dataset, split, model, model_options, method, rate",
    ):
        load_config({"dropout_rate": 0.5})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("method", "mcdrop", "`method` to be one of \\('dropout', 'dropconnect', 'gaussian', 'concrete'\\)"),
        ("rate", 1.0, "`rate` to be a number in \\[0, 1\\)"),
        ("samples", 0, "`samples` to be a positive integer"),
        ("samples", 2.5, "`samples` to be a positive integer"),
        ("dataset", "cifar-100", "`dataset` to be one of .*'fashion-mnist'"),
        ("model", "alexnet", "`model` to be one of .*'lenet5'"),
        ("optimizer", "rmsprop", "`optimizer` to be one of \\('adam', 'sgd'\\)"),
        ("charts", "yes", "`charts` to be true or false"),
        ("device", "gpu", "`device` to be one of"),
        ("model_options", {"dropout": 0.1}, "`model_options` to be a mapping without"),
        ("model_options", [64], "`model_options` to be a mapping of constructor argument names"),
    ],
)
def test_bad_values_name_the_key_and_allowed_values(key: str, value, message: str) -> None:
    with pytest.raises(bd.BayesdropError, match=message):
        ExperimentConfig(**{key: value})


def test_patience_needs_a_validation_split_and_concrete_a_rate() -> None:
    with pytest.raises(bd.BayesdropError, match="`patience` to be null when val_fraction is 0"):
        ExperimentConfig(patience=2, val_fraction=0.0)
    with pytest.raises(bd.BayesdropError, match="`rate` to be a number in \\(0, 1\\) for method"):
        ExperimentConfig(method="concrete", rate=0.0)


def test_yaml_file_and_cli_values(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("dataset: digits\nmodel: mlp\nlr: 1e-3\nrate: [0.1, 0.5]\nmethod: gaussian\n")
    raw = load_config(path, samples=[10, 20])
    assert raw["lr"] == 1e-3 and isinstance(raw["lr"], float)  # YAML reads 1e-3 as a string
    assert len(expand_grid(raw)) == 4
    assert parse_value("0.1,0.5") == [0.1, 0.5] and parse_value("null") is None
    assert parse_value("dropconnect") == "dropconnect" and parse_value("3") == 3
    assert parse_value("{hidden: [64, 32]}") == {"hidden": [64, 32]}
    assert parse_value("[0.1, 0.2]") == [0.1, 0.2]
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(bd.BayesdropError, match="`config` to be a YAML mapping"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(bd.BayesdropError, match="`config` to be a path to an existing YAML"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(bd.BayesdropError, match="`output_dir` to be a single value"):
        expand_grid({"output_dir": ["a", "b"]})


# ---------------------------------------------------------------------------- grid, keys
def test_grid_is_the_cartesian_product() -> None:
    axes = {"method": ["dropout", "dropconnect", "gaussian"], "rate": [0.1, 0.25], "samples": [5, 50], "seed": [0, 1]}
    grid = expand_grid({"dataset": "digits", "model": "mlp", **axes})
    got = [(c.method, c.rate, c.samples, c.seed) for c in grid]
    assert got == list(itertools.product(*axes.values()))
    assert len({c.key() for c in grid}) == len(grid) == 24
    assert all(c.model == "mlp" and c.dataset == "digits" for c in grid)
    # repeated values collapse to one run
    assert len(expand_grid({"dataset": "digits", "rate": [0.1, 0.1, 0.2]})) == 2


def test_keys_ignore_bookkeeping_and_share_training_across_samples() -> None:
    a = ExperimentConfig(dataset="digits", samples=10)
    assert a.key() == a.with_(output_dir="elsewhere", tracking=False).key()
    assert a.key() != a.with_(samples=20).key()
    assert a.train_key() == a.with_(samples=20).train_key()
    assert a.train_key() != a.with_(rate=0.1).train_key()
    assert a.slug() == "digits_lenet5_dropout_p0.5_T10_s0"


# ------------------------------------------------------------------------- runs and sweeps
def test_sweep_resumes_after_interruption_without_redoing_or_losing_runs(tmp_path, monkeypatch):
    grid = expand_grid(
        {**TINY, "output_dir": str(tmp_path / "out"), "method": ["dropout", "gaussian"], "samples": [3, 6]}
    )
    assert len(grid) == 4
    trained, evaluated = [], []
    real_fit, real_eval = run_module.fit, run_module.evaluate_model

    def counting_fit(*a, **k):
        trained.append(1)
        return real_fit(*a, **k)

    def failing_eval(*a, **k):
        evaluated.append(1)
        if len(evaluated) == 3:
            raise KeyboardInterrupt  # the machine goes down inside the 3rd run
        return real_eval(*a, **k)

    monkeypatch.setattr(run_module, "fit", counting_fit)
    monkeypatch.setattr(run_module, "evaluate_model", failing_eval)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, charts=False, verbose=False)
    finished = [c for c in grid if load_result(c) is not None]
    assert finished == grid[:2]  # grid order: (dropout, 3), (dropout, 6), (gaussian, 3), ...
    assert len(trained) == 2  # the samples=6 run reused the samples=3 run's trained model

    monkeypatch.setattr(run_module, "evaluate_model", real_eval)
    again = run_sweep(grid, charts=True, verbose=False)
    assert sorted(again.skipped) == sorted(c.key() for c in grid[:2])
    assert [r.key for r in again.results] == [c.key() for c in grid]
    assert len(trained) == 2  # the interrupted run's model had been saved: nothing retrained
    assert all(load_result(c) is not None for c in grid)
    rows = (tmp_path / "out" / "sweep_summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    assert [p.split("/")[-1].split("_")[1] for p in again.charts] == ["vs-samples"]
    third = run_sweep(grid, charts=False, verbose=False)
    assert len(third.skipped) == 4 and len(trained) == 2
    assert [r.metrics for r in third.results] == [r.metrics for r in again.results]


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path) -> None:
    import os
    import socket
    import subprocess
    import sys

    cfg = ExperimentConfig(**{**TINY, "output_dir": str(tmp_path)})
    folder = run_dir(cfg)
    folder.mkdir(parents=True)
    (folder / ".lock").write_text(f"{socket.gethostname()} {os.getpid()}")  # alive: us
    with pytest.raises(bd.BayesdropError, match=r"is in use by process .* \(the same run started twice\?\)"):
        run_experiment(cfg, verbose=False)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (folder / ".lock").write_text(f"{socket.gethostname()} {dead}")  # its process is gone
    assert run_experiment(cfg, verbose=False).key == cfg.key()
    assert not (folder / ".lock").exists()


@pytest.mark.parametrize("method", ["gaussian", "concrete"])
def test_methods_build_their_noise_and_run(tmp_path, method: str) -> None:
    cfg = ExperimentConfig(**{**TINY, "output_dir": str(tmp_path), "method": method, "rate": 0.2})
    splits = SimpleNamespace(
        task="classification", x_train=torch.zeros(96, 1, 28, 28), input_shape=(1, 28, 28), num_classes=10
    )
    mc = run_module.wrap_model(run_module.build_model(cfg, splits), cfg, "classification")
    concrete = [m for m in mc.modules() if isinstance(m, bd.ConcreteDropout)]
    plain = [m for m in mc.modules() if isinstance(m, torch.nn.Dropout)]
    if method == "concrete":  # LeNet's Dropout -> Linear pairs became ConcreteDropout(Linear)
        assert len(concrete) == 2 and not plain
        assert concrete[0].dropout_regularizer == pytest.approx(2 / 96)
    else:  # Gaussian noise replaces the model's dropout layers, which keep the rate
        assert not concrete and [m.p for m in plain] == [0.2, 0.2]
    result = run_experiment(cfg, verbose=False)
    assert result.metrics["n_samples"] == 4 and 0 <= result.metrics["accuracy"] <= 1
    if method == "concrete":
        assert 0 < result.metrics["concrete_p_mean"] < 1


def test_mlflow_sqlite_store_holds_params_metrics_and_artifacts(tmp_path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    cfg = ExperimentConfig(
        **{
            **TINY,
            "tracking": True,
            "charts": True,
            "epochs": 2,
            "experiment_name": "t",
            "method": "dropconnect",
            "rate": 0.1,
        }
    )
    from bayesdrop.experiments._tracking import MlflowTracker

    killed = MlflowTracker("sqlite:///mlflow.db", "t")  # a process killed mid-run (kill -9)
    killed.start(cfg.slug(), cfg.params(), {"bayesdrop.run_key": cfg.key()})
    real_eval = run_module.evaluate_model

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(run_module, "evaluate_model", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        run_experiment(cfg, verbose=False)
    assert load_result(cfg) is None and not (run_dir(cfg) / "result.json").exists()
    monkeypatch.setattr(run_module, "evaluate_model", real_eval)
    result = run_experiment(cfg, verbose=False)

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("t")
    stale, failed, run = sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)
    assert stale.info.run_id == killed.run_id and stale.info.status == "KILLED"
    assert failed.info.status == "FAILED"
    assert run.info.status == "FINISHED" and run.info.run_id == result.mlflow_run_id
    assert run.data.params["method"] == "dropconnect" and run.data.params["rate"] == "0.1"
    assert run.data.tags["bayesdrop.run_key"] == cfg.key()
    assert run.data.metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]  # logged again from the saved training history
    assert [m.value for m in history] == pytest.approx([e["train_loss"] for e in result.history])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.txt", "metrics.json", "model", "charts"} <= artifacts
    charts = {a.path for a in client.list_artifacts(run.info.run_id, "charts")}
    assert f"charts/rotation_{cfg.slug()}_img0.png" in charts
    assert (tmp_path / "mlruns").is_dir()  # artifacts under ./mlruns


@pytest.mark.slow
def test_sweep_on_local_ray(tmp_path, monkeypatch) -> None:
    ray = pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    grid = expand_grid(
        {**TINY, "output_dir": "out", "rate": [0.1, 0.3], "samples": [2, 4], "tracking": True, "experiment_name": "ray"}
    )  # 4 runs, 2 trials
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        res = run_sweep(grid, ray=True, charts=False, verbose=False)
    finally:
        ray.shutdown()
    assert [r.key for r in res.results] == [c.key() for c in grid]
    for c, r in zip(grid, res.results, strict=True):
        record = json.loads((run_dir(c.with_(output_dir=str(tmp_path / "out"))) / "result.json").read_text())
        assert record["metrics"] == r.metrics and 0 <= r.metrics["accuracy"] <= 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    all_runs = client.search_runs([client.get_experiment_by_name("ray").experiment_id])
    (summary,) = [r for r in all_runs if "bayesdrop.sweep" in r.data.tags]
    assert summary.data.params["sweep.rate"] == "0.1,0.3" and summary.data.params["n_runs"] == "4"
    assert "sweep_summary.csv" in {a.path for a in client.list_artifacts(summary.info.run_id)}
    runs = [r for r in all_runs if r is not summary]
    assert sorted((r.data.params["rate"], r.data.params["samples"]) for r in runs) == [
        ("0.1", "2"),
        ("0.1", "4"),
        ("0.3", "2"),
        ("0.3", "4"),
    ]
    assert sum(not r.reused_training for r in res.results) == 2  # one training per trial
    assert all(r.info.status == "FINISHED" for r in runs)


# ------------------------------------------------------------------ no process-wide side effects
def _global_states() -> tuple:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def test_run_leaves_the_global_random_state_alone_and_repeats_its_numbers(tmp_path) -> None:
    torch.manual_seed(11)
    random.seed(11)
    np.random.seed(11)
    before = _global_states()
    a = run_experiment(ExperimentConfig(**TINY, output_dir=str(tmp_path / "a")), verbose=False)
    after = _global_states()
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    assert before[2][0] == after[2][0] and np.array_equal(before[2][1], after[2][1]) and before[2][2:] == after[2][2:]
    torch.manual_seed(99)  # another global state: the run's numbers come from cfg.seed alone
    b = run_experiment(ExperimentConfig(**TINY, output_dir=str(tmp_path / "b")), verbose=False)
    assert not b.reused_training
    timing = ("train_seconds", "eval_seconds")
    assert {k: v for k, v in a.metrics.items() if k not in timing} == {
        k: v for k, v in b.metrics.items() if k not in timing
    }
    assert [e["train_loss"] for e in a.history] == [e["train_loss"] for e in b.history]
    # every checkpoint the run wrote holds only weights and plain data
    saved = sorted((tmp_path / "a").rglob("*.pt"))
    assert {p.name for p in saved} == {"checkpoint.pt", "model.pt"} and len(saved) == 3
    for path in saved:
        state = torch.load(path, weights_only=True)
        assert isinstance(state["model"], dict) and isinstance(state["history"][0], dict)


def _path_result(g: torch.Generator) -> dict:
    probs = torch.softmax(torch.randn(5, 8, 3, generator=g), -1)
    return {
        "samples": probs,
        "mean": probs.mean(1),
        "entropy": torch.rand(5, generator=g),
        "expected_entropy": torch.rand(5, generator=g) * 0.5,
        "mutual_information": torch.rand(5, generator=g) * 0.1,
        "variation_ratio": torch.rand(5, generator=g),
    }


@pytest.mark.parametrize("backend", ["pdf", "ps"])
def test_charts_leave_the_matplotlib_backend_alone(tmp_path, backend: str) -> None:
    import matplotlib

    previous = matplotlib.get_backend()
    matplotlib.use(backend)  # the caller's choice: a headless backend other than Agg
    try:
        g = torch.Generator().manual_seed(0)
        path = plot_uncertainty_path(torch.rand(5, 1, 8, 8, generator=g), _path_result(g), tmp_path / "r.png")
        rows = [{"method": "dropout", "rate": r, "samples": 10, "accuracy": 0.9 - r} for r in (0.1, 0.5)]
        out = plot_metric_vs(rows, "rate", tmp_path / "m.png")
        assert matplotlib.get_backend() == backend
        assert path.read_bytes()[:4] == out.read_bytes()[:4] == b"\x89PNG"  # PNGs whatever the backend
    finally:
        matplotlib.use(previous)


# --------------------------------------------------------------------------------- charts
def test_charts_are_written_and_check_their_inputs(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(5, 8, 3, generator=g), -1)
    mean = probs.mean(1)
    res = {
        "samples": probs,
        "mean": mean,
        "entropy": torch.rand(5, generator=g),
        "expected_entropy": torch.rand(5, generator=g) * 0.5,
        "mutual_information": torch.rand(5, generator=g) * 0.1,
        "variation_ratio": torch.rand(5, generator=g),
    }
    path = plot_uncertainty_path(
        torch.rand(5, 1, 8, 8, generator=g), res, tmp_path / "r.png", steps=[0, 45, 90, 135, 180], title="t"
    )
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(bd.BayesdropError, match="`steps` to be 5 values"):
        plot_uncertainty_path(torch.rand(5, 1, 8, 8), res, tmp_path / "x.png", steps=[0, 1])
    rows = [
        {"method": m, "rate": r, "samples": 10, "accuracy": 0.9 - r, "nll": 0.3 + r}
        for m in ("dropout", "gaussian")
        for r in (0.1, 0.5)
    ]
    out = plot_metric_vs(rows, "rate", tmp_path / "m.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(bd.BayesdropError, match="`results` to be runs matching"):
        plot_metric_vs(rows, "rate", tmp_path / "n.png", fixed={"samples": 99})


def test_regression_config_errors_name_the_key() -> None:
    with pytest.raises(bd.BayesdropError, match="`model`.*'regression_mlp' for the regression data set 'yacht'"):
        ExperimentConfig(dataset="yacht", model="lenet5", tau=1.0)
    with pytest.raises(bd.BayesdropError, match="`tau`.*log-likelihood.*val_fraction > 0"):
        ExperimentConfig(dataset="yacht", model="regression_mlp", val_fraction=0)
    assert ExperimentConfig(dataset="yacht", model="regression_mlp", val_fraction=0.2).tau is None  # estimated
    with pytest.raises(bd.BayesdropError, match="`model`.*a classifier"):
        ExperimentConfig(dataset="digits", model="regression_mlp")
    with pytest.raises(bd.BayesdropError, match="`split`.*only the UCI sets"):
        ExperimentConfig(dataset="digits", split=2)
    heteroscedastic = ExperimentConfig(dataset="yacht", model="regression_mlp", model_options={"heteroscedastic": True})
    assert heteroscedastic.tau is None
    # a new optional field left at None keeps the keys of existing runs
    assert ExperimentConfig(**TINY).key() == ExperimentConfig(**TINY, split=None).key()
    assert "yacht3_" in ExperimentConfig(dataset="yacht", split=3, model="regression_mlp", tau=1.0).slug()


@pytest.mark.parametrize("method", ["dropout", "dropconnect"])
def test_uci_regression_run_end_to_end(shared_data, tmp_path, method: str) -> None:
    cfg = ExperimentConfig(
        dataset="yacht",
        split=2,
        model="regression_mlp",
        method=method,
        rate=0.05,
        tau=2.0,
        epochs=3,
        batch_size=32,
        samples=30,
        val_samples=3,
        data_dir=str(shared_data / "uci"),
        output_dir=str(tmp_path),
        tracking=False,
    )
    result = run_experiment(cfg, verbose=False)
    m = result.metrics
    assert m["task"] == "regression" and m["n_examples"] == 31 and m["n_samples"] == 30
    # the metrics are those of the MC prediction in the targets' units, with tau's aleatoric part
    _, mc, splits = run_module.load_trained(result.run_dir)
    test = TensorDataset(splits.x_test, splits.y_test)
    pred = evaluate_model(mc, test, samples=30, seed=cfg.seed, keep_samples=True).prediction
    assert pred.aleatoric.flatten().tolist() == pytest.approx([1 / 2.0] * 31)
    y = splits.y_test.double()
    assert m["rmse"] == pytest.approx(((pred.mean - y) ** 2).mean().sqrt().item(), rel=1e-6)
    means = pred.samples[..., 0].double()  # (B, T), in the targets' units
    assert means.mean(1).tolist() == pytest.approx(pred.mean.flatten().tolist(), rel=1e-6)
    log_n = torch.logsumexp(-0.5 * 2.0 * (y - means) ** 2, dim=1) - math.log(30)
    ll = log_n - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(2.0)
    assert m["mc_log_likelihood"] == pytest.approx(ll.mean().item(), rel=1e-6)
    assert [Path(p).name.split("_")[0] for p in result.charts] == ["regression-calibration"]
    assert all(Path(p).stat().st_size > 1000 for p in result.charts)


def test_regression_sweep_chart_titles_say_what_is_better(tmp_path) -> None:
    from bayesdrop.experiments.charts import metric_title

    assert metric_title("rmse") == "RMSE (lower is better)"
    assert metric_title("mc_log_likelihood") == "test log-likelihood (higher is better)"
    assert metric_title("picp_95") == "coverage of the 95% interval (ideal 0.95)"
    rows = [
        {"method": m, "rate": r, "samples": 100, "rmse": 1 + r, "mc_log_likelihood": -1 - r, "picp_95": 0.9 + r}
        for m in ("dropout", "dropconnect")
        for r in (0.01, 0.05)
    ]
    assert plot_metric_vs(rows, "rate", tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_shipped_sweep_configs_are_valid_2x2x2_grids(path) -> None:
    grid = expand_grid(load_config(path))
    assert len(grid) == 8 and len({cfg.key() for cfg in grid}) == 8
    assert len({cfg.train_key() for cfg in grid}) == 4  # runs differing only in samples share a model


def test_uci_regression_run_estimates_tau_on_the_validation_split(shared_data, tmp_path) -> None:
    cfg = ExperimentConfig(
        dataset="yacht",
        model="regression_mlp",
        rate=0.01,
        epochs=3,
        batch_size=32,
        samples=20,
        val_fraction=0.2,
        val_samples=3,
        data_dir=str(shared_data / "uci"),
        output_dir=str(tmp_path),
        tracking=False,
        charts=False,
    )
    result = run_experiment(cfg, verbose=False)
    tau = result.metrics["tau_estimated"]
    _, mc, splits = run_module.load_trained(result.run_dir)
    assert mc.tau == tau  # kept with the model
    check = run_module.wrap_model(run_module.build_model(cfg, splits), cfg, "regression")
    run_module.network(check).load_state_dict(run_module.network(mc).state_dict())
    assert check.fit_tau(splits.x_val, splits.y_val, samples=20, seed=cfg.seed) == pytest.approx(tau, rel=1e-9)
    assert result.metrics["aleatoric"] == pytest.approx(1 / tau, rel=1e-6)
    assert math.isfinite(result.metrics["mc_log_likelihood"])
