"""Fashion-MNIST dropout-technique study: MC dropout vs DropConnect vs Gaussian vs Concrete.

One model family (LeNet-5), the stochasticity at the same two places for every technique (the
inputs of its last two fully connected layers), each (technique, rate) trained once on a
seeded subsample of the Fashion-MNIST training set and evaluated at every number of MC samples
(and deterministically, with the noise off) on a subsample of the Fashion-MNIST test set, with
the same number of MNIST test digits as out-of-distribution inputs.

- MC dropout: ``LeNet5(dropout=p, placement="fc")``, the model's own dropout sampled.
- DropConnect: ``LeNet5(placement="none")`` wrapped with ``method="dropconnect"`` on the
  weights of ``classifier.2`` and ``classifier.4`` (the layers whose inputs dropout drops).
- Gaussian: the dropout model wrapped with ``method="gaussian"``: multiplicative
  ``N(1, p / (1 - p))`` noise at the dropout sites, in training and sampling.
- Concrete: ``bd.ConcreteDropout`` around the same two layers, rate learned (one run, started
  at ``concrete_init``); regularisers with length-scale 1e-2 and tau 1.

Metrics come from :func:`bayesdrop.metrics.evaluate`: accuracy, NLL, ECE (15 bins), AURC, and
the OOD AUROC of the predictive entropy and of the mutual information.

Run: ``python -m bayesdrop.reproduce.images fashion-study --out docs/results``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import TensorDataset

import bayesdrop as bd

from .. import metrics
from .._errors import expected
from ..data import load_fashion_mnist, load_ood_pair, subsample
from ..models import LeNet5
from ..training import fit
from ..training._utils import seeded
from ._common import load_average, machine_description, write_text_atomic

__all__ = ["METHODS", "METRICS", "FashionStudyResult", "build_model", "run_fashion_study"]

#: The dropout techniques compared.
METHODS = ("dropout", "dropconnect", "gaussian", "concrete")
#: Metric key of ``bayesdrop.metrics.evaluate`` -> (label, higher is better).
METRICS = {
    "accuracy": ("accuracy", True),
    "nll": ("NLL", False),
    "ece": ("ECE", False),
    "aurc": ("AURC", False),
    "ood_auroc_entropy": ("OOD AUROC (entropy)", True),
    "ood_auroc_mutual_information": ("OOD AUROC (MI)", True),
}
_LABELS = {"dropout": "MC dropout", "dropconnect": "DropConnect", "gaussian": "Gaussian", "concrete": "Concrete"}
_STOCHASTIC_LAYERS = ("classifier.2", "classifier.4")
_LENGTH_SCALE = 1e-2


@dataclass
class FashionStudyResult:
    """What :func:`run_fashion_study` measured.

    Attributes:
        rows: one dict per (method, rate, evaluation): ``method``, ``rate`` (the initial rate
            for Concrete), ``learned_rates`` (Concrete), ``samples`` (T; 0 = deterministic, the
            noise switched off), the metrics of :data:`METRICS`, ``confidence`` (mean
            max-probability), ``train_seconds``, ``eval_seconds``.
        config: the protocol actually run.
        table_markdown: the main results table (T = the largest number of samples).
        seconds: wall-clock seconds of the whole run.
    """

    rows: list[dict[str, Any]]
    config: dict[str, Any]
    table_markdown: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


def build_model(method: str, rate: float, *, n_train: int = 60000) -> tuple[nn.Module, bd.MCModel]:
    """The LeNet-5 of one technique and its wrapper (see the module docstring).

    Args:
        method: one of :data:`METHODS`.
        rate: dropout / DropConnect rate, Gaussian ``p`` (variance ``p / (1 - p)``), or the
            initial Concrete rate.
        n_train: training-set size N in the Concrete regularisers ``l^2 / N`` and ``2 / N``.

    Returns:
        ``(model, mc)``: the network and ``bd.wrap`` of it.
    """
    if method not in METHODS:
        raise expected("method", f"one of {METHODS}", method)
    if not isinstance(rate, int | float) or not 0.0 < rate < 1.0:
        raise expected("rate", "a float in (0, 1)", rate)
    if method in ("dropout", "gaussian"):
        model = LeNet5(dropout=rate, placement="fc")
        return model, bd.wrap(model, method=method)
    model = LeNet5(placement="none")
    if method == "dropconnect":
        return model, bd.wrap(model, method="dropconnect", p=rate, layers=list(_STOCHASTIC_LAYERS))
    for index in (2, 4):
        model.classifier[index] = bd.ConcreteDropout(
            model.classifier[index],
            init_p=rate,
            weight_regularizer=_LENGTH_SCALE**2 / n_train,
            dropout_regularizer=2.0 / n_train,
        )
    return model, bd.wrap(model)


def _deterministic(model: nn.Module, method: str, rate: float) -> bd.MCModel:
    """The same network with its noise switched off (rate 0): the standard prediction."""
    if method == "dropconnect":
        return bd.wrap(model, method="dropconnect", p=0.0, layers=list(_STOCHASTIC_LAYERS))
    return bd.wrap(model, method="gaussian" if method == "gaussian" else "dropout", p=0.0)


def _learned_rates(model: nn.Module) -> list[float]:
    layers = [m for m in model.modules() if isinstance(m, bd.ConcreteDropout)]
    return [round(float(m.p.detach()), 4) for m in layers]


def run_fashion_study(
    root: str | PathLike[str] | None = None,
    *,
    out: str | PathLike[str] | None = None,
    methods: Sequence[str] = METHODS,
    rates: Sequence[float] = (0.1, 0.3, 0.5),
    samples: Sequence[int] = (1, 10, 50),
    train_size: int = 30000,
    test_size: int = 5000,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 1e-3,
    concrete_init: float = 0.1,
    seed: int = 0,
    fashion_root: str | PathLike[str] | None = None,
    verify: bool = True,
    command: str = "python -m bayesdrop.reproduce.images fashion-study --out docs/results",
) -> FashionStudyResult:
    """Train every (method, rate) once, evaluate at every number of samples, write the report.

    Args:
        root: folder holding ``mnist/`` (the OOD digits), or None to search the usual places.
        out: folder for ``fashion_study.md``, ``.json`` and ``.png``; None writes nothing.
        methods: techniques, a subset of :data:`METHODS`.
        rates: rates of the fixed-rate techniques.
        samples: numbers of MC samples T to evaluate each model with.
        train_size: seeded subsample of the 60,000 Fashion-MNIST training images.
        test_size: seeded subsample of each test set (Fashion-MNIST and MNIST).
        epochs, batch_size, lr: Adam training of each model.
        concrete_init: initial rate of the single Concrete run.
        seed: seed of subsampling, training and sampling.
        fashion_root: folder of the Fashion-MNIST files (default: the usual places).
        verify: check the data files' checksums (a few seconds).
        command: the command line recorded in the report.

    Returns:
        The :class:`FashionStudyResult`.
    """
    methods = tuple(methods)
    for m in methods:
        if m not in METHODS:
            raise expected("methods", f"a subset of {METHODS}", m)
    if not methods:
        raise expected("methods", f"a non-empty subset of {METHODS}", methods)
    rates = tuple(float(r) for r in rates)
    samples = tuple(sorted(set(int(t) for t in samples)))
    if not rates or not all(0 < r < 1 for r in rates):
        raise expected("rates", "a non-empty sequence of floats in (0, 1)", rates)
    if not samples or samples[0] < 1:
        raise expected("samples", "a non-empty sequence of positive integers", samples)
    t0 = time.perf_counter()
    x_all, y_all = load_fashion_mnist("train", fashion_root, verify=verify)
    x_train, y_train = subsample(x_all, y_all, train_size, seed=seed)
    train = TensorDataset(x_train, y_train)
    pair = load_ood_pair(
        "fashion-mnist", fashion_root=fashion_root, mnist_root=root, n=test_size, seed=seed, verify=verify
    )

    runs = [(m, r) for m in methods if m != "concrete" for r in rates]
    if "concrete" in methods:
        runs.append(("concrete", concrete_init))
    rows: list[dict[str, Any]] = []
    for method, rate in runs:
        with seeded(seed, "cpu"):  # the initialisation, without touching the caller's global RNG
            model, mc = build_model(method, rate, n_train=len(train))
        t1 = time.perf_counter()
        prior = {} if method == "concrete" else {"length_scale": _LENGTH_SCALE, "p": rate}
        fit(mc, train, epochs=epochs, batch_size=batch_size, lr=lr, device="cpu", seed=seed, **prior)
        t_train = time.perf_counter() - t1
        learned = _learned_rates(model) if method == "concrete" else None
        model.eval()
        evaluations = [(0, _deterministic(model, method, rate))] + [(t, mc) for t in samples]
        for n_samples, wrapped in evaluations:
            t2 = time.perf_counter()
            count = max(n_samples, 1)
            pred = wrapped.predict(pair.x_in, samples=count, seed=seed)
            ood = wrapped.predict(pair.x_out, samples=count, seed=seed + 1)
            scores = metrics.evaluate(pred, pair.y_in, ood=ood)
            row: dict[str, Any] = {"method": method, "rate": rate, "samples": n_samples}
            if learned is not None:
                row["learned_rates"] = learned
            row.update({k: scores[k] for k in METRICS if k in scores})
            row["confidence"] = float(pred.mean.max(1).values.mean())
            if n_samples <= 1:  # one pass: MI is 0 up to rounding, its AUROC meaningless
                row["ood_auroc_mutual_information"] = None
            row["train_seconds"] = round(t_train, 1)
            row["eval_seconds"] = round(time.perf_counter() - t2, 2)
            rows.append(row)
        print(
            f"{_LABELS[method]} rate {rate:g}: trained in {t_train:.0f} s; "
            + ", ".join(
                f"T={r['samples']}: acc {r['accuracy']:.3f} nll {r['nll']:.3f}" for r in rows[-len(evaluations) :]
            ),
            flush=True,
        )

    config = {
        "model": "LeNet5 (conv 6, conv 16, fc 120, fc 84, fc 10)",
        "stochastic_layers": list(_STOCHASTIC_LAYERS),
        "methods": list(methods),
        "rates": list(rates),
        "concrete_init": concrete_init,
        "samples": list(samples),
        "train_size": len(train),
        "train_pool": len(x_all),
        "test_size": len(pair.y_in),
        "ood_size": len(pair.x_out),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "length_scale": _LENGTH_SCALE,
        "seed": seed,
        "ece_bins": 15,
    }
    result = FashionStudyResult(rows=rows, config=config)
    result.table_markdown = _main_table(result)
    result.seconds = {"total": time.perf_counter() - t0}
    if out is not None:
        out = Path(out)
        _chart(result, out / "fashion_study.png")
        result.seconds["total"] = time.perf_counter() - t0
        payload = {
            "experiment": "fashion_study",
            "config": config,
            "rows": rows,
            "seconds": {k: round(v, 1) for k, v in result.seconds.items()},
            "machine": machine_description(),
        }
        write_text_atomic(out / "fashion_study.json", json.dumps(payload, indent=2) + "\n")
        write_text_atomic(out / "fashion_study.md", _markdown(result, command))
    return result


# --------------------------------------------------------------------------------- reporting
def _pick(rows: list[dict[str, Any]], method: str, rate: float | None, t: int) -> dict[str, Any] | None:
    for r in rows:
        if r["method"] == method and r["samples"] == t and (rate is None or r["rate"] == rate):
            return r
    return None


def _rate_label(row: dict[str, Any]) -> str:
    if row["method"] == "concrete":
        learned = "/".join(f"{p:.3f}" for p in row.get("learned_rates", []))
        return f"{row['rate']:g} → {learned}"
    return f"{row['rate']:g}"


def _fmt(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.2f}%" if key == "accuracy" else f"{value:.4f}"


def _main_table(result: FashionStudyResult) -> str:
    t_max = max(result.config["samples"])
    head = (
        "| method | rate | "
        + " | ".join(lab for lab, _ in METRICS.values())
        + " | train s |\n|"
        + "---|" * (len(METRICS) + 3)
    )
    lines = [head]
    for r in result.rows:
        if r["samples"] != t_max:
            continue
        vals = " | ".join(_fmt(k, r.get(k)) for k in METRICS)
        lines.append(f"| {_LABELS[r['method']]} | {_rate_label(r)} | {vals} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def _samples_table(result: FashionStudyResult) -> str:
    ts = [0] + list(result.config["samples"])
    keys = ("nll", "ece", "ood_auroc_entropy")
    head = "| method | rate | " + " | ".join(f"{METRICS[k][0]} T={'det' if t == 0 else t}" for k in keys for t in ts)
    lines = [head + " |", "|" + "---|" * (2 + len(keys) * len(ts))]
    seen: list[tuple[str, float]] = []
    for r in result.rows:
        if (r["method"], r["rate"]) in seen:
            continue
        seen.append((r["method"], r["rate"]))
        cells = []
        for k in keys:
            for t in ts:
                row = _pick(result.rows, r["method"], r["rate"], t)
                cells.append(_fmt(k, None if row is None else row.get(k)))
        lines.append(f"| {_LABELS[r['method']]} | {_rate_label(r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _comparison(result: FashionStudyResult) -> list[str]:
    """Sentences computed from the measured rows (no hand-written numbers)."""
    rows, cfg = result.rows, result.config
    t_max, t_min = max(cfg["samples"]), min(cfg["samples"])
    final = [r for r in rows if r["samples"] == t_max]
    out = []
    for key, (label, higher) in METRICS.items():
        have = [r for r in final if r.get(key) is not None]
        if not have:
            continue
        best = (max if higher else min)(have, key=lambda r: r[key])
        worst = (min if higher else max)(have, key=lambda r: r[key])
        out.append(
            f"**{label}** at T = {t_max}: best {_LABELS[best['method']]} "
            f"(rate {_rate_label(best)}) {_fmt(key, best[key])}, worst "
            f"{_LABELS[worst['method']]} (rate {_rate_label(worst)}) "
            f"{_fmt(key, worst[key])}."
        )
    pairs = [(r, _pick(rows, r["method"], r["rate"], 0)) for r in final]
    pairs = [(mc, det) for mc, det in pairs if det is not None]
    for key in ("nll", "ece", "accuracy"):
        label, higher = METRICS[key]
        better = sum((mc[key] > det[key]) if higher else (mc[key] < det[key]) for mc, det in pairs)
        out.append(
            f"MC averaging (T = {t_max}) vs the same network with its noise switched off "
            f"(deterministic): {label} better in {better} of {len(pairs)} models."
        )
    if pairs:
        under_mc = sum(mc["confidence"] < mc["accuracy"] for mc, _ in pairs)
        under_det = sum(det["confidence"] < det["accuracy"] for _, det in pairs)
        gap_mc = sum(mc["accuracy"] - mc["confidence"] for mc, _ in pairs) / len(pairs)
        gap_det = sum(det["accuracy"] - det["confidence"] for _, det in pairs) / len(pairs)
        out.append(
            f"Confidence: the mean max-probability is below the accuracy "
            f"(under-confidence) in {under_mc} of {len(pairs)} models at T = {t_max} "
            f"(accuracy - confidence {100 * gap_mc:+.1f} points on average) and in "
            f"{under_det} of {len(pairs)} deterministically ({100 * gap_det:+.1f} "
            f"points)"
            + (
                ": averaging over samples lowered the confidence, which helps an "
                "over-confident network and hurts an under-confident one."
                if gap_mc > gap_det
                else "."
            )
        )
    ones = [(r, _pick(rows, r["method"], r["rate"], t_min)) for r in final]
    ones = [(a, b) for a, b in ones if b is not None]
    if ones and t_min != t_max:
        better = sum(a["nll"] < b["nll"] for a, b in ones)
        gain = sum(b["nll"] - a["nll"] for a, b in ones) / len(ones)
        ts = [0] + list(cfg["samples"])
        worst_single = 0
        for a, _ in ones:
            evals = [_pick(rows, a["method"], a["rate"], t) for t in ts]
            nlls = [e["nll"] for e in evals if e is not None]
            worst_single += max(nlls) == _pick(rows, a["method"], a["rate"], t_min)["nll"]
        out.append(
            f"More samples: NLL at T = {t_max} is lower than at T = {t_min} in {better} of "
            f"{len(ones)} models (by {gain:.3f} nats on average); T = {t_min} has the "
            f"highest NLL of all {len(ts)} evaluations in {worst_single} of {len(ones)} "
            f"models."
        )
    mi = [
        r for r in final if r.get("ood_auroc_mutual_information") is not None and r.get("ood_auroc_entropy") is not None
    ]
    if mi:
        better = sum(r["ood_auroc_mutual_information"] > r["ood_auroc_entropy"] for r in mi)
        out.append(
            f"OOD detection (MNIST digits): mutual information beats predictive entropy "
            f"as the score in {better} of {len(mi)} models at T = {t_max}."
        )
    n = cfg["test_size"]
    accs = [r["accuracy"] for r in final]
    if accs:
        a = sum(accs) / len(accs)
        se = math.sqrt(a * (1 - a) / n)
        out.append(
            f"Scale of the noise: with {n:,} test images the standard error of an "
            f"accuracy near {100 * a:.1f}% is about {100 * se:.1f} points; smaller "
            f"differences between techniques are not meaningful (one seed, one split)."
        )
    return out


def _chart(result: FashionStudyResult, path: Path) -> None:
    from matplotlib.figure import Figure

    from ..plots import save_figure

    rows, cfg = result.rows, result.config
    t_max = max(cfg["samples"])
    rate_for_samples = max(cfg["rates"])
    colors = {"dropout": "#1f77b4", "dropconnect": "#d62728", "gaussian": "#2ca02c", "concrete": "#9467bd"}
    keys = list(METRICS)
    fig = Figure(figsize=(13.5, 5.6), layout="constrained")
    axes = fig.subplots(2, len(keys))
    ts = [0] + list(cfg["samples"])
    for j, key in enumerate(keys):
        label = METRICS[key][0]
        ax_r, ax_t = axes[0, j], axes[1, j]
        for method in cfg["methods"]:
            c = colors[method]
            mc_rows = [r for r in rows if r["method"] == method and r["samples"] == t_max]
            det_rows = [r for r in rows if r["method"] == method and r["samples"] == 0]
            if method == "concrete":
                for r in mc_rows:
                    learned = r.get("learned_rates") or [r["rate"]]
                    ax_r.scatter(
                        [sum(learned) / len(learned)],
                        [r[key]],
                        marker="*",
                        s=90,
                        color=c,
                        label=_LABELS[method],
                        zorder=4,
                    )
            else:
                ax_r.plot(
                    [r["rate"] for r in mc_rows], [r[key] for r in mc_rows], "o-", color=c, ms=4, label=_LABELS[method]
                )
                if key != "ood_auroc_mutual_information":
                    ax_r.plot([r["rate"] for r in det_rows], [r[key] for r in det_rows], ":", color=c, lw=1)
            rate = None if method == "concrete" else rate_for_samples
            line = [(_pick(rows, method, rate, t), i) for i, t in enumerate(ts)]
            line = [(r, i) for r, i in line if r is not None and r.get(key) is not None]
            ax_t.plot(
                [i for _, i in line],
                [r[key] for r, _ in line],
                "o-",
                color=c,
                ms=4,
                label=_LABELS[method] + (" (learned rate)" if rate is None else ""),
            )
        ax_r.set_title(label, fontsize=9)
        ax_r.set_xlabel("rate (★ Concrete: learned)", fontsize=8)
        ax_t.set_xticks(range(len(ts)), ["det"] + [str(t) for t in cfg["samples"]])
        ax_t.set_xlabel(f"MC samples T (rate {rate_for_samples:g})", fontsize=8)
        for ax in (ax_r, ax_t):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel(f"at T = {t_max} (dotted: deterministic)", fontsize=8)
    axes[1, 0].set_ylabel("vs number of samples", fontsize=8)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(
        f"Fashion-MNIST, LeNet-5: dropout techniques over rates and samples "
        f"({cfg['train_size']:,} training images, {cfg['epochs']} epochs; OOD = MNIST)",
        fontsize=10,
    )
    save_figure(fig, path, dpi=72)


def _concrete_note(result: FashionStudyResult) -> str:
    rows = [r for r in result.rows if r["method"] == "concrete" and r.get("learned_rates")]
    if not rows:
        return ""
    learned = "/".join(f"{p:.3f}" for p in rows[0]["learned_rates"])
    return f"Concrete's rates went from {rows[0]['rate']:g} to {learned} (the two layers) in this budget. "


def _markdown(result: FashionStudyResult, command: str) -> str:
    cfg = result.config
    t_max = max(cfg["samples"])
    bullets = "\n".join(f"- {s}" for s in _comparison(result))
    train_total = sum(r["train_seconds"] for r in result.rows if r["samples"] == t_max)
    return f"""# Fashion-MNIST dropout-technique study

Generated by `{command}` (do not edit by hand; rerun the command).

![study](fashion_study.png)

## Protocol
- Model: LeNet-5 (`bayesdrop.models.LeNet5`, 61,706 weights); the noise of every technique
  sits at the same two places, the inputs of the last two fully connected layers
  (`{cfg["stochastic_layers"][0]}`, `{cfg["stochastic_layers"][1]}`):
  - **MC dropout**: `LeNet5(dropout=p, placement="fc")`, sampled with `bd.wrap(model)`;
  - **DropConnect**: `bd.wrap(LeNet5(placement="none"), method="dropconnect", p=p,
    layers=[...])`, one weight mask per sample, trained through the wrapper;
  - **Gaussian**: the dropout model with `method="gaussian"` (multiplicative N(1, p/(1-p))
    noise, trained and sampled);
  - **Concrete**: `bd.ConcreteDropout` around the two layers, rate learned from
    {cfg["concrete_init"]:g} (one run), regularisers l²/N and 2/N with l = {cfg["length_scale"]:g}.
- Data (**subsampled** to keep the study to minutes on 2 CPU cores): {cfg["train_size"]:,} of the
  {cfg["train_pool"]:,} Fashion-MNIST training images (seeded random subset), {cfg["epochs"]}
  epochs of Adam (lr {cfg["lr"]:g}, batch {cfg["batch_size"]}, prior weight decay with
  length-scale {cfg["length_scale"]:g} for the fixed-rate techniques); evaluation on a seeded
  {cfg["test_size"]:,} of the 10,000 Fashion-MNIST test images, and the same number of MNIST
  test digits as out-of-distribution inputs.
- Each (technique, rate) is trained once and evaluated at T = {", ".join(map(str, cfg["samples"]))}
  and deterministically (`det`: the same network with its noise switched off, i.e. weight
  averaging) with `mc.predict` and `bayesdrop.metrics.evaluate`: accuracy, NLL, ECE
  ({cfg["ece_bins"]} bins), AURC (risk-coverage with the max probability), OOD AUROC with the
  predictive entropy and with the mutual information as the score (MNIST = positive class).

## Results at T = {t_max}
{result.table_markdown}

Concrete's rate column: initial → learned rate of the two layers.

## Effect of the number of samples
{_samples_table(result)}

(With one pass, or deterministically, the mutual information is zero up to rounding, so its
OOD AUROC is meaningless and recorded as null in the JSON.)

## Comparison
{bullets}
- Caveats: {cfg["epochs"]} epochs on {cfg["train_size"]:,} images are far from convergence (the
  networks are under-trained), and the ranking of techniques may change with full training.
  {_concrete_note(result)}DropConnect samples whole weight matrices, one mask per sample shared
  by every test image, so its T samples are T networks applied to all images alike rather
  than independent noise per image. Single seed, no error bars except the accuracy SE above.

Machine: {machine_description()}; 1-minute load average at the end {load_average()} (shared
machine, timings noisy). Wall-clock: {result.seconds.get("total", 0):.0f} s in all
(training {train_total:.0f} s).
"""
