"""CO2 extrapolation (Gal & Ghahramani 2016, figure 2): MC dropout bands vs a standard network.

A ReLU network of 4 hidden layers of 1,024 units with dropout 0.1 after each hidden layer is
trained on the 272 Mauna Loa CO2 points; it then predicts the 1,000 test inputs beyond the
training range. The standard network's prediction is the same network evaluated
deterministically (dropout off, i.e. weight averaging: the paper's "standard dropout"
panel); MC dropout gives the predictive mean and 1 and 2 standard deviation bands of the
predictive distribution (epistemic spread of the samples plus aleatoric 1 / tau).

Run: ``python -m bayesdrop.reproduce.images co2 --out docs/results``.
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

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

import bayesdrop as bd

from .._errors import expected
from ..data import load_co2
from ..models import RegressionMLP
from ..training import fit, prior_weight_decay
from ..training._utils import seeded
from ._common import load_average, machine_description, write_text_atomic

__all__ = ["CO2Result", "run_co2", "train_regression_net", "estimate_tau", "band_summary"]


@dataclass
class CO2Result:
    """What :func:`run_co2` measured.

    Attributes:
        x: ``(N,)`` inputs where the networks were evaluated (training and test inputs).
        mc_mean: ``(N,)`` MC predictive mean.
        mc_std: ``(N,)`` predictive standard deviation (epistemic + aleatoric).
        epistemic_std: ``(N,)`` standard deviation of the MC samples alone.
        standard: ``(N,)`` the deterministic (weight-averaged) prediction.
        tau: model precision used for the aleatoric part (variance 1 / tau).
        std_ratio: mean predictive std at the far end (x >= 3) over that in the training range.
        summary: the band statistics of :func:`band_summary`.
        steps, epochs, samples: the protocol actually run.
        seconds: wall-clock seconds of training, prediction and the whole run.
    """

    x: Tensor
    mc_mean: Tensor
    mc_std: Tensor
    epistemic_std: Tensor
    standard: Tensor
    tau: float
    std_ratio: float
    summary: dict[str, Any]
    steps: int
    epochs: int
    samples: int
    seconds: dict[str, float] = field(default_factory=dict)


def train_regression_net(
    x: Tensor,
    y: Tensor,
    *,
    hidden: Sequence[int] = (1024, 1024, 1024, 1024),
    dropout: float = 0.1,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 1e-3,
    length_scale: float = 1e-2,
    seed: int = 0,
) -> tuple[nn.Module, int]:
    """Train a ReLU ``RegressionMLP`` with dropout after every hidden layer on ``(x, y)``.

    Squared error, Adam, the prior weight decay ``2 * l^2 (1 - p) / (2 N)`` (tau = 1 in the
    prior), through ``bayesdrop.training.fit``; ``steps`` mini-batches rounded up to whole
    epochs.

    Args:
        x: ``(N, 1)`` inputs; y: ``(N, 1)`` targets.
        hidden: hidden layer widths.
        dropout: dropout rate after each hidden layer.
        steps: number of Adam steps wanted.
        batch_size: mini-batch size.
        lr: learning rate.
        length_scale: prior length-scale l.
        seed: seed of the initialisation, shuffling and dropout masks.

    Returns:
        ``(model, epochs)``: the trained network and the number of epochs run.
    """
    if not isinstance(steps, int) or steps < 1:
        raise expected("steps", "a positive integer", steps)
    with seeded(seed, "cpu"):  # the initialisation, without touching the caller's global RNG
        model = RegressionMLP(x.shape[1], hidden=tuple(hidden), dropout=dropout, placement="hidden")
    per_epoch = math.ceil(len(x) / batch_size)
    epochs = math.ceil(steps / per_epoch)
    fit(
        bd.wrap(model, task="regression"),
        TensorDataset(x, y),
        task="regression",
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        length_scale=length_scale,
        p=dropout,
        tau=1.0,
        device="cpu",
        seed=seed,
    )
    return model, epochs


def estimate_tau(model: nn.Module, x: Tensor, y: Tensor, samples: int = 100, seed: int = 0) -> float:
    """Plug-in model precision: ``1 / mean((y - MC mean)^2)`` on the training data.

    Args:
        model: the trained network; x: ``(N, 1)`` and y: ``(N, 1)`` its training data.
        samples: MC samples of the mean.
    """
    # Only the MC mean is used here: tau=1.0 is a placeholder (it would set the aleatoric part).
    pred = bd.wrap(model, task="regression", tau=1.0).predict(x, samples=samples, seed=seed)
    mse = float(((pred.mean - y) ** 2).mean())
    return 1.0 / max(mse, 1e-12)


def band_summary(x: Tensor, std: Tensor, train_max: float, *, far: float = 3.0) -> dict[str, float]:
    """Mean predictive std inside the training range, just beyond it and far beyond it.

    Args:
        x: ``(N,)`` inputs; std: ``(N,)`` predictive standard deviations.
        train_max: largest training input (start of the extrapolation).
        far: inputs ``>= far`` count as far from the data.

    Returns:
        ``{"std_in", "std_near", "std_far", "ratio_far_in"}``; near is
        ``train_max < x < far``.
    """
    x, std = x.reshape(-1), std.reshape(-1)
    if x.shape != std.shape:
        raise expected("std", f"the shape of `x` {tuple(x.shape)}", tuple(std.shape))
    inside, near, beyond = x <= train_max, (x > train_max) & (x < far), x >= far
    if not inside.any() or not beyond.any():
        raise expected("x", f"points both <= {train_max} and >= {far}", "points on one side only")
    s_in, s_far = float(std[inside].mean()), float(std[beyond].mean())
    s_near = float(std[near].mean()) if near.any() else float("nan")
    return {"std_in": s_in, "std_near": s_near, "std_far": s_far, "ratio_far_in": s_far / s_in}


def run_co2(
    root: str | PathLike[str] | None = None,
    *,
    out: str | PathLike[str] | None = None,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 1e-3,
    hidden: Sequence[int] = (1024, 1024, 1024, 1024),
    samples: int = 200,
    tau: float | None = None,
    length_scale: float = 1e-2,
    test_stride: int = 4,
    seed: int = 0,
    command: str = "python -m bayesdrop.reproduce.images co2 --out docs/results",
) -> CO2Result:
    """Train the CO2 network, predict the extrapolation range, write the report and chart.

    Args:
        root: folder holding ``co2/`` (the shared data), or None to search the usual places.
        out: folder for ``co2.md``, ``co2.json`` and ``co2.png``; None writes nothing.
        steps, batch_size, lr, hidden, length_scale: training, see
            :func:`train_regression_net`.
        samples: MC samples T.
        tau: model precision; None estimates it with :func:`estimate_tau`.
        test_stride: predict every ``test_stride``-th of the 1,000 test inputs (cost).
        seed: seed of training and sampling.
        command: the command line recorded in the report.

    Returns:
        The :class:`CO2Result`.
    """
    if tau is not None and not tau > 0:
        raise expected("tau", "a positive float or None", tau)
    t0 = time.perf_counter()
    data = load_co2(root)
    model, epochs = train_regression_net(
        data.x_train,
        data.y_train,
        hidden=hidden,
        dropout=0.1,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        length_scale=length_scale,
        seed=seed,
    )
    t_train = time.perf_counter() - t0

    t1 = time.perf_counter()
    tau_used = tau if tau is not None else estimate_tau(model, data.x_train, data.y_train, seed=seed)
    x = torch.cat([data.x_train, data.x_test[::test_stride]]).sort(0).values
    pred = bd.wrap(model, task="regression", tau=tau_used).predict(x, samples=samples, seed=seed)
    model.eval()
    with torch.no_grad():
        standard = model(x).reshape(-1)
    t_pred = time.perf_counter() - t1

    std = pred.total.reshape(-1).sqrt()
    train_max = float(data.x_train.max())
    summary = band_summary(x, std, train_max)
    epi = pred.epistemic.reshape(-1).sqrt()
    epi_summary = band_summary(x, epi, train_max)
    mean = pred.mean.reshape(-1)
    far = x.reshape(-1) >= 3.0
    summary.update(
        {
            "epistemic_std_in": epi_summary["std_in"],
            "epistemic_std_far": epi_summary["std_far"],
            "aleatoric_std": 1.0 / math.sqrt(tau_used),
            "train_rmse_mc_mean": float((_at(x, mean, data.x_train) - data.y_train.reshape(-1)).pow(2).mean().sqrt()),
            "train_max": train_max,
            "y_std": float(data.y_train.std()),
            "test_stride": test_stride,
            "standard_far_inside_2std": float(((standard[far] - mean[far]).abs() <= 2 * std[far]).float().mean()),
            "standard_far_mean": float(standard[far].mean()),
            "mc_far_mean": float(mean[far].mean()),
        }
    )
    result = CO2Result(
        x=x.reshape(-1),
        mc_mean=mean,
        mc_std=std,
        epistemic_std=epi,
        standard=standard,
        tau=float(tau_used),
        std_ratio=summary["ratio_far_in"],
        summary=summary,
        steps=steps,
        epochs=epochs,
        samples=samples,
    )
    result.seconds = {"train": t_train, "predict": t_pred}
    if out is not None:
        out = Path(out)
        _chart(result, data.x_train, data.y_train, train_max, out / "co2.png")
        result.seconds["total"] = time.perf_counter() - t0
        write_text_atomic(
            out / "co2.json",
            json.dumps(_summary_json(result, batch_size, lr, hidden, length_scale, tau is None), indent=2) + "\n",
        )
        write_text_atomic(
            out / "co2.md",
            _markdown(result, command, batch_size, lr, hidden, length_scale, tau is None, len(data.x_train)),
        )
    else:
        result.seconds["total"] = time.perf_counter() - t0
    return result


def _at(x: Tensor, values: Tensor, where: Tensor) -> Tensor:
    """``values`` at the inputs ``where`` (each of which is one of the sorted ``x``)."""
    idx = torch.searchsorted(x.reshape(-1).contiguous(), where.reshape(-1).contiguous())
    return values[idx.clamp_max(len(values) - 1)]


def _summary_json(
    r: CO2Result, batch_size: int, lr: float, hidden: Sequence[int], length_scale: float, auto_tau: bool
) -> dict[str, Any]:
    return {
        "experiment": "co2",
        "hidden": list(hidden),
        "dropout": 0.1,
        "steps": r.steps,
        "epochs": r.epochs,
        "batch_size": batch_size,
        "lr": lr,
        "length_scale": length_scale,
        "tau": r.tau,
        "tau_source": "1 / training MSE of the MC mean" if auto_tau else "given",
        "samples": r.samples,
        "n_points": int(r.x.numel()),
        **{k: round(v, 5) for k, v in r.summary.items()},
        "seconds": {k: round(v, 1) for k, v in r.seconds.items()},
        "machine": machine_description(),
    }


def _chart(r: CO2Result, x_train: Tensor, y_train: Tensor, train_max: float, path: Path) -> None:
    from matplotlib.figure import Figure

    from ..plots import save_figure

    x = r.x.numpy()
    fig = Figure(figsize=(8.0, 7.2), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, height_ratios=[3, 3, 1.6])
    lo = min(float(y_train.min()), float((r.mc_mean - 2 * r.mc_std).min()), float(r.standard.min()))
    hi = max(float(y_train.max()), float((r.mc_mean + 2 * r.mc_std).max()), float(r.standard.max()))
    pad = 0.05 * (hi - lo)
    for ax in axes[:2]:
        ax.scatter(
            x_train.reshape(-1).numpy(),
            y_train.reshape(-1).numpy(),
            s=5,
            color="0.25",
            label="training data (272)",
            zorder=3,
        )
        ax.set_ylim(lo - pad, hi + pad)
    axes[0].plot(
        x, r.standard.numpy(), color="#C44E52", lw=1.6, label="standard network (dropout off, weight averaging)"
    )
    axes[0].set_title("(a) standard dropout network: one deterministic prediction", fontsize=10)
    m, s = r.mc_mean.numpy(), r.mc_std.numpy()
    axes[1].fill_between(x, m - 2 * s, m + 2 * s, color="#F4A261", alpha=0.35, lw=0, label="±2 std")
    axes[1].fill_between(x, m - s, m + s, color="#F4A261", alpha=0.75, lw=0, label="±1 std")
    axes[1].plot(x, m, color="#0B3C5D", lw=1.6, label="MC predictive mean")
    axes[1].set_title(
        f"(b) MC dropout, T = {r.samples}: predictive mean and bands (epistemic + aleatoric, tau = {r.tau:.3g})",
        fontsize=10,
    )
    axes[2].plot(x, s, color="#0B3C5D", lw=1.4, label="predictive std")
    axes[2].plot(x, r.epistemic_std.numpy(), color="#2a9d8f", lw=1.2, ls="--", label="epistemic std")
    axes[2].set_ylim(bottom=0)
    axes[2].set_xlabel("x (normalised time)")
    axes[2].set_ylabel("std")
    for ax, where in zip(axes, ("upper left", "upper left", "center left"), strict=True):
        ax.axvline(train_max, color="0.4", ls=":", lw=1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc=where, frameon=False)
    axes[0].set_ylabel("y (CO2, normalised)")
    axes[1].set_ylabel("y (CO2, normalised)")
    fig.suptitle("Mauna Loa CO2: extrapolation beyond the training data (dotted line)", fontsize=11)
    save_figure(fig, path, dpi=90)


def _fit_note(s: dict[str, Any]) -> str:
    """What the measured numbers say, in words (computed, not hand-written)."""
    epi_ratio = s["epistemic_std_far"] / max(s["epistemic_std_in"], 1e-12)
    if s["train_rmse_mc_mean"] > 0.5 * s["y_std"]:
        fit_text = (
            f"In this budget the network learns the trend but not the seasonal oscillation "
            f"(training RMSE {s['train_rmse_mc_mean']:.2f} against a target std of "
            f"{s['y_std']:.2f}), so the plug-in noise std ({s['aleatoric_std']:.2f}) is large and "
            f"dominates the bands inside the data"
        )
    else:
        fit_text = (
            f"The network fits the training data closely (training RMSE "
            f"{s['train_rmse_mc_mean']:.3f} against a target std of {s['y_std']:.2f})"
        )
    trend = "grows" if epi_ratio > 1.5 else "does not grow much"
    return (
        f"{fit_text}. The epistemic part, the spread of the MC samples, {trend} away from the "
        f"data: {epi_ratio:.1f}x larger at x ≥ 3 than inside the training range, while the "
        f"standard network gives one curve without any error bar (panel a)."
    )


def _markdown(
    r: CO2Result,
    command: str,
    batch_size: int,
    lr: float,
    hidden: Sequence[int],
    length_scale: float,
    auto_tau: bool,
    n: int,
) -> str:
    s = r.summary
    sec = r.seconds
    wd = 2 * prior_weight_decay(length_scale, 0.1, n, 1.0)
    tau_text = (
        f"tau = {r.tau:.4g} estimated after training as 1 / (training MSE of the MC mean), so "
        f"the aleatoric std is {s['aleatoric_std']:.3f}"
        if auto_tau
        else f"tau = {r.tau:.4g} (given), aleatoric std {s['aleatoric_std']:.3f}"
    )
    return f"""# CO2 extrapolation: MC dropout vs a standard network (Gal & Ghahramani 2016, fig 2)

Generated by `{command}` (do not edit by hand; rerun the command).

![CO2 extrapolation](co2.png)

## Protocol
- Data: the 272 Mauna Loa CO2 training points and the 1,000 test inputs beyond them
  (`bayesdrop.data.load_co2`, x normalised; the test file has no targets); every
  {s["test_stride"]:.0f}th test input is predicted ({int(r.x.numel())} points with the
  training inputs).
- Network: `RegressionMLP(1, hidden={tuple(hidden)}, dropout=0.1, placement="hidden")`:
  ReLU, dropout 0.1 after each hidden layer, as in the paper.
- Training: squared error, Adam (lr {lr:g}), batch {batch_size}, {r.steps} steps
  ({r.epochs} epochs), prior weight decay 2·λ = {wd:.2g} (length-scale {length_scale:g}, tau 1
  in the prior) via `bayesdrop.training.fit`. **Far shorter than the paper**, whose Caffe models
  trained for about a million iterations; this keeps the run to minutes on a CPU.
- Standard network: the same trained network evaluated deterministically (dropout off, weights
  scaled: "standard dropout with weight averaging", the paper's panel (a)); no separate
  network without dropout was trained.
- MC dropout: T = {r.samples} samples (`bd.wrap(model, task="regression", tau=tau)`); bands are
  the mean ± 1 and 2 standard deviations of the predictive distribution, variance = sample
  variance (epistemic) + 1/tau (aleatoric); {tau_text}.

## Measured
| region | mean predictive std | mean epistemic std |
|---|---|---|
| training range (x ≤ {s["train_max"]:.3f}) | {s["std_in"]:.3f} | {s["epistemic_std_in"]:.3f} |
| just beyond (x < 3) | {s["std_near"]:.3f} | |
| far beyond (x ≥ 3) | {s["std_far"]:.3f} | {s["epistemic_std_far"]:.3f} |

- The predictive std is **{s["ratio_far_in"]:.1f}x** larger far from the data than inside it.
- Training RMSE of the MC mean: {s["train_rmse_mc_mean"]:.3f}.
- Far beyond the data (x ≥ 3) the standard network predicts {s["standard_far_mean"]:.2f} on
  average (MC mean {s["mc_far_mean"]:.2f}); it lies within the MC ±2 std band at
  {100 * s["standard_far_inside_2std"]:.0f}% of those points, but it comes with no error bar.

## Notes
- {_fit_note(s)}
- Differences from the paper: far fewer training steps (the paper's Caffe models trained for
  about a million iterations), so the fit inside the data and the extrapolated mean differ from
  its figure; tau here is a plug-in estimate, the paper does not state its value.

Machine: {machine_description()}; 1-minute load average at the end {load_average()} (shared
machine, timings noisy). Wall-clock: {sec.get("total", 0):.0f} s (training {sec["train"]:.0f} s,
MC prediction {sec["predict"]:.0f} s).
"""
