"""Classification plots: reliability diagram, risk-coverage curves, MC-sample histogram,
in- vs out-of-distribution score histograms."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._errors import BayesdropError, expected
from ..metrics import (
    aurc,
    calibration_bins,
    ece,
    ood_auroc,
    ood_scores,
    risk_coverage_curve,
)
from ..metrics._validation import as_float, check_binary, check_labels, check_probs
from ..prediction import Prediction
from ._common import finish, new_figure

__all__ = ["reliability_diagram", "risk_coverage", "mc_histogram", "ood_histogram"]

_SCORE_NAMES = {
    "msp": "1 - max probability",
    "entropy": "predictive entropy",
    "mutual_information": "mutual information",
    "variation_ratio": "variation ratio",
}


def _probs(pred: Any) -> Tensor:
    if isinstance(pred, Prediction):
        if pred.task != "classification":
            raise expected("pred", "a classification Prediction", f"a {pred.task} Prediction")
        return check_probs(pred.mean, "pred.mean")
    return check_probs(pred, "pred")


def reliability_diagram(
    pred: Prediction | Any,
    targets: Any,
    n_bins: int = 15,
    *,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Reliability diagram with the confidence histogram below it.

    Top: accuracy per equal-width confidence bin (bars) against the diagonal of perfect
    calibration, with the gap to the bin's mean confidence shaded. Bottom: the fraction of
    examples per bin, with the mean confidence and the accuracy marked.

    Args:
        pred: a classification :class:`bayesdrop.Prediction`, or ``(N, C)`` probabilities.
        targets: ``(N,)`` integer labels.
        n_bins: number of bins (the same binning as :func:`bayesdrop.metrics.ece`).
        title: figure title (None: one naming T and N).
        path: save the figure there (.png, .svg or .pdf), atomically.

    Returns:
        The matplotlib Figure.
    """
    probs = _probs(pred)
    y = check_labels(targets, "targets", probs.shape[0], probs.shape[1])
    bins = calibration_bins(probs, y, n_bins)
    error = ece(probs, y, n_bins)
    conf, predicted = probs.max(1)
    acc = float((predicted == y).double().mean())
    mean_conf = float(conf.mean())

    fig = new_figure((5.0, 5.6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    edges = bins.edges.numpy()
    width = edges[1] - edges[0]
    centers = edges[:-1] + width / 2
    nonempty = (bins.counts > 0).numpy()
    accuracy = bins.accuracy.numpy()
    confidence = bins.confidence.numpy()
    top.plot([0, 1], [0, 1], ls="--", color="0.45", lw=1, label="perfect calibration")
    top.bar(
        centers[nonempty],
        accuracy[nonempty],
        width=width,
        color="#4C72B0",
        edgecolor="white",
        lw=0.8,
        label="accuracy",
    )
    gap_lo = torch.minimum(bins.accuracy, bins.confidence).numpy()
    gap_hi = torch.maximum(bins.accuracy, bins.confidence).numpy()
    top.bar(
        centers[nonempty],
        (gap_hi - gap_lo)[nonempty],
        bottom=gap_lo[nonempty],
        width=width,
        facecolor="none",
        edgecolor="#C44E52",
        lw=0.8,
        hatch="///",
        label="gap to confidence",
    )
    top.plot(centers[nonempty], confidence[nonempty], "o", ms=3, color="#C44E52")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.set_aspect("auto")
    top.legend(loc="upper left", fontsize=8, frameon=False)
    top.text(
        0.97,
        0.04,
        f"ECE = {100 * error:.2f}%\n{n_bins} bins",
        transform=top.transAxes,
        ha="right",
        va="bottom",
        fontsize=9,
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
    )
    frac = (bins.counts / bins.counts.sum()).numpy()
    bottom.bar(centers, frac, width=width, color="0.55", edgecolor="white", lw=0.8)
    bottom.axvline(acc, color="#4C72B0", lw=1.5, label=f"accuracy {100 * acc:.1f}%")
    bottom.axvline(mean_conf, color="#C44E52", lw=1.5, ls="--", label=f"mean conf. {100 * mean_conf:.1f}%")
    bottom.set(xlabel="confidence (max predicted probability)", ylabel="fraction", xlim=(0, 1))
    bottom.legend(loc="upper left", fontsize=7, frameon=False)
    n_samples = f"T = {pred.n_samples}, " if isinstance(pred, Prediction) else ""
    fig.suptitle(title or f"Reliability diagram ({n_samples}N = {probs.shape[0]:,})", fontsize=11)
    return finish(fig, path)


def risk_coverage(
    pred: Prediction | Any,
    targets: Any,
    scores: Sequence[str] = ("msp", "entropy", "mutual_information"),
    *,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Selective risk against coverage, one curve per uncertainty score, with the oracle.

    Args:
        pred: a classification :class:`bayesdrop.Prediction` (curves for ``scores``), or an
            ``(N,)`` confidence tensor (higher = accepted first; one curve).
        targets: ``(N,)`` labels with a Prediction, or ``(N,)`` booleans "prediction was right"
            with a confidence tensor.
        scores: uncertainty scores of :func:`bayesdrop.metrics.ood_scores` to draw.
        title: figure title.
        path: save the figure there (.png, .svg or .pdf), atomically.

    Returns:
        The matplotlib Figure.
    """
    if isinstance(pred, Prediction):
        probs = _probs(pred)
        y = check_labels(targets, "targets", probs.shape[0], probs.shape[1])
        correct = probs.argmax(1) == y
        available = ood_scores(pred)
        curves = {}
        for name in scores:
            if name not in available:
                raise expected("scores", f"names among {sorted(available)}", name)
            curves[_SCORE_NAMES.get(name, name)] = -available[name]
    else:
        conf = as_float(pred, "pred", ndim=1)
        correct = check_binary(targets, "targets", conf.shape[0])
        curves = {"confidence": conf}
    n = correct.numel()
    fig = new_figure((5.4, 4.0))
    ax = fig.subplots()
    for i, (label, conf) in enumerate(curves.items()):
        curve = risk_coverage_curve(conf, correct)
        cov = torch.cat([torch.zeros(1, dtype=torch.float64), curve.coverage]).numpy()
        risk = torch.cat([curve.risk[:1], curve.risk]).numpy()
        ax.plot(
            cov,
            risk,
            lw=1.8,
            color=f"C{i}",
            label=f"{label} (AURC {100 * aurc(conf, correct):.2f}%)",
        )
    # Oracle: every error ranked last.
    oracle_conf = correct.to(torch.float64) + torch.linspace(0, 0.5, n, dtype=torch.float64)
    oracle = risk_coverage_curve(oracle_conf, correct)
    cov = torch.cat([torch.zeros(1, dtype=torch.float64), oracle.coverage]).numpy()
    risk = torch.cat([oracle.risk[:1], oracle.risk]).numpy()
    ax.plot(
        cov,
        risk,
        color="0.3",
        ls=":",
        lw=1.5,
        label=f"oracle (AURC {100 * aurc(oracle_conf, correct):.2f}%)",
    )
    err = 1 - float(correct.double().mean())
    ax.axhline(err, color="0.6", ls="--", lw=1, label=f"no rejection ({100 * err:.1f}% error)")
    ax.set(xlabel="coverage (fraction accepted)", ylabel="selective risk (error rate)", xlim=(0, 1))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    n_samples = f"T = {pred.n_samples}, " if isinstance(pred, Prediction) else ""
    ax.set_title(title or f"Risk-coverage curve ({n_samples}N = {n:,})", fontsize=11)
    return finish(fig, path)


def mc_histogram(
    pred: Prediction,
    index: int = 0,
    cls: int | Sequence[int] | None = None,
    *,
    bins: int = 20,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Histogram of the T MC samples of one input: the sampled probability of class ``cls``
    (classification), or the sampled mean of output ``cls`` (regression).

    Args:
        pred: a :class:`bayesdrop.Prediction` made with ``keep_samples=True``.
        index: which input of the batch.
        cls: class index (or several, overlaid); None: the predicted class. For regression,
            the flat output index (None: 0).
        bins: number of histogram bins.
        title: figure title.
        path: save the figure there (.png, .svg or .pdf), atomically.

    Returns:
        The matplotlib Figure.
    """
    if not isinstance(pred, Prediction):
        raise expected("pred", "a bayesdrop.Prediction made with keep_samples=True", type(pred).__name__)
    samples = pred.samples  # raises with a hint when not kept
    b = samples.shape[0]
    if isinstance(index, bool) or not isinstance(index, int) or not -b <= index < b:
        raise expected("index", f"an integer in [{-b}, {b - 1}]", index)
    s = samples[index].detach().to("cpu", torch.float64).reshape(samples.shape[1], -1)  # (T, K)
    k = s.shape[1]
    if cls is None:
        chosen = [int(pred.mean[index].reshape(-1).argmax())] if pred.task == "classification" else [0]
    else:
        chosen = [cls] if isinstance(cls, int) else list(cls)
    for c in chosen:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < k:
            raise expected("cls", f"class/output indices in [0, {k - 1}]", cls)
    fig = new_figure((5.0, 3.6))
    ax = fig.subplots()
    classification = pred.task == "classification"
    lo = 0.0 if classification else float(s[:, chosen].min())
    hi = 1.0 if classification else float(s[:, chosen].max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = torch.linspace(lo, hi, bins + 1).numpy()
    for i, c in enumerate(chosen):
        values = s[:, c].numpy()
        name = f"class {c}" if classification else f"output {c}"
        ax.hist(
            values,
            bins=edges,
            color=f"C{i}",
            alpha=0.6 if len(chosen) > 1 else 0.85,
            edgecolor="white",
            label=name,
        )
        ax.axvline(values.mean(), color=f"C{i}", ls="--", lw=1.5, label=f"mean {values.mean():.3f}")
    ax.set(
        xlabel="sampled probability" if classification else "sampled mean",
        ylabel=f"count of {samples.shape[1]} samples",
    )
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title or f"MC samples of input {index} (T = {pred.n_samples})", fontsize=11)
    return finish(fig, path)


def ood_histogram(
    score_in: Prediction | Any,
    score_out: Prediction | Any,
    score: str = "entropy",
    *,
    bins: int = 30,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Overlaid histograms of an uncertainty score on in- and out-of-distribution inputs, with
    the OOD AUROC.

    Args:
        score_in: a classification Prediction on in-distribution inputs, or ``(N_in,)`` scores.
        score_out: a Prediction on OOD inputs, or ``(N_out,)`` scores.
        score: with Predictions, which score of :func:`bayesdrop.metrics.ood_scores`.
        bins: number of histogram bins (shared edges).
        title: figure title.
        path: save the figure there (.png, .svg or .pdf), atomically.

    Returns:
        The matplotlib Figure.
    """
    label = _SCORE_NAMES.get(score, score)
    values = []
    for name, v in (("score_in", score_in), ("score_out", score_out)):
        if isinstance(v, Prediction):
            available = ood_scores(v)
            if score not in available:
                raise expected("score", f"one of {sorted(available)}", score)
            values.append(available[score])
        else:
            values.append(as_float(v, name, ndim=1))
            label = score if score != "entropy" else "uncertainty score"
    s_in, s_out = values
    auc = ood_auroc(s_in, s_out)
    lo = float(min(s_in.min(), s_out.min()))
    hi = float(max(s_in.max(), s_out.max()))
    if hi <= lo:
        raise BayesdropError(f"Every {label} value equals {lo:g}: nothing to show in a histogram.")
    edges = torch.linspace(lo, hi, bins + 1).numpy()
    fig = new_figure((5.4, 3.6))
    ax = fig.subplots()
    ax.hist(
        s_in.numpy(),
        bins=edges,
        density=True,
        alpha=0.6,
        color="C0",
        edgecolor="white",
        label=f"in-distribution (N = {s_in.numel():,})",
    )
    ax.hist(
        s_out.numpy(),
        bins=edges,
        density=True,
        alpha=0.6,
        color="C3",
        edgecolor="white",
        label=f"out-of-distribution (N = {s_out.numel():,})",
    )
    ax.set(xlabel=label, ylabel="density")
    ax.legend(fontsize=8, frameon=False, title=f"OOD AUROC {100 * auc:.1f}%", title_fontsize=8)
    ax.set_title(title or f"{label.capitalize()}: in- vs out-of-distribution", fontsize=11)
    return finish(fig, path)
