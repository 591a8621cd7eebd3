"""UCI loader, the batched grid model and the reproduction protocol (bayesdrop.reproduce.uci)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from bayesdrop import BayesdropError
from bayesdrop.data.uci import UCI_DATASETS, load_uci, uci_dataset_info
from bayesdrop.reproduce import uci as rep

PAPER_SIZES = {  # (N, Q) from the paper's Table 1 (reference/gal2016.md)
    "boston": (506, 13),
    "concrete": (1030, 8),
    "energy": (768, 8),
    "kin8nm": (8192, 8),
    "naval": (11934, 16),
    "power": (9568, 4),
    "protein": (45730, 9),
    "wine": (1599, 11),
    "yacht": (308, 6),
}


@pytest.fixture(scope="module")
def uci_root(shared_data):
    return shared_data / "uci"


# ----------------------------------------------------------------------------- loader


@pytest.mark.parametrize("name", list(UCI_DATASETS))
def test_load_uci_shapes_match_the_paper(uci_root, name):
    n, q = PAPER_SIZES[name]
    info = uci_dataset_info(name, uci_root)
    last = load_uci(name, uci_root, split=info["n_splits"] - 1)
    assert info["n_splits"] == (5 if name == "protein" else 20)
    assert info["n_hidden"] == (100 if name == "protein" else 50)
    assert last.x_train.shape[1] == last.x_test.shape[1] == q
    assert last.x_train.shape[0] + last.x_test.shape[0] == n
    assert abs(last.x_train.shape[0] - 0.9 * n) < 1  # the published 90/10 splits
    assert last.y_train.shape == (last.x_train.shape[0],)
    assert last.x_train.dtype == torch.float64
    assert len(last.dropout_rates) == 4 and len(last.tau_values) == 3


def test_load_uci_columns_and_rows_follow_the_index_files(uci_root):
    folder = uci_root / "naval-propulsion-plant"
    data = np.loadtxt(folder / "data.txt")
    train = np.loadtxt(folder / "index_train_3.txt").astype(int)
    test = np.loadtxt(folder / "index_test_3.txt").astype(int)
    split = load_uci("naval", uci_root, split=3)
    assert data.shape[1] == 18  # column 17 is in neither index file
    np.testing.assert_array_equal(split.x_train.numpy(), data[train][:, :16])
    np.testing.assert_array_equal(split.y_train.numpy(), data[train][:, 16])
    np.testing.assert_array_equal(split.x_test.numpy(), data[test][:, :16])
    np.testing.assert_array_equal(split.y_test.numpy(), data[test][:, 16])
    assert not np.allclose(split.y_train.numpy(), data[train][:, 17])
    assert set(train).isdisjoint(test)


def test_load_uci_accepts_folder_names_and_titles(uci_root):
    a = load_uci("bostonHousing", uci_root, 1)
    b = load_uci("Boston Housing", uci_root, 1)
    assert a.name == b.name == "boston"
    assert torch.equal(a.y_test, b.y_test)


def test_load_uci_errors_name_the_argument(uci_root, tmp_path):
    with pytest.raises(BayesdropError, match="`name`.*'mnist'"):
        load_uci("mnist", uci_root)
    with pytest.raises(BayesdropError, match="`split`.*\\[0, 5\\).*5"):
        load_uci("protein", uci_root, split=5)
    with pytest.raises(BayesdropError, match="`root`.*not a folder"):
        load_uci("yacht", tmp_path / "missing")
    with pytest.raises(BayesdropError, match="`root`.*'yacht'.*data.txt"):
        load_uci("yacht", tmp_path)


# ----------------------------------------------------------------------------- weight decay


@pytest.mark.parametrize(("p", "n", "tau"), [(0.05, 455, 0.1), (0.005, 32925, 0.075)])
def test_weight_decay_is_the_prior_formula(p, n, tau):
    # lambda = l^2 (1 - p) / (2 N tau) with l = 1e-2, as in the authors' code
    x = torch.zeros(1, n, 2, dtype=torch.float64)
    seen = {}

    def spy(model, xs, ys, *, weight_decay, **kw):
        seen["wd"] = weight_decay
        return model

    orig = rep.train_batched
    rep.train_batched = spy
    try:
        rep._fit_stage(
            x,
            x[..., 0],
            [[(p, tau)]],
            hidden=3,
            epochs=0,
            batch_size=8,
            seed=0,
            dtype=torch.float64,
        )
    finally:
        rep.train_batched = orig
    assert seen["wd"].tolist() == pytest.approx([1e-4 * (1 - p) / (2 * n * tau)], rel=1e-12)


# ----------------------------------------------------------------------------- batched model


def _reference_training(model, x, y, wd, epochs, batch_size, seed):
    """Train each network alone with autograd + torch.optim.Adam on the same draws."""
    s_count, n, q = x.shape
    g_count, h = model.n_networks, model.hidden
    j_count = g_count // s_count
    nets = []
    for g in range(g_count):
        lin1, lin2 = nn.Linear(q, h, dtype=x.dtype), nn.Linear(h, 1, dtype=x.dtype)
        with torch.no_grad():
            lin1.weight.copy_(model.w1[g].T)
            lin1.bias.copy_(model.b1[g, 0])
            lin2.weight.copy_(model.w2[g].T)
            lin2.bias.copy_(model.b2[g, 0])
        nets.append((lin1, lin2, torch.optim.Adam([*lin1.parameters(), *lin2.parameters()])))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order, u = rep._epoch_draws(gen, s_count, n, q + h, x.dtype)
        for g, (lin1, lin2, opt) in enumerate(nets):
            s, p = g // j_count, float(model.p[g])
            for start in range(0, n, batch_size):
                rows = order[s, start : start + batch_size]
                ub = u[s, start : start + batch_size]
                keep = (ub >= p).to(x.dtype) / (1 - p)
                hid = torch.relu(lin1(x[s, rows] * keep[:, :q])) * keep[:, q:]
                loss = ((lin2(hid)[:, 0] - y[s, rows]) ** 2).mean()
                loss = loss + wd[g] * (lin1.weight.square().sum() + lin2.weight.square().sum())
                opt.zero_grad()
                loss.backward()
                opt.step()
    return nets


@pytest.mark.parametrize(
    "rates",
    [
        [0.1, 0.1, 0.3, 0.0, 0.2, 0.5],  # 2 splits x 3 networks, 3 rate groups each
        [0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.0, 0.0, 0.0, 0.3, 0.3, 0.3],  # 2 x 2 rates x 3 taus
    ],
)
def test_batched_training_equals_separate_networks(rates):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 21, 3, dtype=torch.float64, generator=gen)
    noise = 0.1 * torch.randn(2, 21, dtype=torch.float64, generator=gen)
    y = x[..., 0] - 0.5 * x[..., 1] ** 2 + noise
    model = rep.BatchedMLP(len(rates), 3, 5, rates, dtype=torch.float64, generator=gen)
    wd = torch.rand(len(rates), dtype=torch.float64, generator=gen) * 1e-2
    nets = _reference_training(model, x, y, wd, epochs=3, batch_size=8, seed=11)
    rep.train_batched(model, x, y, weight_decay=wd, epochs=3, batch_size=8, seed=11)
    for g, (lin1, lin2, _) in enumerate(nets):
        torch.testing.assert_close(model.w1[g], lin1.weight.T, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(model.b1[g, 0], lin1.bias, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(model.w2[g], lin2.weight.T, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(model.b2[g, 0], lin2.bias, rtol=1e-9, atol=1e-11)
    assert not torch.allclose(model.w1[0], model.w1[1])  # different weight decay, different fit


def test_batched_forward_equals_its_members():
    gen = torch.Generator().manual_seed(0)
    model = rep.BatchedMLP(4, 3, 6, [0.1, 0.1, 0.2, 0.3], dtype=torch.float64, generator=gen)
    model.set_standardization(
        torch.randn(4, 3, dtype=torch.float64, generator=gen),
        torch.rand(4, 3, dtype=torch.float64, generator=gen) + 0.5,
        torch.randn(4, dtype=torch.float64, generator=gen),
        torch.rand(4, dtype=torch.float64, generator=gen) + 0.5,
    )
    x = torch.randn(7, 4, 3, dtype=torch.float64, generator=gen)
    out = model.eval()(x)
    assert out.shape == (7, 4)
    for g in range(4):
        torch.testing.assert_close(model.member(g).eval()(x[:, g])[:, 0], out[:, g])
    # in training mode each rate group draws its own masks; p = 0 groups are deterministic
    zero = rep.BatchedMLP(2, 3, 6, [0.0, 0.5], dtype=torch.float64, generator=gen).train()
    a, b = zero(x[:, :2]), zero(x[:, :2])
    torch.testing.assert_close(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, 1], b[:, 1])


def test_batched_mlp_errors_name_the_argument():
    with pytest.raises(BayesdropError, match="`p`"):
        rep.BatchedMLP(2, 3, 4, [0.1])
    with pytest.raises(BayesdropError, match="`x`.*\\(N, 2, 3\\)"):
        rep.BatchedMLP(2, 3, 4, 0.1)(torch.zeros(5, 3, 3))
    with pytest.raises(BayesdropError, match="`g`"):
        rep.BatchedMLP(2, 3, 4, 0.1).member(2)


# ----------------------------------------------------------------------------- end to end


def test_yacht_end_to_end_and_results_files(uci_root, tmp_path):
    rec = rep.run_uci("yacht", uci_root, "grid4000", n_splits=2, epochs=3, samples=50, val_samples=20, seed=1)
    assert rec["n_splits"] == 2 and rec["epochs"] == 3 and rec["samples"] == 50
    assert len(rec["val_ll"]) == 2 and len(rec["val_ll"][0]) == 12  # 4 rates x 3 taus
    for s, lls in enumerate(rec["val_ll"]):
        assert rec["chosen"][s] == rec["grid"][int(np.argmax(lls))]
    assert math.isfinite(rec["rmse_mean"]) and math.isfinite(rec["ll_mean"])
    assert rec["rmse_mean"] == pytest.approx(np.mean(rec["per_split"]["rmse"]))
    assert rec["ll_se"] == pytest.approx(np.std(rec["per_split"]["ll"], ddof=1) / math.sqrt(2))
    rep.write_results(tmp_path, [rec])
    stored = json.loads((tmp_path / "uci.json").read_text())
    assert stored["settings"]["grid4000"]["yacht"]["ll_mean"] == rec["ll_mean"]
    table = (tmp_path / "uci.md").read_text()
    assert "Yacht Hydrodynamics" in table and "0.67 ±0.05" in table  # published 2018 RMSE
    assert not list(tmp_path.glob(".*.tmp"))


def test_marks_compare_within_standard_errors():
    assert rep._mark(1.0, 0.1, 1.15, 0.05, 2, higher=False) == "= equal"
    assert rep._mark(1.0, 0.01, 1.15, 0.05, 2, higher=False) == "▲ better"
    assert rep._mark(-1.5, 0.01, -1.25, 0.02, 2, higher=True) == "▼ worse"


def test_cli_rejects_unknown_dataset_and_bad_jobs(uci_root, capsys):
    with pytest.raises(SystemExit) as exit_info:
        rep.main(["--dataset", "yacht,mnist", "--root", str(uci_root), "--no-write"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--dataset" in err and "'mnist'" in err and "yacht" in err
    with pytest.raises(SystemExit):
        rep.main(["--dataset", "yacht", "--jobs", "0", "--root", str(uci_root), "--no-write"])
    assert "--jobs" in capsys.readouterr().err


def test_cli_two_jobs_merge_results_and_log_each_data_set_to_mlflow(uci_root, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--dataset", "yacht,boston", "--setting", "table1", "--root", str(uci_root), "--out", str(tmp_path)]
    argv += ["--splits", "2", "--epochs", "2", "--samples", "20", "--val-samples", "5", "--jobs", "2", "--mlflow", uri]
    threads = torch.get_num_threads()
    try:
        assert rep.main(argv) == 0  # sets this process to --threads 1, as its workers
        # the same seed per data set whichever process runs it: yacht alone gives the same numbers
        alone = rep.run_uci("yacht", uci_root, "table1", n_splits=2, epochs=2, samples=20, val_samples=5, seed=800)
    finally:
        torch.set_num_threads(threads)
    stored = json.loads((tmp_path / "uci.json").read_text())
    assert set(stored["settings"]["table1"]) == {"yacht", "boston"}
    run = stored["table_runs"]["table1"]
    assert sorted(run["datasets"]) == ["boston", "yacht"] and run["jobs"] == 2
    assert run["wall_seconds"] > 0 and run["cpu_seconds"] == pytest.approx(
        sum(r["cpu_seconds"] for r in stored["settings"]["table1"].values())
    )
    assert "Last run of several data sets:** 2 data sets (boston, yacht)" in (tmp_path / "uci.md").read_text()
    assert alone["per_split"]["rmse"] == pytest.approx(stored["settings"]["table1"]["yacht"]["per_split"]["rmse"])

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("gal2016-uci")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["dataset"] for r in runs) == ["boston", "yacht"]
    for r in runs:
        rec = stored["settings"]["table1"][r.data.params["dataset"]]
        assert r.info.status == "FINISHED"
        assert r.data.metrics["rmse_mean"] == pytest.approx(rec["rmse_mean"])
        assert r.data.metrics["ll_se"] == pytest.approx(rec["ll_se"])
        history = client.get_metric_history(r.info.run_id, "split_ll")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(rec["per_split"]["ll"])


def test_extrapolation_scales_training_only():
    rec = {
        "dataset": "yacht",
        "setting": "grid4000",
        "epochs": 40,
        "n_splits": 20,
        "samples": 10_000,
        "machine": "m",
        "load_average_at_start": 1.0,
        "timing": {
            "select_train_s": 2.0,
            "select_predict_s": 3.0,
            "train_s": 1.0,
            "test_predict_s": 5.0,
            "total_s": 11.0,
            "select_train_cpu_s": 1.0,
            "select_predict_cpu_s": 1.0,
            "train_cpu_s": 0.5,
            "test_predict_cpu_s": 2.0,
            "cpu_s": 4.5,
        },
    }
    est = rep.extrapolate(rec, 4000)
    assert est["extrapolated_seconds"] == pytest.approx(3.0 * 100 + 3.0 + 5.0)
    assert est["extrapolated_cpu_seconds"] == pytest.approx(1.5 * 100 + 1.0 + 2.0)
    rec["samples"] = 1_000  # a run with fewer test samples: its prediction time scales up
    est = rep.extrapolate(rec, 4000, full_samples=10_000)
    assert est["extrapolated_seconds"] == pytest.approx(3.0 * 100 + 3.0 + 50.0)
    full = {"setting": "table1", "timing": {**rec["timing"], "test_predict_s": 40.0}}
    est = rep.extrapolate(rec, 4000, predict_from=full)
    assert est["extrapolated_seconds"] == pytest.approx(3.0 * 100 + 3.0 + 40.0)
    # the rendered estimate says when the full run has not been made
    est |= {"measured_epochs": 40, "measured_samples": 1_000, "measured_seconds": 11.0, "measured_cpu_seconds": 4.5}
    table = rep.render_markdown({"settings": {}, "estimates": {"grid4000": {"yacht": est}}})
    row = next(line for line in table.splitlines() if line.startswith("| Yacht"))
    assert row.endswith("| 4000 | 343 (153) | table1 | 1.0 | not run |")
