"""Smoke and unit tests of the image and extrapolation experiments (bayesdrop.reproduce.images).

The pipelines run end to end on tiny budgets (a few hundred images, one epoch, few samples);
the computed pieces are checked against hand-worked values or direct formulas.
"""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import bayesdrop as bd
from bayesdrop.reproduce import co2, fashion_study, images, rotated_digit

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MAX_PNG_BYTES = 200_000


@pytest.fixture(autouse=True)
def restore_threads():
    """One torch thread (tiny models run fastest so on a busy machine), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _check_outputs(out: Path, stem: str, suffixes: tuple[str, ...]) -> None:
    for suffix in suffixes:
        f = out / f"{stem}{suffix}"
        assert f.is_file(), f
        assert f.stat().st_size > 0
    assert (out / f"{stem}.png").stat().st_size < MAX_PNG_BYTES
    assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


# ------------------------------------------------------------------------------ rotated digit
def test_rotated_digit_cli_end_to_end(shared_data, tmp_path):
    argv = [
        "rotated-digit",
        "--out",
        str(tmp_path),
        "--data",
        str(shared_data),
        "--epochs",
        "1",
        "--train-size",
        "300",
        "--samples",
        "8",
    ]
    assert images.main(argv) == 0
    _check_outputs(tmp_path, "rotated_digit", (".md", ".json", ".png"))
    summary = json.loads((tmp_path / "rotated_digit.json").read_text())
    assert len(summary["angles_deg"]) == 12
    assert summary["angles_deg"][0] == 0.0 and summary["angles_deg"][-1] == pytest.approx(110.0)
    assert len(summary["predicted"]) == 12 and all(0 <= c <= 9 for c in summary["predicted"])
    assert summary["samples"] == 8 and summary["train_size"] == 300
    text = (tmp_path / "rotated_digit.md").read_text()
    assert "python -m bayesdrop.reproduce.images rotated-digit --out" in text
    assert "only the 10,000-image MNIST test set" in text


def test_rotated_digit_samples_are_consistent(shared_data):
    torch.manual_seed(42)
    before = torch.get_rng_state()
    r = rotated_digit.run_rotated_digit(shared_data, epochs=1, train_size=200, samples=6, steps=5, total_angle=80.0)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's global RNG is left alone
    assert r.angles == pytest.approx([0.0, 20.0, 40.0, 60.0, 80.0])
    assert r.logits.shape == (5, 6, 10) and r.probs.shape == (5, 6, 10)
    # the logits and the classification samples come from the same dropout masks
    torch.testing.assert_close(r.logits.softmax(-1), r.probs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(r.mean_probs, r.probs.mean(1), atol=1e-5, rtol=1e-4)
    assert r.predicted == r.mean_probs.argmax(1).tolist()
    # the samples differ: dropout is on at prediction time
    assert float(r.logits.std(1).max()) > 0


def test_top_classes_and_change_steps():
    probs = torch.tensor(
        [
            [0.1, 0.8, 0.05, 0.05],
            [0.1, 0.5, 0.35, 0.05],
            [0.0, 0.2, 0.1, 0.7],
        ]
    )
    # predicted 1 and 3, then the highest remaining peak is class 2 (0.35)
    assert rotated_digit.top_classes(probs, 3) == [1, 2, 3]
    assert rotated_digit.top_classes(probs, 1) == [1, 3]  # all predicted classes are kept
    assert rotated_digit.change_steps([1, 1, 1, 5, 5, 7]) == [2, 3, 4, 5]
    assert rotated_digit.change_steps([4, 4, 4]) == []
    with pytest.raises(bd.BayesdropError, match="mean_probs"):
        rotated_digit.top_classes(torch.ones(4), 2)


# ------------------------------------------------------------------------------------- CO2
def test_band_summary_hand_checked():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    std = torch.tensor([1.0, 1.0, 2.0, 4.0, 6.0])
    s = co2.band_summary(x, std, train_max=1.0)
    assert s == {"std_in": 1.0, "std_near": 2.0, "std_far": 5.0, "ratio_far_in": 5.0}
    with pytest.raises(bd.BayesdropError, match="`x`"):
        co2.band_summary(x[:2], std[:2], train_max=1.0)
    with pytest.raises(bd.BayesdropError, match="`std`"):
        co2.band_summary(x, std[:3], train_max=1.0)


def test_estimate_tau_direct_formula():
    # a net whose output is 0 whatever the mask: MC mean 0, so tau = 1 / mean(y^2)
    net = nn.Sequential(nn.Linear(1, 1), nn.Dropout(0.5))
    nn.init.zeros_(net[0].weight)
    nn.init.zeros_(net[0].bias)
    x = torch.linspace(-1, 1, 8).reshape(-1, 1)
    y = torch.tensor([1.0, -1.0, 2.0, -2.0, 1.0, -1.0, 2.0, -2.0]).reshape(-1, 1)
    assert co2.estimate_tau(net, x, y, samples=5) == pytest.approx(1.0 / 2.5)


def test_bands_widen_away_from_the_data():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).reshape(-1, 1)
    y = torch.sin(3 * x)
    model, epochs = co2.train_regression_net(
        x, y, hidden=(64, 64), dropout=0.1, steps=150, batch_size=32, lr=3e-3, seed=0
    )
    assert epochs == 75  # 150 steps of 2 mini-batches per epoch
    grid = torch.cat([x, torch.linspace(3.0, 4.0, 16).reshape(-1, 1)])
    pred = bd.wrap(model, task="regression", tau=100.0).predict(grid, samples=100, seed=0)
    s = co2.band_summary(grid.reshape(-1), pred.epistemic.reshape(-1).sqrt(), train_max=1.0)
    assert s["ratio_far_in"] > 2.0
    torch.testing.assert_close(pred.total, pred.epistemic + 0.01, atol=1e-5, rtol=1e-4)


def test_training_leaves_the_global_rng_alone_and_repeats_from_its_seed():
    x = torch.linspace(-1, 1, 16).reshape(-1, 1)
    y = torch.sin(3 * x)
    nets = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        random.seed(global_seed)
        before = torch.get_rng_state(), random.getstate()
        model, _ = co2.train_regression_net(x, y, hidden=(8,), steps=4, batch_size=8, seed=3)
        assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
        nets.append([q.detach().clone() for q in model.parameters()])
    # the initialisation and the noise come from `seed`, not from the caller's global state
    assert all(torch.equal(a, b) for a, b in zip(*nets, strict=True))


def test_co2_end_to_end(shared_data, tmp_path):
    r = co2.run_co2(shared_data, out=tmp_path, steps=10, hidden=(32, 32), samples=10, test_stride=50, seed=1)
    _check_outputs(tmp_path, "co2", (".md", ".json", ".png"))
    assert r.x.numel() == 272 + 20
    assert bool((r.x[1:] >= r.x[:-1]).all())
    assert r.tau > 0 and r.std_ratio > 0
    assert r.mc_std.shape == r.mc_mean.shape == r.standard.shape == r.x.shape
    summary = json.loads((tmp_path / "co2.json").read_text())
    assert summary["steps"] == 10 and summary["samples"] == 10 and summary["dropout"] == 0.1
    with pytest.raises(bd.BayesdropError, match="`tau`"):
        co2.run_co2(shared_data, tau=-1.0, steps=1)


# --------------------------------------------------------------------------- Fashion study
@pytest.mark.parametrize("method", fashion_study.METHODS)
def test_study_models_and_deterministic_twin(method):
    torch.manual_seed(0)
    model, mc = fashion_study.build_model(method, 0.3, n_train=1000)
    x = torch.rand(4, 1, 28, 28)
    pred = mc.predict(x, samples=20, seed=0)
    assert float(pred.epistemic.max()) > 0, "the technique adds no randomness"
    det = fashion_study._deterministic(model, method, 0.3).predict(x, samples=1, seed=0)
    model.eval()
    with torch.no_grad():
        expected = model(x).softmax(1)
    torch.testing.assert_close(det.mean, expected, atol=1e-5, rtol=1e-4)
    has_dropout = any(isinstance(m, nn.Dropout) for m in model.modules())
    assert has_dropout == (method in ("dropout", "gaussian"))
    if method == "concrete":
        rates = fashion_study._learned_rates(model)
        assert rates == pytest.approx([0.3, 0.3], abs=1e-4)


def test_study_bad_arguments():
    with pytest.raises(bd.BayesdropError, match="`method`"):
        fashion_study.build_model("bernoulli", 0.3)
    with pytest.raises(bd.BayesdropError, match="`rate`"):
        fashion_study.build_model("dropout", 1.5)
    with pytest.raises(bd.BayesdropError, match="`methods`"):
        fashion_study.run_fashion_study(methods=("dropout", "mixout"))


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Fashion-MNIST not installed")
def test_fashion_study_end_to_end(shared_data, tmp_path):
    torch.manual_seed(42)
    before = torch.get_rng_state()
    r = fashion_study.run_fashion_study(
        shared_data,
        out=tmp_path,
        methods=("dropout", "concrete"),
        rates=(0.5,),
        samples=(1, 3),
        train_size=200,
        test_size=100,
        epochs=1,
        seed=0,
        verify=False,
    )
    assert torch.equal(torch.get_rng_state(), before)  # the caller's global RNG is left alone
    _check_outputs(tmp_path, "fashion_study", (".md", ".json", ".png"))
    # 1 fixed-rate technique x 1 rate + 1 Concrete run, each at det, T=1, T=3
    assert len(r.rows) == 2 * 3
    assert sorted({row["samples"] for row in r.rows}) == [0, 1, 3]
    for row in r.rows:
        assert 0 <= row["accuracy"] <= 1 and row["nll"] > 0
        assert (row["ood_auroc_mutual_information"] is None) == (row["samples"] <= 1)
    payload = json.loads((tmp_path / "fashion_study.json").read_text())
    assert payload["config"]["train_size"] == 200 and payload["config"]["test_size"] == 100
    assert len(payload["rows"]) == 6
    for row in r.rows:
        assert 0 < row["confidence"] <= 1
    text = (tmp_path / "fashion_study.md").read_text()
    assert "subsampled" in text and "| MC dropout | 0.5 |" in text


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit, match="2"):
        images.main(["co2", "--tau", "-1"])
    assert "--tau" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        images.main(["fashion-study", "--rates", "0.1,x"])
    assert "comma-separated numbers" in capsys.readouterr().err


# ------------------------------------------------------------------------ module structure
_REPRODUCE = Path(bd.__file__).parent / "reproduce"


def _package_imports() -> dict[str, set[str]]:
    """Each bayesdrop.reproduce module -> the modules of the package it imports (at the top or
    inside a function: a lazy import still closes a cycle)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(_REPRODUCE.glob("*.py")):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1 or module.startswith("bayesdrop.reproduce"):
                    inner = module.removeprefix("bayesdrop.reproduce").lstrip(".") if node.level == 0 else module
                    deps |= {inner.split(".")[0]} if inner else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[2] for a in node.names if a.name.startswith("bayesdrop.reproduce.")}
        graph[path.stem] = deps - {path.stem}
    return graph


def test_reproduce_modules_share_their_helpers_without_an_import_cycle():
    graph = _package_imports()
    done: set[str] = set()

    def visit(module: str, chain: tuple[str, ...]) -> None:
        if module in chain:
            pytest.fail("import cycle: " + " -> ".join((*chain, module)))
        if module not in done and module in graph:
            for dep in sorted(graph[module]):
                visit(dep, (*chain, module))
            done.add(module)

    for module in graph:
        visit(module, ())
    assert not [m for m, deps in graph.items() if "images" in deps]  # nobody imports the CLI module
    assert graph["_common"] == set()  # the shared helpers import nothing of the package
    assert {"co2", "fashion_study", "rotated_digit", "uci"} <= {m for m, deps in graph.items() if "_common" in deps}


def test_each_reproduction_module_imports_alone_in_a_fresh_interpreter():
    show = "import sys; print(sorted(m for m in sys.modules if m.startswith('bayesdrop.reproduce.')))"
    commands = {
        "images": "import bayesdrop.reproduce.images; " + show,
        "experiments": "import bayesdrop.reproduce.rotated_digit, bayesdrop.reproduce.co2, "
        "bayesdrop.reproduce.fashion_study, bayesdrop.reproduce.uci; " + show,
    }
    procs = {
        k: subprocess.Popen([sys.executable, "-c", c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k, c in commands.items()
    }
    out = {}
    for k, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out[k] = stdout.strip()
    assert out["images"] == "['bayesdrop.reproduce._common', 'bayesdrop.reproduce.images']"
    assert "bayesdrop.reproduce.images" not in out["experiments"]
