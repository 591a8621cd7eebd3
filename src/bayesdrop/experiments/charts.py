"""The experiment charts: uncertainty along a rotation / morph, metric vs rate / samples.

matplotlib is imported lazily; figures are ``matplotlib.figure.Figure`` objects (no pyplot, so
the caller's backend is never switched); every function writes one PNG atomically and returns
its path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._errors import BayesdropError, expected
from .._io import atomic_open

__all__ = ["path_uncertainty", "plot_uncertainty_path", "plot_metric_vs", "PREFERRED_METRICS"]

# metrics drawn by the sweep charts when present, best first
PREFERRED_METRICS = (
    "accuracy",
    "nll",
    "ece",
    "aurc",
    "ood_auroc_entropy",
    "ood_auroc_mutual_information",
    "rmse",
    "mc_log_likelihood",
    "crps",
    "picp_95",
)
_LABELS = {
    "nll": "NLL",
    "ece": "ECE",
    "aurc": "AURC",
    "brier": "Brier",
    "ood_auroc_entropy": "OOD AUROC (entropy)",
    "ood_auroc_mutual_information": "OOD AUROC (mutual inf.)",
    "rmse": "RMSE",
    "mc_log_likelihood": "test log-likelihood",
    "crps": "CRPS",
    "picp_95": "coverage of the 95% interval",
}
# metrics where a larger value is better (the others: lower is better), for the titles
_HIGHER_BETTER = ("accuracy", "ood_auroc", "ood_aupr", "error_auroc", "coverage_at", "mc_log_likelihood")
# metrics with an ideal value in the middle: interval coverage should equal the nominal level
_IDEAL = {"picp_50": 0.5, "picp_90": 0.9, "picp_95": 0.95}


def _figure(**kwargs: Any) -> Any:
    # A pyplot-free Figure: no backend is selected or switched (the caller's stays as it is),
    # no global figure registry, nothing to close; savefig renders through Agg/pdf/svg.
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _colormap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    return path


@torch.no_grad()
def path_uncertainty(mc: Any, images: Tensor, *, samples: int = 100, seed: int = 0) -> dict[str, Tensor]:
    """MC-predict a path of K inputs (a rotation, a morph) and collect what the charts show.

    Args:
        mc: a wrapped classifier (``bd.wrap(..., task="classification")``).
        images: ``(K, *in)`` the inputs along the path.
        samples: MC samples T.
        seed: sampling seed.

    Returns:
        ``samples`` ``(K, T, C)`` per-sample probabilities, ``mean`` ``(K, C)``, and ``(K,)``
        ``entropy`` (total), ``expected_entropy`` (aleatoric), ``mutual_information``
        (epistemic), ``variation_ratio``.
    """
    pred = mc.predict(images, samples=samples, seed=seed, keep_samples=True)
    if pred.task != "classification":
        raise expected("mc", "a classification model", pred.task)
    return {
        "samples": pred.samples.detach().cpu(),
        "mean": pred.mean.detach().cpu(),
        "entropy": pred.total.detach().cpu(),
        "expected_entropy": pred.aleatoric.detach().cpu(),
        "mutual_information": pred.epistemic.detach().cpu(),
        "variation_ratio": pred.variation_ratio.detach().cpu(),
    }


def plot_uncertainty_path(
    images: Tensor,
    result: Mapping[str, Tensor],
    path: str | Path,
    *,
    steps: Sequence[float] | None = None,
    step_label: str = "step",
    title: str = "",
    class_names: Sequence[str] | None = None,
    max_classes: int = 4,
) -> Path:
    """Draw the uncertainty of a model along a path of inputs.

    Four rows sharing the x axis: the inputs; the predicted class distribution per step (MC
    mean probability of the classes that matter); the MC spread (every sampled probability of
    those classes, with the 10-90 % band); entropy, expected entropy and mutual information
    (nats) and the variation ratio.

    Args:
        images: ``(K, 1, H, W)``, ``(K, H, W)`` images or ``(K, D)`` flat inputs (square D).
        result: what :func:`path_uncertainty` returned.
        path: PNG file to write.
        steps: x values of the K steps (e.g. angles in degrees); default 0..K-1.
        step_label: x-axis label.
        title: figure title.
        class_names: names of the C classes.
        max_classes: at most this many classes are drawn (the largest mean probabilities).
    """
    mean, samp = result["mean"], result["samples"]
    k, t, c = samp.shape
    if mean.shape != (k, c):
        raise expected("result['mean']", f"a ({k}, {c}) tensor", tuple(mean.shape))
    xs = torch.arange(k, dtype=torch.float64) if steps is None else torch.tensor(list(steps), dtype=torch.float64)
    if xs.numel() != k:
        raise expected("steps", f"{k} values", len(xs))
    names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
    # classes worth drawing: largest peak mean probability along the path
    peak = mean.max(0).values
    shown = [int(i) for i in peak.argsort(descending=True)[:max_classes] if peak[i] > 0.05]
    colors = _colormap("tab10")

    width = (xs[-1] - xs[0]).item() / max(k - 1, 1) if k > 1 else 1.0
    fig_w = max(9.0, 0.7 * k + 3.5)
    pic_h = min(1.6, 0.75 * fig_w / k)  # about square thumbnails (axes ~77% of the width)
    fig_h = pic_h + 3 * 2.1 + 1.6
    fig = _figure(figsize=(fig_w, fig_h))
    ax0, ax1, ax2, ax3 = fig.subplots(
        4, 1, sharex=True, gridspec_kw={"height_ratios": [pic_h, 2.1, 2.1, 2.1], "hspace": 0.32}
    )
    fig.subplots_adjust(top=1 - 0.55 / fig_h, bottom=0.6 / fig_h)
    pics = _as_pictures(images)
    if pics is not None:
        for i in range(k):
            x0 = xs[i].item()
            ax0.imshow(pics[i], cmap="gray_r", extent=(x0 - 0.45 * width, x0 + 0.45 * width, 0, 1), aspect="auto")
    ax0.set_ylim(0, 1)
    ax0.set_yticks([])
    for side in ("left", "right", "top", "bottom"):
        ax0.spines[side].set_visible(False)
    ax0.set_xlim(xs[0].item() - 0.55 * width, xs[-1].item() + 0.55 * width)
    ax0.set_title("inputs along the path", fontsize=10)
    gen = torch.Generator().manual_seed(0)
    for j, cls in enumerate(shown):
        col = colors(j % 10)
        ax1.plot(xs, mean[:, cls], "-o", color=col, lw=2, ms=4, label=names[cls])
        jitter = (torch.rand(k, t, generator=gen, dtype=torch.float64) - 0.5) * 0.35 * width
        ax2.scatter(
            (xs[:, None] + jitter).flatten(), samp[:, :, cls].flatten(), s=4, color=col, alpha=0.25, linewidths=0
        )
        lo = samp[:, :, cls].quantile(0.1, dim=1)
        hi = samp[:, :, cls].quantile(0.9, dim=1)
        ax2.fill_between(xs, lo, hi, color=col, alpha=0.15)
        ax2.plot(xs, mean[:, cls], "-", color=col, lw=1.5, label=names[cls])
    other = 1 - mean[:, shown].sum(1) if shown else torch.ones(k)
    if other.max() > 0.02:
        ax1.plot(xs, other, ":", color="gray", lw=1.5, label="other classes")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_ylabel("mean probability")
    ax1.set_title("predicted class distribution (MC mean)", fontsize=10)
    ax1.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel("sampled probability")
    ax2.set_title(f"MC spread: {t} samples per step, 10-90% band", fontsize=10)
    ax2.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)

    ax3.plot(xs, result["entropy"], "-o", color="black", ms=3, label="entropy (total)")
    ax3.plot(xs, result["expected_entropy"], "--", color="tab:blue", label="expected entropy (aleatoric)")
    ax3.plot(xs, result["mutual_information"], "-", color="tab:red", lw=2, label="mutual information (epistemic)")
    ax3.plot(xs, result["variation_ratio"], ":", color="tab:green", label="variation ratio")
    ax3.axhline(math.log(c), color="gray", lw=0.8, ls=(0, (1, 3)))
    ax3.set_ylim(bottom=0)
    ax3.set_ylabel("nats / ratio")
    ax3.set_xlabel(step_label)
    ax3.set_title(f"uncertainty per step (dotted: max entropy ln {c})", fontsize=10)
    ax3.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    ax3.set_xticks(xs.tolist())
    ax3.set_xticklabels([f"{v:.3g}" for v in xs.tolist()], fontsize=8)
    ax0.tick_params(axis="x", labelbottom=False, bottom=False)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.12 / fig_h)
    return _save(fig, path)


def _as_pictures(images: Tensor) -> Tensor | None:
    x = images.detach().cpu().float()
    if x.dim() == 4 and x.shape[1] in (1, 3):
        return x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    if x.dim() == 3:
        return x
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if side * side == x.shape[1]:
            return x.reshape(-1, side, side)
    return None


def metric_title(metric: str) -> str:
    """A panel title: the metric's name and which way is better (or its ideal value)."""
    if metric in _IDEAL:
        better = f"ideal {_IDEAL[metric]:g}"
    else:
        better = "higher is better" if metric.startswith(_HIGHER_BETTER) else "lower is better"
    return f"{_LABELS.get(metric, metric)} ({better})"


def plot_metric_vs(
    results: Sequence[Mapping[str, Any]],
    x: str,
    path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    group: Sequence[str] = ("method",),
    fixed: Mapping[str, Any] | None = None,
    title: str = "",
) -> Path:
    """Draw each metric against one hyperparameter, one line per group (e.g. per method).

    Args:
        results: one mapping per run holding its hyperparameters (``method``, ``rate``,
            ``samples``, ...) and its metrics (``accuracy``, ``nll``, ...).
        x: the hyperparameter on the x axis (``"rate"`` or ``"samples"``).
        path: PNG file to write.
        metrics: the metrics to draw (one panel each); default those of
            :data:`PREFERRED_METRICS` present in the results.
        group: hyperparameters whose combination makes one line.
        fixed: keep only the runs with these values (e.g. ``{"samples": 100}``).
        title: figure title.
    """
    rows = [r for r in results if all(r.get(k) == v for k, v in (fixed or {}).items())]
    if not rows:
        raise expected("results", f"runs matching {dict(fixed or {})}", len(results))
    if metrics is None:
        metrics = [m for m in PREFERRED_METRICS if any(_finite(r.get(m)) for r in rows)]
    if not metrics:
        raise BayesdropError("None of the runs has a metric to draw.")
    lines: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        lines.setdefault(tuple(r.get(g) for g in group), []).append(r)
    ncol = 2 if len(metrics) in (2, 4) else min(len(metrics), 3)
    nrow = math.ceil(len(metrics) / ncol)
    fig = _figure(figsize=(4.3 * ncol, 3.4 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    cmap = _colormap("tab10")
    # colour by the first grouping key (e.g. method), line style by the second (e.g. rate)
    firsts = sorted({str(label[0]) for label in lines})
    seconds = sorted({label[1] for label in lines}, key=str) if len(group) > 1 else [None]
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for label, runs in sorted(lines.items(), key=lambda kv: str(kv[0])):
            pts = sorted((r[x], float(r[metric])) for r in runs if _finite(r.get(metric)))
            if not pts:
                continue
            name = ", ".join(f"{g}={v}" if g != "method" else str(v) for g, v in zip(group, label, strict=True))
            ls, marker = styles[seconds.index(label[1]) % 4] if len(group) > 1 else ("-", "o")
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                ls,
                marker=marker,
                ms=5,
                color=cmap(firsts.index(str(label[0])) % 10),
                label=name,
            )
        if metric in _IDEAL:
            ax.axhline(_IDEAL[metric], color="0.5", lw=1, ls="--")
        ax.set_title(metric_title(metric), fontsize=10)
        ax.set_xlabel({"rate": "dropout rate p", "samples": "MC samples T"}.get(x, x))
        if x == "samples":
            ax.set_xscale("log")
        xs = sorted({r[x] for r in rows})
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{v:g}" for v in xs])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    legend_rows = math.ceil(len(labels) / 4)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False, bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, (0.3 * legend_rows + 0.1) / (3.4 * nrow), 1, 1))
    return _save(fig, path)


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
