"""evaluate / Evaluator: agreement with the metric functions, streaming vs all-at-once, real
mc.predict outputs, the printed table, bad inputs, and the docstring examples."""

from __future__ import annotations

import dataclasses
import doctest
import io
import math

import pytest
import torch
from torch import nn

import bayesdrop as bd
from _predictions import classification_prediction
from bayesdrop import BayesdropError, Prediction, metrics
from bayesdrop.uncertainty import (
    mixture_moments,
)


def _regression_prediction(means: torch.Tensor, variances: torch.Tensor) -> Prediction:
    mean, ale, epi = mixture_moments(means, variances)
    return Prediction(
        task="regression",
        n_samples=means.shape[1],
        mean=mean,
        total=ale + epi,
        aleatoric=ale,
        epistemic=epi,
        variance=ale + epi,
        kept_samples=means,
        kept_sample_variances=variances,
    )


def _slice(pred: Prediction, sl: slice) -> Prediction:
    fields = {
        f.name: getattr(pred, f.name)[sl]
        for f in dataclasses.fields(pred)
        if isinstance(getattr(pred, f.name), torch.Tensor)
    }
    return dataclasses.replace(pred, **fields)


def _classification_data(seed: int = 0, n: int = 120, t: int = 8, c: int = 4):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, t, c, generator=g, dtype=torch.float64) * 2
    logits[torch.arange(n), :, target] += 1.5  # better than chance
    pred = classification_prediction(torch.log_softmax(logits, -1))
    ood_logits = torch.randn(50, t, c, generator=g, dtype=torch.float64)
    ood = classification_prediction(torch.log_softmax(ood_logits, -1))
    return pred, target, ood


def _regression_data(seed: int = 0, n: int = 60, t: int = 12):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, t, 2, generator=g, dtype=torch.float64) * 0.3
    variances = 0.2 + torch.rand(n, t, 2, generator=g, dtype=torch.float64)
    target = means.mean(1) + torch.randn(n, 2, generator=g, dtype=torch.float64)
    return _regression_prediction(means, variances), target


def test_classification_matches_the_metric_functions() -> None:
    pred, y, ood = _classification_data()
    r = metrics.evaluate(pred, y, ood=ood, n_bins=10)
    p = pred.mean
    conf, correct = p.max(1).values, p.argmax(1) == y
    assert r["n_samples"] == 8 and r["n_examples"] == 120 and r["n_ood"] == 50
    assert r["accuracy"] == metrics.accuracy(p, y)
    assert r["nll"] == pytest.approx(metrics.nll(pred.log_mean, y, log_probs=True))
    assert r["brier"] == pytest.approx(metrics.brier_score(p, y))
    assert r["entropy"] == pytest.approx(pred.total.mean().item())
    assert r["mutual_information"] == pytest.approx(pred.epistemic.mean().item())
    for key, fn in (("ece", metrics.ece), ("aece", metrics.adaptive_ece), ("mce", metrics.mce)):
        assert r[key] == pytest.approx(fn(p, y, 10))
    assert r["cwece"] == pytest.approx(metrics.classwise_ece(p, y, 10))
    assert r["aurc"] == pytest.approx(metrics.aurc(conf, correct))
    assert r["augrc"] == pytest.approx(metrics.augrc(conf, correct))
    assert r["risk_at_80_coverage"] == pytest.approx(metrics.risk_at_coverage(conf, correct, 0.8))
    cov = metrics.coverage_at_risk(conf, correct, 0.05)
    assert (r["coverage_at_5_risk"], r["coverage_at_5_risk_reached"]) == cov[:2]
    assert r["error_auroc_entropy"] == pytest.approx(metrics.error_auroc(pred.total, correct))
    s_in, s_out = metrics.ood_scores(pred), metrics.ood_scores(ood)
    for name in metrics.OOD_SCORES:
        expected = metrics.ood_metrics(s_in[name], s_out[name])
        for key, value in expected.items():
            assert r[f"ood_{key}_{name}"] == pytest.approx(value)
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in r.values())


def test_regression_matches_the_metric_functions() -> None:
    pred, y = _regression_data()
    r = metrics.evaluate(pred, y, levels=(0.9,))
    assert r["rmse"] == pytest.approx(metrics.rmse(pred.mean, y))
    assert r["mae"] == pytest.approx(metrics.mae(pred.mean, y))
    assert r["gaussian_nll"] == pytest.approx(metrics.gaussian_nll(pred.mean, pred.total, y))
    assert r["mc_log_likelihood"] == pytest.approx(
        metrics.mc_log_likelihood(pred.samples, y, variances=pred.sample_variances)
    )
    assert r["crps"] == pytest.approx(metrics.crps_mixture(pred.samples, y, variances=pred.sample_variances))
    assert r["picp_90"] == pytest.approx(metrics.picp(pred.mean, pred.total, y, 0.9))
    assert r["width_90"] == pytest.approx(metrics.interval_width(pred.total, 0.9))
    assert r["qce"] == pytest.approx(metrics.quantile_calibration_error(pred.mean, pred.total, y))
    # Without kept samples: no mixture log-likelihood, and the CRPS of the Gaussian.
    bare = dataclasses.replace(pred, kept_samples=None, kept_sample_variances=None)
    r2 = metrics.evaluate(bare, y)
    assert "mc_log_likelihood" not in r2
    assert r2["crps"] == pytest.approx(metrics.crps_gaussian(pred.mean, pred.total, y))


def test_streaming_equals_all_at_once() -> None:
    pred, y, ood = _classification_data(seed=3)
    whole = metrics.evaluate(pred, y, ood=ood)
    ev = metrics.Evaluator()
    for sl in (slice(0, 7), slice(7, 70), slice(70, None)):
        ev.update(_slice(pred, sl), y[sl])
    for sl in (slice(0, 20), slice(20, None)):
        ev.update_ood(_slice(ood, sl))
    streamed = ev.compute()
    assert streamed.keys() == whole.keys()
    for key, value in whole.items():
        assert streamed[key] == pytest.approx(value, abs=1e-12), key
    # Fixed-size state: per-bin sums do not grow with the number of batches.
    assert ev._bins.shape == (15, 3) and ev._cw_bins.shape == (4, 15, 3)

    rpred, ry = _regression_data(seed=4)
    whole = metrics.evaluate(rpred, ry)
    ev = metrics.Evaluator()
    for sl in (slice(0, 25), slice(25, None)):
        ev.update(_slice(rpred, sl), ry[sl])
    streamed = ev.compute()
    assert streamed.keys() == whole.keys()
    for key, value in whole.items():
        assert streamed[key] == pytest.approx(value, abs=1e-12), key


def test_real_mc_predict_outputs() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    mc = bd.wrap(net)
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    pred = mc.predict(x, samples=20, seed=0)
    ood = mc.predict(3 * torch.randn(30, 4), samples=20, seed=1)
    r = metrics.evaluate(pred, y, ood=ood, model=net, inputs=x[:1])
    assert r["n_samples"] == 20 and r["params"] == 4 * 16 + 16 + 16 * 3 + 3
    assert r["flops"] == 2 * (4 * 16 + 16 * 3) and r["mc_flops"] == 20 * r["flops"]
    assert r["accuracy"] == metrics.accuracy(pred.mean, y)
    table = metrics.format_table(r)
    for group in ("Classification", "Calibration", "Selective classification", "OOD detection"):
        assert group in table

    reg = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    mcr = bd.wrap(reg, task="regression", tau=4.0)
    xr, yr = torch.randn(30, 2), torch.randn(30, 1)
    kept = mcr.predict(xr, samples=15, seed=0, keep_samples=True, target=yr)
    r_kept = metrics.evaluate(kept, yr)
    # Our mixture log-likelihood agrees with the engine's running one.
    assert r_kept["mc_log_likelihood"] == pytest.approx(kept.log_likelihood.mean().item(), rel=1e-5)
    bare = mcr.predict(xr, samples=15, seed=0, target=yr)
    assert metrics.evaluate(bare, yr.flatten())["mc_log_likelihood"] == pytest.approx(
        r_kept["mc_log_likelihood"], rel=1e-5
    )


def test_table_layout_and_never_reached() -> None:
    pred, y, _ = _classification_data()
    r = metrics.evaluate(pred, y)
    r["coverage_at_5_risk"], r["coverage_at_5_risk_reached"] = 0.0, False
    text = metrics.format_table(r)
    assert "Cov@5Risk" in text and "never reached" in text
    assert f"{100 * r['accuracy']:.2f}%" in text
    assert "T = 8 MC samples" in text
    widths = {len(line) for line in text.splitlines()[1:] if line.startswith(("│", "┌", "└"))}
    assert len(widths) == 1  # every two-column box has the same width
    buf = io.StringIO()
    metrics.print_table(r, file=buf)
    assert buf.getvalue() == text + "\n"
    rpred, ry = _regression_data()
    rtext = metrics.format_table(metrics.evaluate(rpred, ry))
    assert "Regression" in rtext and "PICP@95%" in rtext and "OOD" not in rtext


def test_bad_inputs() -> None:
    pred, y, ood = _classification_data()
    rpred, ry = _regression_data()
    with pytest.raises(BayesdropError, match=r"`pred` to be a bayesdrop.Prediction"):
        metrics.evaluate(pred.mean, y)
    with pytest.raises(BayesdropError, match=r"`targets` to hold labels in \[0, 3\]"):
        metrics.evaluate(pred, y + 4)
    with pytest.raises(BayesdropError, match=r"`targets` to have length 120"):
        metrics.evaluate(pred, y[:10])
    with pytest.raises(BayesdropError, match=r"`ood` to be a classification Prediction"):
        metrics.evaluate(pred, y, ood=rpred)
    with pytest.raises(BayesdropError, match=r"`targets` to have the shape of `pred.mean`"):
        metrics.evaluate(rpred, ry[:, :1])
    with pytest.raises(BayesdropError, match=r"`inputs` needs `model`"):
        metrics.evaluate(pred, y, inputs=torch.zeros(1, 4))
    ev = metrics.Evaluator()
    with pytest.raises(BayesdropError, match=r"Nothing to compute"):
        ev.compute()
    ev.update(pred, y)
    with pytest.raises(BayesdropError, match=r"`pred` to be a classification Prediction like"):
        ev.update(rpred, ry)
    fewer = dataclasses.replace(pred, n_samples=3)
    with pytest.raises(BayesdropError, match=r"`pred` to be a Prediction with n_samples=8"):
        ev.update(fewer, y)
    with pytest.raises(BayesdropError, match=r"`pred.mean` to have rows summing to 1"):
        metrics.evaluate(dataclasses.replace(pred, mean=pred.mean * 0.5), y)
    with pytest.raises(BayesdropError, match=r"`n_bins` to be a positive integer"):
        metrics.Evaluator(n_bins=0)
    with pytest.raises(BayesdropError, match=r"`levels` to be a number in \(0, 1\)"):
        metrics.Evaluator(levels=(95,))
    with pytest.raises(BayesdropError, match=r"`results` to be the dict returned by `evaluate`"):
        metrics.format_table([1, 2])


def test_docstring_examples() -> None:
    import bayesdrop.metrics._calibration as cal
    import bayesdrop.metrics._classification as cls
    import bayesdrop.metrics._complexity as comp
    import bayesdrop.metrics._ranking as rank
    import bayesdrop.metrics._regression as reg
    import bayesdrop.metrics._selective as sel
    import bayesdrop.metrics._table as tab

    for module in (cal, cls, comp, rank, reg, sel, tab):
        result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__
