"""``evaluate`` and its streaming form ``Evaluator``: every applicable metric of a Prediction.

``Evaluator`` keeps fixed-size sufficient statistics (sums, per-bin sums, per-level counts) and,
for the ranking metrics (adaptive ECE, risk-coverage, AUROC), a few scalars per example; never
MC samples. ``evaluate`` is one ``Evaluator`` update, so both give the same numbers by
construction; each number comes from the metric functions' own private stages.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import BayesdropError, expected
from ..prediction import Prediction
from ._calibration import (
    _adaptive_ece,
    _bin_index,
    _bin_sums,
    _calibration_error,
    _classwise_from_sums,
    _classwise_sums,
)
from ._classification import _brier_per_example
from ._complexity import count_flops, count_parameters, mc_flops
from ._ranking import _auroc, _average_precision, _fpr_at_tpr
from ._regression import (
    _crps_gaussian_elements,
    _crps_mixture_elements,
    _gaussian_nll_elements,
    _mixture_log_likelihood,
    _pit_counts,
    _qce_from_counts,
    _z,
)
from ._selective import _augrc, _aurc, _coverage_at_risk, _curve, _risk_at_coverage
from ._validation import as_float, check_fraction, check_labels, check_n_bins, check_probs

__all__ = ["Evaluator", "evaluate", "ood_scores", "OOD_SCORES"]

#: Uncertainty scores used for OOD detection, higher = more likely out-of-distribution.
OOD_SCORES = ("msp", "entropy", "mutual_information", "variation_ratio")


def _pct_key(value: float) -> str:
    return f"{100 * value:g}".replace(".", "_")


def ood_scores(pred: Prediction) -> dict[str, Tensor]:
    """Per-example uncertainty scores of a classification Prediction, higher = more uncertain.

    Returns:
        ``{"msp": 1 - max_c mean_c, "entropy": total, "mutual_information": epistemic,
        "variation_ratio": variation_ratio}``, each ``(B,)`` (variation ratio only when the
        Prediction has it).
    """
    _check_prediction(pred, "pred", "classification")
    p = check_probs(pred.mean, "pred.mean")
    scores = {
        "msp": 1 - p.max(1).values,
        "entropy": as_float(pred.total, "pred.total", ndim=1),
        "mutual_information": as_float(pred.epistemic, "pred.epistemic", ndim=1),
    }
    if pred.variation_ratio is not None:
        scores["variation_ratio"] = as_float(pred.variation_ratio, "pred.variation_ratio", ndim=1)
    for name, s in scores.items():
        if s.shape[0] != p.shape[0]:
            raise BayesdropError(
                f"Expected `pred.{name}` to have length {p.shape[0]} like `pred.mean`, but got {s.shape[0]}."
            )
    return scores


def _check_prediction(pred: Any, name: str, task: str | None = None) -> None:
    if not isinstance(pred, Prediction):
        raise expected(name, "a bayesdrop.Prediction (from `mc.predict`)", type(pred).__name__)
    if task is not None and pred.task != task:
        raise expected(name, f"a {task} Prediction", f"a {pred.task} Prediction")


class Evaluator:
    """Streaming evaluation: ``update`` batch by batch, then ``compute`` the same dict as
    :func:`evaluate` on the whole data set.

    Example::

        ev = Evaluator(n_bins=15)
        for x, y in loader:
            ev.update(mc.predict(x, samples=100), y)
        for x in ood_loader:
            ev.update_ood(mc.predict(x, samples=100))
        print(format_table(ev.compute()))

    Args:
        n_bins: number of bins of the calibration errors.
        coverage: the coverage of Risk@Coverage (0.8: Risk@80Cov).
        risk: the risk of Coverage@Risk (0.05: Cov@5Risk).
        levels: nominal levels of the regression prediction intervals (PICP, width).
        n_levels: number of quantile levels of the quantile calibration error.
    """

    def __init__(
        self,
        n_bins: int = 15,
        *,
        coverage: float = 0.8,
        risk: float = 0.05,
        levels: tuple[float, ...] = (0.5, 0.9, 0.95),
        n_levels: int = 19,
    ) -> None:
        self.n_bins = check_n_bins(n_bins)
        self.coverage = check_fraction(coverage, "coverage", closed=True)
        self.risk = check_fraction(risk, "risk", closed=True)
        if not isinstance(levels, tuple | list) or not levels:
            raise expected("levels", "a non-empty tuple of numbers in (0, 1)", levels)
        self.levels = tuple(check_fraction(lv, "levels") for lv in levels)
        if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 1:
            raise expected("n_levels", "a positive integer", n_levels)
        self.n_levels = n_levels
        self.reset()

    def reset(self) -> None:
        """Forget every update."""
        self.task: str | None = None
        self.n_samples: int | None = None
        self.n = 0
        self._sums: dict[str, float] = {}
        self._bins: Tensor | None = None
        self._cw_bins: Tensor | None = None
        self._n_classes: int | None = None
        self._per_example: dict[str, list[Tensor]] = {}
        self._ood: dict[str, list[Tensor]] = {}
        self._n_ood = 0
        self._reg: dict[str, Any] = {}

    # ------------------------------------------------------------------------------ updates
    def _start(self, pred: Prediction) -> None:
        if self.task is None:
            self.task = pred.task
            self.n_samples = pred.n_samples
        elif pred.task != self.task:
            raise expected("pred", f"a {self.task} Prediction like the earlier updates", pred.task)
        if pred.n_samples != self.n_samples:
            raise expected(
                "pred",
                f"a Prediction with n_samples={self.n_samples} like the earlier updates",
                f"n_samples={pred.n_samples}",
            )

    def _add(self, key: str, value: Tensor | float) -> None:
        self._sums[key] = self._sums.get(key, 0.0) + float(value)

    def _keep(self, store: dict[str, list[Tensor]], key: str, value: Tensor) -> None:
        store.setdefault(key, []).append(value.detach().to("cpu", torch.float64))

    def update(self, pred: Prediction, targets: Any) -> Evaluator:
        """Add one batch: a Prediction on in-distribution inputs and its targets.

        Args:
            pred: a :class:`bayesdrop.Prediction` of B inputs.
            targets: ``(B,)`` integer labels (classification) or ``(B, *out)`` targets.
        """
        _check_prediction(pred, "pred")
        if pred.task == "classification":
            self._update_classification(pred, targets)
        elif pred.task == "regression":
            self._update_regression(pred, targets)
        else:
            raise expected("pred.task", "'classification' or 'regression'", pred.task)
        return self

    def _update_classification(self, pred: Prediction, targets: Any) -> None:
        p = check_probs(pred.mean, "pred.mean")
        y = check_labels(targets, "targets", p.shape[0], p.shape[1]).to(p.device)
        if self._n_classes is not None and p.shape[1] != self._n_classes:
            raise expected("pred.mean", f"{self._n_classes} classes like the earlier updates", p.shape[1])
        scores = ood_scores(pred)
        self._start(pred)
        self._n_classes = p.shape[1]
        conf, predicted = p.max(1)
        correct = predicted == y
        if pred.log_mean is not None:
            log_p = as_float(pred.log_mean, "pred.log_mean", ndim=2).to(p.device)
        else:
            log_p = p.clamp_min(torch.finfo(torch.float64).tiny).log()
        self.n += p.shape[0]
        self._add("correct", correct.sum())
        self._add("nll", -log_p.gather(1, y[:, None]).sum())
        self._add("brier", _brier_per_example(p, y).sum())
        self._add("entropy", scores["entropy"].sum())
        self._add("aleatoric", as_float(pred.aleatoric, "pred.aleatoric", ndim=1).sum())
        self._add("mutual_information", scores["mutual_information"].sum())
        bins = _bin_sums(conf, correct, _bin_index(conf, self.n_bins), self.n_bins).cpu()
        cw = _classwise_sums(p, y, self.n_bins).cpu()
        self._bins = bins if self._bins is None else self._bins + bins
        self._cw_bins = cw if self._cw_bins is None else self._cw_bins + cw
        self._keep(self._per_example, "confidence", conf)
        self._keep(self._per_example, "correct", correct)
        for name, s in scores.items():
            self._keep(self._per_example, name, s)

    def update_ood(self, pred: Prediction) -> Evaluator:
        """Add one batch of predictions on out-of-distribution inputs (classification)."""
        _check_prediction(pred, "ood", "classification")
        if self.task not in (None, "classification"):
            raise expected("ood", "used with classification updates", f"task {self.task!r}")
        scores = ood_scores(pred)
        if self._n_classes is not None and pred.mean.shape[1] != self._n_classes:
            raise expected(
                "ood.mean",
                f"{self._n_classes} classes like the in-distribution predictions",
                pred.mean.shape[1],
            )
        self._n_ood += pred.mean.shape[0]
        for name, s in scores.items():
            self._keep(self._ood, name, s)
        return self

    def _update_regression(self, pred: Prediction, targets: Any) -> None:
        m = as_float(pred.mean, "pred.mean", min_ndim=1)
        y = as_float(targets, "targets", min_ndim=1)
        if y.shape != m.shape:
            if y.numel() == m.numel() and y.shape[0] == m.shape[0] and min(y.dim(), m.dim()) == 1:
                y = y.reshape(m.shape)
            else:
                raise BayesdropError(
                    f"Expected argument `targets` to have the shape of `pred.mean` "
                    f"{tuple(m.shape)}, but got shape {tuple(y.shape)}."
                )
        y = y.to(m.device)
        total = as_float(pred.total, "pred.total", min_ndim=1).to(m.device).expand(m.shape)
        aleatoric = as_float(pred.aleatoric, "pred.aleatoric", min_ndim=1).to(m.device)
        epistemic = as_float(pred.epistemic, "pred.epistemic", min_ndim=1).to(m.device)
        self._start(pred)
        r = self._reg
        self.n += m.shape[0]
        r["elements"] = r.get("elements", 0) + m.numel()
        self._add("se", ((m - y) ** 2).sum())
        self._add("ae", (m - y).abs().sum())
        self._add("aleatoric", aleatoric.sum())
        self._add("epistemic", epistemic.sum())
        positive = bool((total > 0).all())
        r["var_ok"] = r.get("var_ok", True) and positive
        if positive:
            self._add("gnll", _gaussian_nll_elements(m, total, y).sum())
            self._add("crps_gaussian", _crps_gaussian_elements(m, total, y).sum())
            sd = total.sqrt()
            for lv in self.levels:
                z = _z(lv)
                self._add(f"covered_{lv}", ((y - m).abs() <= z * sd).sum())
                self._add(f"width_{lv}", (2 * z * sd).sum())
            pit = torch.special.ndtr((y - m) / sd)
            counts = _pit_counts(pit, self.n_levels).cpu()
            r["pit"] = counts if "pit" not in r else r["pit"] + counts
        # Mixture metrics need the samples (or the engine's own log-likelihood).
        samples = pred.kept_samples
        ll = None
        crps_mix = None
        if samples is not None:
            s = as_float(samples, "pred.samples", min_ndim=2).to(m.device)
            if pred.kept_sample_variances is not None:
                v = as_float(pred.kept_sample_variances, "pred.sample_variances", min_ndim=2)
                v = v.to(m.device)
            elif bool((aleatoric > 0).all()):
                v = aleatoric.expand(m.shape)[:, None].expand(s.shape)
            else:
                v = None
            crps_mix = _crps_mixture_elements(s, v, y).sum()
            if v is not None:
                ll = _mixture_log_likelihood(s, v, y).sum()
        if ll is None and pred.log_likelihood is not None:
            ll = as_float(pred.log_likelihood, "pred.log_likelihood", ndim=1).sum()
        r["ll_batches"] = r.get("ll_batches", 0) + (ll is not None)
        r["mix_batches"] = r.get("mix_batches", 0) + (crps_mix is not None)
        r["batches"] = r.get("batches", 0) + 1
        if ll is not None:
            self._add("mc_ll", ll)
        if crps_mix is not None:
            self._add("crps_mixture", crps_mix)

    # ------------------------------------------------------------------------------ compute
    def compute(self) -> dict[str, Any]:
        """Every applicable metric as a plain dict of Python numbers (see :func:`evaluate`)."""
        if self.task is None or self.n == 0:
            raise BayesdropError("Nothing to compute: call `update(pred, targets)` with at least one batch first.")
        if self.task == "classification":
            return self._compute_classification()
        return self._compute_regression()

    def _cat(self, store: dict[str, list[Tensor]], key: str) -> Tensor:
        return torch.cat(store[key])

    def _compute_classification(self) -> dict[str, Any]:
        n, s = self.n, self._sums
        out: dict[str, Any] = {"task": "classification", "n_examples": n}
        out["n_samples"] = self.n_samples
        out["accuracy"] = s["correct"] / n
        out["nll"] = s["nll"] / n
        out["brier"] = s["brier"] / n
        out["entropy"] = s["entropy"] / n
        out["expected_entropy"] = s["aleatoric"] / n
        out["mutual_information"] = s["mutual_information"] / n
        conf = self._cat(self._per_example, "confidence")
        correct = self._cat(self._per_example, "correct") > 0.5
        out["ece"] = _calibration_error(self._bins, n)
        out["aece"] = _adaptive_ece(conf, correct, self.n_bins)
        out["mce"] = _calibration_error(self._bins, n, norm="max")
        out["cwece"] = _classwise_from_sums(self._cw_bins, n)
        out["n_bins"] = self.n_bins
        curve = _curve(conf, correct)
        out["aurc"] = _aurc(curve)
        out["augrc"] = _augrc(curve)
        out[f"risk_at_{_pct_key(self.coverage)}_coverage"] = _risk_at_coverage(curve, max(self.coverage, 1e-12))
        car = _coverage_at_risk(curve, self.risk)
        out[f"coverage_at_{_pct_key(self.risk)}_risk"] = car.coverage
        out[f"coverage_at_{_pct_key(self.risk)}_risk_reached"] = car.reached
        n_right = int(correct.sum())
        if 0 < n_right < n:
            for name in ("entropy", "mutual_information"):
                u = self._cat(self._per_example, name)
                out[f"error_auroc_{name}"] = _auroc(u, ~correct)
        if self._n_ood:
            out["n_ood"] = self._n_ood
            for name in OOD_SCORES:
                if name not in self._ood or name not in self._per_example:
                    continue
                s_in = self._cat(self._per_example, name)
                s_out = self._cat(self._ood, name)
                if s_out.numel() != self._n_ood:
                    continue
                sc = torch.cat([s_in, s_out])
                is_ood = torch.arange(sc.numel()) >= s_in.numel()
                out[f"ood_auroc_{name}"] = _auroc(sc, is_ood)
                out[f"ood_aupr_in_{name}"] = _average_precision(-sc, ~is_ood)
                out[f"ood_aupr_out_{name}"] = _average_precision(sc, is_ood)
                out[f"ood_fpr95_{name}"] = _fpr_at_tpr(-sc, ~is_ood, 0.95)
        return out

    def _compute_regression(self) -> dict[str, Any]:
        n, s, r = self.n, self._sums, self._reg
        ne = r["elements"]
        out: dict[str, Any] = {"task": "regression", "n_examples": n}
        out["n_samples"] = self.n_samples
        out["rmse"] = math.sqrt(s["se"] / ne)
        out["mae"] = s["ae"] / ne
        if r["var_ok"]:
            out["gaussian_nll"] = s["gnll"] / n
        if r["ll_batches"] == r["batches"]:
            out["mc_log_likelihood"] = s["mc_ll"] / n
        if r["mix_batches"] == r["batches"]:
            out["crps"] = s["crps_mixture"] / ne
        elif r["var_ok"]:
            out["crps"] = s["crps_gaussian"] / ne
        if r["var_ok"]:
            out["qce"] = _qce_from_counts(r["pit"], ne)
            for lv in self.levels:
                out[f"picp_{_pct_key(lv)}"] = s[f"covered_{lv}"] / ne
                out[f"width_{_pct_key(lv)}"] = s[f"width_{lv}"] / ne
        out["aleatoric"] = s["aleatoric"] / ne
        out["epistemic"] = s["epistemic"] / ne
        return out


def evaluate(
    pred: Prediction,
    targets: Any,
    ood: Prediction | None = None,
    n_bins: int = 15,
    *,
    model: nn.Module | None = None,
    inputs: Any = None,
    coverage: float = 0.8,
    risk: float = 0.05,
    levels: tuple[float, ...] = (0.5, 0.9, 0.95),
) -> dict[str, Any]:
    """Every applicable metric of an MC prediction, as a plain dict.

    Classification keys: ``accuracy``, ``nll``, ``brier``, ``entropy`` (mean predictive
    entropy), ``expected_entropy``, ``mutual_information``; ``ece``, ``aece``, ``mce``,
    ``cwece`` (``n_bins`` bins); ``aurc``, ``augrc``, ``risk_at_80_coverage``,
    ``coverage_at_5_risk`` with ``coverage_at_5_risk_reached`` (a bool, never NaN);
    ``error_auroc_entropy`` and ``error_auroc_mutual_information`` (how well the uncertainty
    ranks misclassifications; absent when every prediction is right or wrong); with ``ood``:
    ``ood_{auroc,aupr_in,aupr_out,fpr95}_{msp,entropy,mutual_information,variation_ratio}``.

    Regression keys: ``rmse``, ``mae``, ``gaussian_nll`` (of N(mean, total)),
    ``mc_log_likelihood`` (the mixture, from kept samples or ``pred.log_likelihood``, which must
    be for these targets), ``crps`` (of the mixture when samples were kept, else of the
    Gaussian), ``qce``, ``picp_<level>`` and ``width_<level>``, mean ``aleatoric`` and
    ``epistemic`` variances.

    Always: ``task``, ``n_examples``, ``n_samples``; with ``model``: ``params``; with ``model``
    and ``inputs``: ``flops`` (one forward of ``inputs``) and ``mc_flops`` (times n_samples).

    Args:
        pred: Prediction on the test inputs (``mc.predict(x)``).
        targets: ``(B,)`` labels or ``(B, *out)`` regression targets.
        ood: Prediction on out-of-distribution inputs (classification), or None.
        n_bins: number of calibration bins.
        model: the network, for the complexity metrics.
        inputs: example inputs of one forward pass, for the FLOPs.
        coverage: coverage of Risk@Coverage.
        risk: risk of Coverage@Risk.
        levels: prediction-interval levels (regression).

    Returns:
        A dict of Python numbers (and ``task``, a string); see :func:`format_table`.
    """
    ev = Evaluator(n_bins, coverage=coverage, risk=risk, levels=levels)
    ev.update(pred, targets)
    if ood is not None:
        ev.update_ood(ood)
    out = ev.compute()
    if model is not None:
        out.update(complexity(model, inputs, pred.n_samples))
    elif inputs is not None:
        raise BayesdropError("Argument `inputs` needs `model`: pass both to count FLOPs.")
    return out


def complexity(model: nn.Module, inputs: Any = None, n_samples: int = 1) -> dict[str, int]:
    """``{"params"}`` and, given ``inputs``, ``{"flops", "mc_flops"}`` of ``model``."""
    out = {"params": count_parameters(model)}
    if inputs is not None:
        args = inputs if isinstance(inputs, tuple) else (inputs,)
        flops = count_flops(model, *args)
        out["flops"] = flops
        out["mc_flops"] = mc_flops(flops, n_samples)
        if hasattr(model, "flops") and hasattr(model, "predict"):  # an MCModel: the engine's cost
            out["mc_flops_engine"] = model.flops(args if len(args) > 1 else args[0], n_samples)["engine"]
    return out
