"""CLUE reproductions (Antorán et al., ICLR 2021) with MC-dropout networks.

- ``real``: per data set (Credit, COMPAS with and without ``is_recid``, LSAT, Wine, MNIST test
  set) an MC-dropout network and a VAE; CLUEs for the 20% most uncertain test points; mean and
  median uncertainty before / after, L1 change, class flips, VAE log-likelihood of the
  explanations (``bayesdrop.explain.run_explain``).
- ``ground-truth``: the paper's computational evaluation. A VAEAC fitted to the real (x, y) is
  the ground truth: it draws an artificial data set of the real one's size, on which a new
  MC-dropout network, a VAE and an in-filling VAEAC are trained. The test points whose
  aleatoric entropy (under the new network) is at least 0.5 nats (at least the 100 most
  uncertain, at most 1,500) are explained by CLUE (sweeping
  lambda), local sensitivity (sweeping its step) and U-FIDO (sweeping its L1 weight); each set
  of explanations is scored under the ground truth: its mean entropy of p_gt(y | x'), its L1
  change per column, and its mean log p_gt(x').
- ``report``: ``docs/results/clue.{md,json}`` and the charts.

Every step writes its result atomically (models under ``docs/results/clue_runs/``, not
committed: they are rebuilt, seeded, when missing); a killed run resumes from the last result.

Run: ``python -m bayesdrop.reproduce.clue real``, ``... ground-truth``, ``... report``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

import bayesdrop as bd

from .. import training
from .._io import atomic_open
from ..data import shared_data_root
from ..data.tabular import load_tabular
from ..explain import VAEAC, ExplainConfig, clue, elbo_loss, run_explain, sensitivity, tabular_vae, ufido, vaeac_loss
from ..models import MLP, RegressionMLP
from ._common import _REPO, dataset_dir, machine_description, write_text_atomic

__all__ = ["REAL", "GROUND_TRUTH", "SWEEPS", "run_real", "run_ground_truth", "write_report"]

RESULTS = _REPO / "docs" / "results"
RUNS = RESULTS / "clue_runs"
REAL = ("credit", "compas", "compas-no-recid", "lsat", "wine", "mnist-10k")
GROUND_TRUTH = ("credit", "compas", "lsat", "wine")
SWEEPS = {
    "clue": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0],  # lambda (the distance weight, divided by d)
    "sensitivity": [0.03, 0.1, 0.3, 1.0, 3.0],  # mean absolute change per column (standardised)
    "ufido": [0.01, 0.03, 0.1, 0.3, 1.0],  # L1 weight on the hiding probabilities
}
THRESHOLD = 0.5  # nats of aleatoric entropy that make a test point "uncertain"
MAX_POINTS = 1500
MIN_POINTS = 100  # below the threshold too, when fewer points pass it (COMPAS)


def run_real(datasets: Sequence[str] = REAL) -> dict[str, Any]:
    out = {}
    for name in datasets:
        config = ExplainConfig(dataset=name, data_dir=dataset_dir(name), output_dir=str(RUNS / "real"))
        out[name] = run_explain(config)
    return out


def _save(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1)


def _load_or_fit(path: Path, model: torch.nn.Module, fit) -> float:
    """Load ``model`` from ``path`` or train it with ``fit()`` and save it atomically; returns
    the CPU seconds spent training (0 when loaded)."""
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return 0.0
    started = time.process_time()
    fit()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        torch.save(model.state_dict(), f)
    return time.process_time() - started


def _split(x: torch.Tensor, *rest: torch.Tensor, seed: int = 0):
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = len(x) // 10
    return [t[order[n_val:]] for t in (x, *rest)], [t[order[:n_val]] for t in (x, *rest)]


class _World:
    """The ground truth of one data set and the models trained on its artificial data."""

    def __init__(self, name: str) -> None:
        folder = RUNS / "ground_truth" / name
        data = load_tabular(name, shared_data_root())
        self.name, self.folder, self.task = name, folder, data.task
        self.widths = data.widths
        self.d = sum(self.widths)
        if data.task == "classification":
            classes = int(data.y_train.max()) + 1
            joint = torch.cat([data.x_train, torch.nn.functional.one_hot(data.y_train, classes).float()], 1)
        else:
            classes = 1  # one continuous target column (standardised)
            joint = torch.cat([data.x_train, data.y_train.reshape(-1, 1)], 1)
        self.target = len(self.widths)  # the label is the last feature of the joint rows
        self.cpu: dict[str, float] = {}
        with training.seeded(0):
            self.truth = VAEAC([*self.widths, classes], latent=8, width=200, depth=2, heteroscedastic=True)
        (train,), (val,) = _split(joint)
        self.cpu["ground_truth_vaeac"] = _load_or_fit(
            folder / "truth.pt",
            self.truth,
            lambda: training.fit(
                self.truth, TensorDataset(train), val_data=TensorDataset(val), epochs=60, batch_size=256,
                lr=1e-3, loss=vaeac_loss, patience=6, seed=0,
            ),
        )  # fmt: skip
        self.truth.eval()
        n_train, n_test = len(data.x_train), len(data.x_test)
        nothing = torch.ones(n_train + n_test, len(self.widths) + 1)
        generator = torch.Generator().manual_seed(1)
        drawn = self.truth.sample(torch.zeros(n_train + n_test, self.d + classes), nothing, generator)
        self.classes = classes
        self.x = drawn[:, : self.d]
        # labels from the ground truth's own p(y | x), the distribution the explanations are scored on
        if self.task == "classification":
            self.y = torch.multinomial(self.truth_probs(self.x), 1, generator=generator).squeeze(1)
        else:
            mean, var = self.truth_moments(self.x)
            self.y = (mean + var.sqrt() * torch.randn(mean.shape, generator=generator)).reshape(-1, 1)
        self.x_train, self.y_train = self.x[:n_train], self.y[:n_train]
        self.x_test, self.y_test = self.x[n_train:], self.y[n_train:]
        with training.seeded(1):
            if self.task == "classification":
                net = MLP(num_classes=classes, in_features=self.d, hidden=(200, 200), dropout=0.1)
            else:
                net = RegressionMLP(self.d, (200, 200), 1, dropout=0.1, placement="hidden", heteroscedastic=True)
        self.mc = bd.wrap(net) if self.task == "classification" else bd.wrap(net, task="regression", output="mean_var")
        (xt, yt), (xv, yv) = _split(self.x_train, self.y_train)
        self.cpu["network"] = _load_or_fit(
            folder / "net.pt",
            net,
            lambda: training.fit(
                self.mc, TensorDataset(xt, yt), task=self.task, val_data=TensorDataset(xv, yv), epochs=50,
                batch_size=256, weight_decay=1e-4, patience=5, seed=1,
            ),
        )  # fmt: skip
        net.eval()
        with training.seeded(2):
            self.vae = tabular_vae(self.widths, latent={"credit": 8}.get(name, 4))
        self.cpu["vae"] = _load_or_fit(
            folder / "vae.pt",
            self.vae,
            lambda: training.fit(
                self.vae, TensorDataset(xt), val_data=TensorDataset(xv), epochs=60, batch_size=256, loss=elbo_loss,
                patience=8, seed=2,
            ),
        )  # fmt: skip
        self.vae.eval()
        with training.seeded(3):
            self.infiller = VAEAC(self.widths, latent=8, width=200, depth=2)
        self.cpu["infilling_vaeac"] = _load_or_fit(
            folder / "infiller.pt",
            self.infiller,
            lambda: training.fit(
                self.infiller, TensorDataset(xt), val_data=TensorDataset(xv), epochs=60, batch_size=256,
                loss=vaeac_loss, patience=6, seed=3,
            ),
        )  # fmt: skip
        self.infiller.eval()
        with torch.no_grad():
            pred = self.mc.predict(self.x_test, samples=100, seed=0)
        aleatoric, epistemic = (
            pred.aleatoric.reshape(len(pred.mean), -1).sum(1),
            pred.epistemic.reshape(len(pred.mean), -1).sum(1),
        )
        if self.task == "classification":
            count = int((aleatoric >= THRESHOLD).sum())
        else:  # no nats threshold for a variance: the 20% most uncertain
            count = len(aleatoric) // 5
        count = min(max(count, MIN_POINTS), MAX_POINTS, len(aleatoric))
        self.sets = {"aleatoric": self.x_test[aleatoric.topk(count).indices]}  # the most uncertain first
        # the epistemic set: the test points the network disagrees with itself most on
        epistemic_count = min(max(len(epistemic) // 10, MIN_POINTS), MAX_POINTS, len(epistemic))
        self.sets["epistemic"] = self.x_test[epistemic.topk(epistemic_count).indices]
        self.points = self.sets["aleatoric"]
        if self.task == "classification":
            self.test_accuracy = float((pred.mean.argmax(1) == self.y_test).double().mean())
        else:  # RMSE in standardised units
            self.test_accuracy = float(((pred.mean - self.y_test) ** 2).mean().sqrt())

    def truth_moments(self, x: torch.Tensor, seed: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance ``(N,)`` of the ground truth p(y | x) (regression)."""
        rows = torch.cat([x, torch.zeros(len(x), 1)], 1)
        generator = torch.Generator().manual_seed(seed)
        return self.truth.conditional_moments(rows, self.target, samples=50, generator=generator)

    def truth_probs(self, x: torch.Tensor, seed: int = 4) -> torch.Tensor:
        """``(N, classes)`` the ground truth p(y | x)."""
        rows = torch.cat([x, torch.zeros(len(x), self.classes)], 1)
        generator = torch.Generator().manual_seed(seed)
        return self.truth.conditional_probs(rows, self.target, samples=50, generator=generator)

    def score(self, explanation: torch.Tensor, kind: str = "aleatoric") -> dict[str, float]:
        """Of explanations of the ``kind`` set: the ground truth's uncertainty (classification:
        entropy of p_gt(y | x'); regression: its standard deviation), the network's error under
        the ground truth (classification: 1 - p_gt(network's class | x'); regression: |network
        mean - ground-truth mean|), the L1 change per column and log p_gt(x')."""
        rows = torch.cat([explanation, torch.zeros(len(explanation), self.classes)], 1)
        generator = torch.Generator().manual_seed(5)
        log_p = self.truth.log_prob(rows, features=range(len(self.widths)), samples=50, generator=generator)
        with torch.no_grad():
            pred = self.mc.predict(explanation, samples=100, seed=7)
        if self.task == "classification":
            probs = self.truth_probs(explanation)
            uncertainty = -(probs * probs.clamp_min(1e-12).log()).sum(1)
            error = 1.0 - probs.gather(1, pred.mean.argmax(1)[:, None]).squeeze(1)
        else:
            mean, var = self.truth_moments(explanation)
            uncertainty = var.sqrt()
            error = (pred.mean.reshape(-1) - mean).abs()
        return {
            "h_gt": float(uncertainty.mean()),
            "error": float(error.mean()),
            "l1": float((explanation - self.sets[kind]).abs().sum(1).mean() / self.d),
            "log_p": float(log_p.mean()),
        }


def _explain(world: _World, method: str, value: float, kind: str = "aleatoric") -> torch.Tensor:
    points = world.sets[kind]
    if method == "clue":
        return clue(world.mc, world.vae, points, uncertainty=kind, lam=value, steps=50, samples=64).explanation
    if method == "sensitivity":
        return sensitivity(world.mc, points, value, uncertainty=kind, widths=world.widths)
    return ufido(world.mc, world.infiller, points, l1=value, uncertainty=kind, steps=50, samples=64)[0]


def _result_file(folder: Path, kind: str, method: str, value: float) -> Path:
    return folder / (f"{method}-{value:g}.json" if kind == "aleatoric" else f"{kind}-{method}-{value:g}.json")


def run_ground_truth(datasets: Sequence[str] = GROUND_TRUTH) -> dict[str, Any]:
    out = {}
    for name in datasets:
        world = _World(name)
        summary_path = world.folder / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        summary.update(
            {
                "task": world.task,
                "points": len(world.points),
                "epistemic_points": len(world.sets["epistemic"]),
                "test_accuracy_on_artificial_data": world.test_accuracy,
                "before": world.score(world.points),
                "epistemic_before": world.score(world.sets["epistemic"], "epistemic"),
                "cpu_seconds_training": {k: v for k, v in world.cpu.items() if v}
                or summary.get("cpu_seconds_training", {}),
            }
        )
        for kind in ("aleatoric", "epistemic"):
            for method, values in SWEEPS.items():
                for value in values:
                    path = _result_file(world.folder, kind, method, value)
                    if path.is_file():
                        continue
                    started = time.process_time()
                    explanation = _explain(world, method, value, kind)
                    scores = world.score(explanation, kind) | {
                        "value": value,
                        "cpu_seconds": time.process_time() - started,
                    }
                    _save(path, scores)
                    print(f"[{name}] {kind} {method} {value:g}: {scores}", flush=True)
        _save(summary_path, summary)
        out[name] = summary
    return out


def _ground_truth_tables(name: str) -> dict[str, Any] | None:
    folder = RUNS / "ground_truth" / name
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    tables: dict[str, dict] = {}
    for kind in ("aleatoric", "epistemic"):
        methods = {}
        for method, values in SWEEPS.items():
            files = [_result_file(folder, kind, method, v) for v in values]
            rows = [json.loads(f.read_text()) for f in files if f.is_file()]
            methods[method] = {
                key: [r.get(key) for r in rows] for key in ("value", "h_gt", "error", "l1", "log_p", "cpu_seconds")
            }
            methods[method]["sweep"] = methods[method].pop("value")
        tables[kind] = methods
    return {
        "task": summary.get("task", "classification"),
        "aleatoric": tables["aleatoric"],
        "epistemic": tables["epistemic"],
        "error_before": summary.get("epistemic_before", {}).get("error"),
        "epistemic_points": summary.get("epistemic_points"),
        "h_gt_before": summary["before"]["h_gt"],
        "log_p_before": summary["before"]["log_p"],
        "points": summary["points"],
        "test_accuracy_on_artificial_data": summary["test_accuracy_on_artificial_data"],
    }


def write_report() -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine_description(), "datasets": {}}
    lines = [
        "# CLUE with MC dropout: reproductions",
        "",
        "Departures from the paper: MC-dropout networks (2 x 200, p = 0.1, 100 samples to report) "
        "replace its SG-HMC BNNs; CLUE, sensitivity and U-FIDO use S = 64 fixed consistent masks "
        "while optimising and fresh masks to report; MNIST is its 10,000-image test set (8,000 to "
        "train on, 2,000 to explain). Built by `python -m bayesdrop.reproduce.clue real`, "
        "`... ground-truth` and `... report`.",
        "",
        f"Machine: {machine_description()}.",
        "",
        "## Real data: the 20% most uncertain test points (lambda = 1, total uncertainty)",
        "",
        "| data set | points | test score | uncertainty before (mean / median) | after (mean / median) "
        "| L1 / column | class flips | VAE log p original | VAE log p CLUE | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in REAL:
        config = ExplainConfig(dataset=name, data_dir=dataset_dir(name), output_dir=str(RUNS / "real"))
        path = config.result_path()
        entry: dict[str, Any] = {}
        if path.is_file():
            r = json.loads(path.read_text())
            entry["real"] = {k: v for k, v in r.items() if k != "config"}
            score = r.get("test_accuracy", r.get("test_rmse"))
            flips = f"{r['class_flip_rate']:.2f}" if "class_flip_rate" in r else "-"
            cpu = r.get("clue_cpu_seconds", 0) + r.get("net_cpu_seconds", 0) + r.get("vae_cpu_seconds", 0)
            before, after = r["before"]["total"], r["after"]["total"]
            cells = [
                name, str(r["points"]), f"{score:.3f}", f"{before['mean']:.3f} / {before['median']:.3f}",
                f"{after['mean']:.3f} / {after['median']:.3f}", f"{r['l1_per_column']['mean']:.3f}", flips,
                f"{r['log_p_original']['mean']:.1f}", f"{r['log_p_clue']['mean']:.1f}", f"{cpu:.0f}",
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(f"| {name} | not run yet | | | | | | | | |")
        gt = _ground_truth_tables(name) if name in GROUND_TRUTH else None
        if gt is not None:
            entry["ground_truth"] = gt
        report["datasets"][name] = entry
    lines += [
        "",
        "Charts (uncertainty histograms; per-feature changes of the six rows that lost the most uncertainty, "
        "or original | CLUE | difference for MNIST):",
        "",
    ]
    for name in REAL:
        charts = report["datasets"][name].get("real", {}).get("charts", [])
        links = [f"[{Path(c).name}]({Path(c).relative_to(RESULTS)})" for c in charts if Path(c).is_relative_to(RESULTS)]
        if links:
            lines.append(f"- {name}: " + ", ".join(links))
    mnist = [c for c in report["datasets"]["mnist-10k"].get("real", {}).get("charts", []) if c.endswith("images.png")]
    if mnist:
        lines += ["", f"![MNIST CLUEs]({Path(mnist[0]).relative_to(RESULTS)})"]
    lines += [
        "",
        "Test score: accuracy (classification) or RMSE in the target's units (regression). "
        "Uncertainty: predictive entropy in nats (classification) or predictive standard deviation "
        "in standardised target units (regression).",
        "",
        "## Computational evaluation (ground truth known; aleatoric set)",
        "",
    ]
    for name in GROUND_TRUTH:
        gt = report["datasets"][name].get("ground_truth")
        if gt is None:
            lines += [f"{name}: not run yet.", ""]
            continue
        lines += [
            f"### {name}",
            "",
            f"Aleatoric set: the {gt['points']} most aleatoric-uncertain test points ("
            + ("the top 20%" if gt.get("task") == "regression" else f">= {THRESHOLD} nats")
            + f", at least {MIN_POINTS}); ground-truth "
            + ("std" if gt.get("task") == "regression" else "entropy")
            + f" before {gt['h_gt_before']:.3f}, ground-truth log p "
            f"of the originals {gt['log_p_before']:.1f}. Epistemic set: the {gt.get('epistemic_points')} test "
            f"points with the highest mutual information (the top 10%, at least {MIN_POINTS}); the network's "
            f"error under the ground truth before: "
            + (f"{gt['error_before']:.3f}" if gt.get("error_before") is not None else "n/a")
            + (
                ". Network RMSE on the artificial test set (standardised): "
                f"{gt['test_accuracy_on_artificial_data']:.3f}."
                if gt.get("task") == "regression"
                else f". Network accuracy on the artificial test set: {gt['test_accuracy_on_artificial_data']:.3f}."
            ),
            "",
        ]
        regression = gt.get("task") == "regression"
        for kind, score, label in (
            ("aleatoric", "h_gt", "ground-truth std (standardised)" if regression else "ground-truth entropy"),
            ("epistemic", "error", "network abs. mean error (standardised)" if regression else "network error"),
        ):
            if not any(m["sweep"] for m in gt.get(kind, {}).values()):
                continue
            lines += [
                f"{kind.capitalize()} set:",
                "",
                f"| method | sweep value | {label} | L1 / column | ground-truth log p | CPU s |",
                "|---|---|---|---|---|---|",
            ]
            for method, m in gt[kind].items():
                for i, value in enumerate(m["sweep"]):
                    cells = [method, f"{value:g}", f"{m[score][i]:.3f}", f"{m['l1'][i]:.3f}", f"{m['log_p'][i]:.1f}"]
                    lines.append("| " + " | ".join([*cells, f"{m['cpu_seconds'][i]:.0f}"]) + " |")
            lines.append("")
        chart = RESULTS / f"clue_ground_truth_{name}.png"
        _ground_truth_chart(gt, name, chart)
        lines += ["", f"![{name}]({chart.name})", ""]
    notes = RESULTS / "clue_notes.md"
    if notes.is_file():
        lines += ["", notes.read_text()]
    write_text_atomic(RESULTS / "clue.md", "\n".join(lines) + "\n")
    out: dict[str, Any] = dict(report["datasets"])  # per data set at the top, as the issue asks
    cpu = 0.0
    for entry in report["datasets"].values():
        real = entry.get("real", {})
        cpu += sum(real.get(k, 0.0) for k in ("clue_cpu_seconds", "net_cpu_seconds", "vae_cpu_seconds"))
        for m in entry.get("ground_truth", {}).get("aleatoric", {}).values():
            cpu += sum(m["cpu_seconds"])
    for name in GROUND_TRUTH:
        summary = RUNS / "ground_truth" / name / "summary.json"
        if summary.is_file():
            cpu += sum(json.loads(summary.read_text()).get("cpu_seconds_training", {}).values())
    out["_about"] = {
        "machine": report["machine"],
        "commands": [
            "python -m bayesdrop.reproduce.clue real",
            "python -m bayesdrop.reproduce.clue ground-truth",
            "python -m bayesdrop.reproduce.clue report",
        ],
        "cpu_seconds_recorded": round(cpu, 1),
        "sweeps": SWEEPS,
        "threshold_nats": THRESHOLD,
    }
    write_text_atomic(RESULTS / "clue.json", json.dumps(out, indent=1, default=str))
    return report


def _ground_truth_chart(gt: dict[str, Any], name: str, path: Path) -> None:
    from ..plots._common import finish, new_figure

    fig = new_figure((10.0, 4.0))
    left, right = fig.subplots(1, 2)
    for method, m in gt["aleatoric"].items():
        left.plot(m["l1"], m["h_gt"], "o-", label=method)
        right.plot(m["log_p"], m["h_gt"], "o-", label=method)
    for ax, xlabel in ((left, "L1 change per column"), (right, "ground-truth log p(x')")):
        ax.axhline(gt["h_gt_before"], color="0.4", ls=":", lw=0.8, label="before")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ground-truth std" if gt.get("task") == "regression" else "ground-truth entropy (nats)")
        ax.grid(alpha=0.3)
    right.axvline(gt["log_p_before"], color="0.4", ls="--", lw=0.8)
    right.set_xscale("symlog", linthresh=10.0)  # sensitivity's log p collapses by orders of magnitude
    left.legend(fontsize=8)
    fig.suptitle(f"{name}: uncertainty removed vs change and vs likelihood (lower-left is better)", fontsize=10)
    finish(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bayesdrop.reproduce.clue",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("step", choices=("real", "ground-truth", "report"))
    parser.add_argument("--datasets", default=None, help="comma-separated subset")
    args = parser.parse_args(argv)
    chosen = [d for d in args.datasets.split(",") if d] if args.datasets else None
    if args.step == "real":
        run_real(chosen or REAL)
    elif args.step == "ground-truth":
        run_ground_truth(chosen or GROUND_TRUTH)
    else:
        write_report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
