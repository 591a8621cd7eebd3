"""Active-learning experiments: configs and grids, summaries, resumable tracked runs, Ray
repeats, the CLI and the charts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import bayesdrop as bd
from bayesdrop.active import (
    ActiveConfig,
    OutOfTime,
    active_grid,
    labels_to_accuracy,
    learning_curve_area,
    load_active_data,
    run_active,
    run_active_grid,
    summarize,
)

# two rounds of a tiny protocol on scikit-learn's digits: seconds per run
TINY = dict(
    dataset="digits",
    budget=30,
    samples=5,
    eval_samples=3,
    test_size=200,
    pool_subset=100,
    epochs=2,
    epoch_items=64,
    validation=50,
)


def test_grid_is_the_product_of_list_settings_seed_major():
    configs = active_grid({**TINY, "heuristic": ["bald", "random"], "seed": [0, 1, 2], "dropconnect_layers": ["a"]})
    assert [(c.seed, c.heuristic) for c in configs] == [(s, h) for s in (0, 1, 2) for h in ("bald", "random")]
    assert configs[0].dropconnect_layers == ("a",)  # a list-valued setting is one value
    assert len({c.run_name() for c in configs}) == 6
    assert configs[0].key() == ActiveConfig(**{**TINY, "output_dir": "elsewhere", "dropconnect_layers": ("a",)}).key()
    with pytest.raises(bd.BayesdropError, match=r"Unknown setting\(s\) \[.heuristics.\] for ActiveConfig"):
        active_grid({"heuristics": ["bald"]})


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"dataset": "cifar"}, "dataset"),
        ({"method": "dropconnect"}, "rate"),
        ({"heuristic": "bold"}, "bold"),
        ({"acquire": 0}, "acquire"),
        ({"rate": 1.5}, "rate"),
        ({"patience": 0}, "patience"),
    ],
)
def test_config_rejects_bad_settings_by_name(bad, match):
    with pytest.raises((bd.BayesdropError, ValueError), match=match):
        ActiveConfig(**bad)


def test_labels_to_accuracy_and_curve_area_match_direct_formulas():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = np.cumsum(rng.integers(1, 20, size=30)) + 20
        acc = rng.uniform(0.5, 1.0, size=30)
        t = float(rng.uniform(0.6, 0.99))
        hits = np.flatnonzero(acc >= t)
        assert labels_to_accuracy(labels.tolist(), acc.tolist(), t) == (int(labels[hits[0]]) if hits.size else None)
        expected_area = np.trapezoid(acc, labels) / (labels[-1] - labels[0])
        assert learning_curve_area(labels.tolist(), acc.tolist()) == pytest.approx(expected_area, rel=1e-12)


def _result(heuristic, seed, accuracy, labels=(20, 30, 40, 50)):
    return bd.active.ActiveResult(
        config={**ActiveConfig(heuristic=heuristic, seed=seed).to_dict()},
        labels=list(labels),
        accuracy=list(accuracy),
        nll=[1.0] * len(labels),
        ece=[0.1] * len(labels),
        acquired=[[1]] * len(labels),
        cpu_seconds=10.0,
        wall_seconds=10.0,
    )


def test_summarize_reports_labels_to_each_threshold_with_quartiles_over_seeds():
    results = [
        _result("bald", 0, [0.5, 0.91, 0.96, 0.97]),
        _result("bald", 1, [0.5, 0.8, 0.92, 0.97]),
        _result("bald", 2, [0.5, 0.8, 0.85, 0.91]),
        _result("random", 0, [0.5, 0.6, 0.7, 0.8]),
    ]
    s = summarize(results, thresholds=(0.9, 0.95))
    assert s["bald"]["labels_to_90"] == [30, 40, 50] and s["bald"]["labels_to_95"] == [40, 50, None]
    # quartiles of the seeds that reached it, as numpy's linear percentiles
    assert s["bald"]["labels_to_90_quartiles"] == pytest.approx(np.percentile([30, 40, 50], [25, 50, 75]))
    assert s["bald"]["labels_to_95_quartiles"] == pytest.approx(np.percentile([40, 50], [25, 50, 75]))
    assert s["random"]["labels_to_90"] == [None] and s["random"]["labels_to_90_quartiles"] is None
    # a second axis that varies names the curves by it
    mixed = summarize(
        [
            _result("bald", 0, [0.5] * 4),
            bd.active.ActiveResult(
                **{**_result("bald", 0, [0.6] * 4).to_dict(), "config": {**ActiveConfig(samples=20).to_dict()}}
            ),
        ]
    )
    assert sorted(mixed) == ["bald, K=100", "bald, K=20"]


def test_first_picks_profiles_the_first_acquired_items_of_each_curve_over_its_seeds():
    torch.manual_seed(3)
    x, y = torch.rand(40, 1, 4, 4) * 2.0, torch.arange(40) % 4  # intensities scaled by the maximum
    first = bd.active.ActiveResult(
        **{**_result("bald", 0, [0.5] * 3, (20, 30, 40)).to_dict(), "acquired": [[3, 7], [8], [1]]}
    )
    second = bd.active.ActiveResult(
        **{**_result("bald", 1, [0.5] * 3, (20, 30, 40)).to_dict(), "acquired": [[4], [5, 6], []]}
    )
    other = bd.active.ActiveResult(
        **{**_result("random", 0, [0.5] * 3, (20, 30, 40)).to_dict(), "acquired": [[0], [2], [9]]}
    )
    picks = bd.active.first_picks([first, second, other], x, y, picks=3)
    intensity = x.flatten(1).double().mean(1) / x.max()
    expected = [3, 7, 8, 4, 5, 6]  # three per seed, in acquisition order
    assert picks["bald"]["mean_intensity"] == pytest.approx(float(intensity[expected].mean()), rel=1e-12)
    assert picks["bald"]["class_share"] == pytest.approx(
        [np.mean(y[expected].numpy() == c) for c in range(4)], abs=1e-3
    )
    assert picks["random"]["class_share"] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0], abs=1e-3)
    assert picks["all items"]["class_share"] == pytest.approx([0.25] * 4)
    assert picks["all items"]["mean_intensity"] == pytest.approx(float(intensity.mean()), rel=1e-12)


def test_data_parts_are_disjoint_and_seeded():
    c = ActiveConfig(**TINY)
    a, b = load_active_data(c), load_active_data(c)
    assert a.x.shape[0] + a.x_test.shape[0] == 1797 and a.x_test.shape[0] == 200
    assert len(a.validation) == 50 and a.validation == b.validation and a.num_classes == 10
    assert bool((a.x_test == b.x_test).all())
    flat = {tuple(row.flatten().tolist()[::37]) for row in a.x_test}
    assert sum(tuple(row.flatten().tolist()[::37]) in flat for row in a.x[:300]) < 5  # no test item in the pool


def test_run_stopped_by_its_deadline_resumes_to_the_uninterrupted_result_and_tracks_every_round(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = ActiveConfig(**TINY, heuristic="bald", output_dir="a", tracking=True, experiment_name="al")
    with pytest.raises(OutOfTime):
        run_active(config, verbose=False, deadline=0.0)  # stops after round 0
    assert json.loads((config.folder() / "state.json").read_text())["rounds"][0]["acquired"]
    resumed = run_active(config, verbose=False)
    straight = run_active(ActiveConfig(**TINY, heuristic="bald", output_dir="b"), verbose=False)
    assert resumed.labels == straight.labels == [20, 30]
    assert resumed.acquired == straight.acquired and resumed.accuracy == straight.accuracy
    assert run_active(config, verbose=False).to_dict() == resumed.to_dict()  # finished: read back

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("al").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    (done,) = [r for r in runs if r.info.status == "FINISHED"]
    history = client.get_metric_history(done.info.run_id, "accuracy")
    assert [(m.step, m.value) for m in history] == list(enumerate(resumed.accuracy))
    assert {"nll", "ece", "labels", "train_seconds", "cpu_seconds"} <= set(done.data.metrics)
    assert done.data.params["heuristic"] == "bald" and done.data.params["samples"] == "5"
    logged = client.download_artifacts(done.info.run_id, "acquired/round_0000.json", str(tmp_path))
    assert json.loads(open(logged).read()) == resumed.acquired[0]


def test_a_run_held_by_a_live_process_is_refused_and_released_when_done(tmp_path):
    import os
    import socket

    from bayesdrop.experiments import RunFolderInUse

    config = ActiveConfig(**TINY, heuristic="random", output_dir=str(tmp_path))
    config.folder().mkdir(parents=True)
    lock = config.folder() / ".lock"
    lock.write_text(f"{socket.gethostname()} {os.getpid()}")  # held by a live process: this one
    with pytest.raises(RunFolderInUse, match=r"is in use by process"):
        run_active(config, verbose=False)
    assert not (config.folder() / "state.json").exists()  # nothing ran
    lock.unlink()
    assert run_active(config, verbose=False).labels == [20, 30]
    assert not lock.exists()  # released


def test_dropconnect_and_batchbald_runs(tmp_path):
    config = ActiveConfig(
        **{**TINY, "budget": 25},
        acquire=5,
        heuristic="batchbald",
        method="dropconnect",
        rate=0.5,
        output_dir=str(tmp_path),
    )
    result = run_active(config, verbose=False)
    assert result.labels == [20, 25] and len(set(result.acquired[0])) == 5
    assert "dropconnect0.5" in config.run_name()


@pytest.mark.slow
def test_repeats_run_as_trials_on_a_local_ray(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    configs = active_grid({**TINY, "heuristic": ["random", "max_entropy"], "output_dir": "ray"})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_active_grid(configs, ray=True, verbose=False)
    finally:
        ray.shutdown()
    local = run_active_grid([c.__class__(**{**c.to_dict(), "output_dir": "local"}) for c in configs], verbose=False)
    assert [r.acquired for r in on_ray] == [r.acquired for r in local]
    assert [r.config["heuristic"] for r in on_ray] == ["random", "max_entropy"]


def test_cli_runs_the_grid_writes_the_table_and_charts_and_resumes(tmp_path, monkeypatch, capsys):
    from bayesdrop.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "al.yaml").write_text("dataset: digits\nheuristic: [bald, random]\nsamples: 5\n")
    flags = ["--budget", "30", "--eval-samples", "3", "--test-size", "200", "--pool-subset", "100"]
    flags += ["--epochs", "2", "--epoch-items", "64", "--validation", "50", "--no-track"]
    assert main(["active", "--config", "al.yaml", *flags, "--thresholds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "| bald | 1 |" in out and "| random | 1 |" in out and "labels to 50%" in out
    folder = tmp_path / "runs" / "active"
    assert (folder / "active_learning_curves.png").stat().st_size > 10_000
    assert (folder / "active_acquired.png").stat().st_size > 10_000
    picks = json.loads((folder / "active_summary.json").read_text())["first_picks"]
    assert sorted(picks) == ["all items", "bald", "random"] and sum(picks["bald"]["class_share"]) == pytest.approx(1)
    assert len(list(folder.glob("digits-*/result.json"))) == 2
    assert not (tmp_path / "mlflow.db").exists()
    assert main(["active", "--config", "al.yaml", *flags, "--thresholds", "0.5"]) == 0  # read back
    assert "round" not in capsys.readouterr().out
    assert main(["active", "--dataset", "imagenet", "--no-track"]) == 2
    assert "dataset" in capsys.readouterr().err


def test_learning_curve_chart_draws_the_median_and_a_band_per_strategy():
    from bayesdrop.active import plot_learning_curves

    results = [_result("bald", s, [0.5 + 0.1 * s, 0.8, 0.9, 0.95]) for s in range(3)] + [
        _result("random", 0, [0.5] * 4)
    ]
    fig = plot_learning_curves(results, thresholds=(0.9,))
    ax = fig.axes[0]
    medians = [line for line in ax.get_lines() if "seed" in str(line.get_label())]
    assert [line.get_label() for line in medians] == ["bald (3 seeds)", "random (1 seed)"]
    assert medians[0].get_ydata()[0] == pytest.approx(0.6)  # median of 0.5, 0.6, 0.7
    assert len(ax.collections) == 1  # one band: only bald has several seeds


def test_reproduction_plan_shares_runs_between_experiments_and_orders_seeds_first():
    from bayesdrop.reproduce import active_learning as repro

    gal = repro.experiment_configs("gal_mnist")
    batch = repro.experiment_configs("batchbald_mnist")
    assert len(gal) == 15 and len(batch) == 6
    assert {c.run_name() for c in gal} & {c.run_name() for c in batch} == {
        c.run_name() for c in batch if c.heuristic == "bald"
    }  # BALD at batch 10 is one run for both experiments
    planned = repro._all_configs(["gal_mnist", "batchbald_mnist"])
    assert len(planned) == 18 and [c.seed for c in planned] == sorted(c.seed for c in planned)
    dropconnect = [c for c in repro.experiment_configs("fashion_dropconnect") if c.method == "dropconnect"]
    assert {c.samples for c in dropconnect} == {20, 100} and all(c.rate == 0.5 for c in dropconnect)
