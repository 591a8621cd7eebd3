"""bayesdrop.plots: figures draw the metrics' numbers, save atomically, import lazily."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from _predictions import classification_prediction
from bayesdrop import BayesdropError, Prediction, metrics, plots
from bayesdrop.uncertainty import (
    mixture_moments,
)


def _classification(n: int = 80, t: int = 12, c: int = 3, seed: int = 0, shift: float = 1.5):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, t, c, generator=g, dtype=torch.float64) * 1.5
    logits[torch.arange(n), :, y] += shift
    log_p = torch.log_softmax(logits, -1)
    pred = classification_prediction(log_p, keep=True)
    return pred, y


def _regression(n: int = 50, t: int = 10, aleatoric: float = 0.05):
    g = torch.Generator().manual_seed(1)
    x = torch.linspace(-3, 3, n)
    means = torch.sin(x)[:, None, None] + 0.1 * x.abs()[:, None, None] * torch.randn(n, t, 1, generator=g)
    variances = torch.full_like(means, aleatoric) if aleatoric else None
    mean, ale, epi = mixture_moments(means, variances)
    pred = Prediction(
        task="regression",
        n_samples=t,
        mean=mean,
        total=ale + epi,
        aleatoric=ale,
        epistemic=epi,
        variance=ale + epi,
        kept_samples=means,
    )
    return x, pred


def test_reliability_diagram_draws_the_calibration_bins(tmp_path) -> None:
    pred, y = _classification()
    fig = plots.reliability_diagram(pred, y, n_bins=10, path=tmp_path / "rel.png")
    top, bottom = fig.axes[:2]
    bins = metrics.calibration_bins(pred.mean, y, 10)
    nonempty = bins.counts > 0
    heights = [patch.get_height() for patch in top.containers[0]]
    assert heights == pytest.approx(bins.accuracy[nonempty].tolist())
    fractions = [patch.get_height() for patch in bottom.containers[0]]
    assert fractions == pytest.approx((bins.counts / bins.counts.sum()).tolist())
    ece_text = f"ECE = {100 * metrics.ece(pred.mean, y, 10):.2f}%"
    assert any(ece_text in t.get_text() for t in top.texts)
    assert "T = 12" in fig.get_suptitle()
    assert (tmp_path / "rel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Plain probabilities work too.
    plots.reliability_diagram(pred.mean, y)


def test_risk_coverage_draws_the_curves() -> None:
    pred, y = _classification()
    fig = plots.risk_coverage(pred, y, scores=("msp", "mutual_information"))
    ax = fig.axes[0]
    correct = pred.mean.argmax(1) == y
    curve = metrics.risk_coverage_curve(-metrics.ood_scores(pred)["msp"], correct)
    xs, ys = ax.lines[0].get_data()
    assert list(xs[1:]) == pytest.approx(curve.coverage.tolist())
    assert list(ys[1:]) == pytest.approx(curve.risk.tolist())
    aurc = metrics.aurc(-metrics.ood_scores(pred)["msp"], correct)
    assert f"AURC {100 * aurc:.2f}%" in ax.lines[0].get_label()
    assert len(ax.lines) == 4  # two scores, the oracle, the no-rejection line
    # From raw confidences and correctness.
    fig = plots.risk_coverage(pred.mean.max(1).values, correct)
    assert len(fig.axes[0].lines) == 3


def test_mc_histogram_counts_every_sample(tmp_path) -> None:
    pred, _ = _classification()
    fig = plots.mc_histogram(pred, index=3, cls=[0, 2], path=tmp_path / "h.svg")
    ax = fig.axes[0]
    for container in ax.containers:
        assert sum(p.get_height() for p in container) == pred.n_samples
    means = [line.get_xdata()[0] for line in ax.lines]
    assert means == pytest.approx(pred.samples[3][:, [0, 2]].mean(0).tolist())
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")
    # Regression samples: one output.
    _, rpred = _regression()
    plots.mc_histogram(rpred, index=-1)


def test_ood_histogram_reports_the_auroc() -> None:
    pred, _ = _classification(seed=0)
    ood, _ = _classification(seed=1, shift=0.0)
    fig = plots.ood_histogram(pred, ood, score="entropy")
    auc = metrics.ood_auroc(pred.total, ood.total)
    legend = fig.axes[0].get_legend()
    assert f"{100 * auc:.1f}%" in legend.get_title().get_text()
    fig = plots.ood_histogram(pred.total, ood.total)
    assert len(fig.axes[0].containers) == 2


@pytest.mark.parametrize("aleatoric", [0.05, 0.0])
def test_regression_bands(tmp_path, aleatoric: float) -> None:
    x, pred = _regression(aleatoric=aleatoric)
    fig = plots.regression_bands(x, pred, targets=pred.mean.flatten(), train_x=x[::5], train_y=pred.mean[::5], k=2.0)
    ax = fig.axes[0]
    labels = [c.get_label() for c in ax.collections]
    if aleatoric:
        assert labels[:2] == ["total (aleatoric + epistemic) ±2σ", "aleatoric ±2σ"]
    else:
        assert labels[0] == "epistemic ±2σ" and "aleatoric ±2σ" not in labels
    mean_line = ax.lines[-1]
    assert list(mean_line.get_ydata()) == pytest.approx(pred.mean.flatten().tolist())


def test_regression_calibration_draws_the_picp_curve(tmp_path) -> None:
    _, pred = _regression(aleatoric=0.05)
    targets = pred.mean.flatten() + 0.3 * torch.randn(pred.mean.shape[0], generator=torch.Generator().manual_seed(0))
    fig = plots.regression_calibration(pred, targets, path=tmp_path / "calibration.png")
    observed = fig.axes[0].lines[1]
    assert list(observed.get_xdata()) == pytest.approx([i / 20 for i in range(1, 20)])
    expected_share = [metrics.picp(pred.mean.flatten(), pred.total.flatten(), targets, i / 20) for i in range(1, 20)]
    assert list(observed.get_ydata()) == pytest.approx(expected_share)
    errors = fig.axes[1].collections[0].get_offsets()
    assert list(errors[:, 1]) == pytest.approx((targets - pred.mean.flatten()).abs().tolist(), rel=1e-5)
    assert (tmp_path / "calibration.png").stat().st_size > 1000
    with pytest.raises(BayesdropError, match="`targets`"):
        plots.regression_calibration(pred, targets[:-1])
    classification, _ = _classification()
    with pytest.raises(BayesdropError, match="`pred`"):
        plots.regression_calibration(classification, targets)


def test_saving_is_atomic_and_clean(tmp_path) -> None:
    pred, y = _classification()
    target = tmp_path / "sub" / "fig.png"
    plots.reliability_diagram(pred, y, path=target)
    first = target.read_bytes()
    plots.reliability_diagram(pred, y, path=target)  # overwrite in place
    assert target.read_bytes() == first  # no timestamps: same figure, same bytes
    assert os.listdir(target.parent) == ["fig.png"]  # no temporary files left
    assert target.stat().st_mode & 0o044 == 0o044  # readable by others, like any figure
    with pytest.raises(BayesdropError, match=r"`path` to be a file name ending in .png, .svg"):
        plots.reliability_diagram(pred, y, path=tmp_path / "fig.jpg")


def test_matplotlib_is_imported_lazily() -> None:
    code = "import sys, bayesdrop, bayesdrop.metrics, bayesdrop.plots;print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_inputs() -> None:
    pred, y = _classification()
    x, rpred = _regression()
    no_samples = Prediction(**{**pred.__dict__, "kept_samples": None})
    with pytest.raises(BayesdropError, match=r"keep_samples=True"):
        plots.mc_histogram(no_samples)
    with pytest.raises(BayesdropError, match=r"`index` to be an integer in \[-80, 79\]"):
        plots.mc_histogram(pred, index=80)
    with pytest.raises(BayesdropError, match=r"`cls` to be class/output indices in \[0, 2\]"):
        plots.mc_histogram(pred, cls=3)
    with pytest.raises(BayesdropError, match=r"`pred` to be a classification Prediction"):
        plots.reliability_diagram(rpred, y)
    with pytest.raises(BayesdropError, match=r"`targets` to have length 80"):
        plots.risk_coverage(pred, y[:5])
    with pytest.raises(BayesdropError, match=r"`scores` to be names among"):
        plots.risk_coverage(pred, y, scores=("margin",))
    with pytest.raises(BayesdropError, match=r"`pred` to be a regression bayesdrop.Prediction"):
        plots.regression_bands(x, pred)
    with pytest.raises(BayesdropError, match=r"`x` to have length 50"):
        plots.regression_bands(x[:10], rpred)
    with pytest.raises(BayesdropError, match=r"`score` to be one of"):
        plots.ood_histogram(pred, pred, score="margin")
