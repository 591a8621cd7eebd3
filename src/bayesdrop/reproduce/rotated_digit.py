"""Rotated digit (Gal & Ghahramani 2016, figure 4): softmax inputs and outputs of MC dropout.

A LeNet-5 with dropout (p = 0.5) only before its last fully connected layer is trained on
MNIST; one test image of the digit 1 is rotated in 12 steps and each rotation is sampled 100
times. The chart scatters the 100 samples of the softmax input (logits) and the softmax output
of the top classes per rotation step, as in the paper.

Only the 10,000-image MNIST *test* set is available offline here, so the network is trained on
9,000 of those images and the digit comes from the other 1,000 (``load_mnist_test_split``).

Run: ``python -m bayesdrop.reproduce.images rotated-digit --out docs/results``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

import bayesdrop as bd

from .._errors import BayesdropError, expected
from ..data import load_mnist_test_split, rotation_series
from ..models import LeNet5
from ..training import fit
from ..training._utils import seeded
from ._common import load_average, machine_description, write_text_atomic

__all__ = [
    "RotatedDigitResult",
    "run_rotated_digit",
    "rotation_samples",
    "top_classes",
    "PAPER_PREDICTED",
    "change_steps",
]

#: The predicted classes across the 12 rotations reported by the paper (figure 4).
PAPER_PREDICTED = (1, 1, 1, 1, 1, 5, 5, 7, 7, 7, 7, 7)


@dataclass
class RotatedDigitResult:
    """What :func:`run_rotated_digit` measured.

    Attributes:
        angles: ``(S,)`` rotation of each step in degrees (counter-clockwise positive).
        logits: ``(S, T, C)`` MC samples of the softmax input.
        probs: ``(S, T, C)`` the same samples through the softmax.
        mean_probs: ``(S, C)`` MC predictive distribution per step.
        predicted: argmax of ``mean_probs`` per step.
        entropy: predictive entropy per step (nats).
        mutual_information: mutual information (epistemic part of the entropy) per step.
        classes: the top classes that are charted.
        predicted_opposite: predicted classes when rotating the other way (same angles).
        val_accuracy: MC accuracy (T samples) on the 1,000 held-out images.
        image_index: index of the digit in the held-out split.
        train_size, epochs, samples: the protocol actually run.
        seconds: wall-clock seconds of training, prediction and the whole run.
    """

    angles: list[float]
    logits: Tensor
    probs: Tensor
    mean_probs: Tensor
    predicted: list[int]
    entropy: list[float]
    mutual_information: list[float]
    classes: list[int]
    predicted_opposite: list[int]
    val_accuracy: float
    image_index: int
    train_size: int
    epochs: int
    samples: int
    seed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def rotation_samples(
    model: torch.nn.Module, images: Tensor, samples: int = 100, seed: int = 0
) -> tuple[Tensor, bd.Prediction]:
    """MC samples of the logits and the classification prediction of a series of images.

    The logits come from the same engine with the network read as a multi-output regression
    (its raw outputs are the "means"), so both calls draw the same dropout masks for the same
    ``seed``; ``softmax(logits)`` equals the classification samples.

    Args:
        model: a classifier with dropout, returning logits ``(B, C)``.
        images: ``(S, 1, H, W)`` the rotated images.
        samples: MC samples T.
        seed: sampling seed.

    Returns:
        ``(logits, pred)``: logits ``(S, T, C)`` and the classification
        :class:`bayesdrop.Prediction` of the S images with ``samples`` kept ``(S, T, C)``.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise expected("images", "a tensor of shape (S, C, H, W)", getattr(images, "shape", images))
    # The raw logit samples (read as a regression output; tau=1.0 is a placeholder, not used).
    raw = bd.wrap(model, task="regression", tau=1.0).predict(images, samples=samples, seed=seed, keep_samples=True)
    pred = bd.wrap(model, task="classification").predict(images, samples=samples, seed=seed, keep_samples=True)
    return raw.samples, pred


def top_classes(mean_probs: Tensor, k: int = 3) -> list[int]:
    """The classes to chart: every class predicted at some step, then the classes with the
    highest peak predictive probability, ``k`` in all (more if more were predicted).

    Args:
        mean_probs: ``(S, C)`` predictive probabilities per step.
        k: number of classes wanted.
    """
    if not isinstance(mean_probs, Tensor) or mean_probs.ndim != 2:
        raise expected("mean_probs", "a tensor of shape (S, C)", getattr(mean_probs, "shape", None))
    chosen: list[int] = []
    for c in mean_probs.argmax(1).tolist():
        if c not in chosen:
            chosen.append(c)
    for c in mean_probs.max(0).values.argsort(descending=True).tolist():
        if len(chosen) >= k:
            break
        if c not in chosen:
            chosen.append(c)
    return sorted(chosen)


def _pick_digit(x_val: Tensor, y_val: Tensor, digit: int = 1) -> int:
    hits = (y_val == digit).nonzero().flatten()
    if hits.numel() == 0:
        raise BayesdropError(f"The held-out split holds no image of the digit {digit}.")
    return int(hits[0])


def run_rotated_digit(
    root: str | PathLike[str] | None = None,
    *,
    out: str | PathLike[str] | None = None,
    epochs: int = 10,
    steps: int = 12,
    total_angle: float = 110.0,
    samples: int = 100,
    seed: int = 0,
    train_size: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    command: str = "python -m bayesdrop.reproduce.images rotated-digit --out docs/results",
) -> RotatedDigitResult:
    """Train the LeNet, sample the rotated digit, and (with ``out``) write the report and chart.

    Args:
        root: folder holding ``mnist/`` (the shared data), or None to search the usual places.
        out: folder for ``rotated_digit.md``, ``.json`` and ``.png``; None writes nothing.
        epochs: training epochs over the 9,000 training images.
        steps: rotation steps (images in the series, the first unrotated).
        total_angle: rotation of the last image in degrees (counter-clockwise when positive).
        samples: MC samples T per image.
        seed: seed of the split, the training and the sampling.
        train_size: train on only the first ``train_size`` training images (quick runs).
        batch_size, lr: Adam mini-batch size and learning rate.
        command: the command line recorded in the report.

    Returns:
        The :class:`RotatedDigitResult`.
    """
    if not isinstance(samples, int) or samples < 1:
        raise expected("samples", "a positive integer", samples)
    t0 = time.perf_counter()
    (x_train, y_train), (x_val, y_val) = load_mnist_test_split(root, val_size=1000, seed=seed)
    if train_size is not None:
        if not isinstance(train_size, int) or not 0 < train_size <= len(x_train):
            raise expected("train_size", f"an int in [1, {len(x_train)}] or None", train_size)
        x_train, y_train = x_train[:train_size], y_train[:train_size]

    with seeded(seed, "cpu"):  # the initialisation, without touching the caller's global RNG
        model = LeNet5(dropout=0.5, placement="last")
    mc = bd.wrap(model)
    fit(
        mc,
        TensorDataset(x_train, y_train),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        length_scale=1e-2,
        p=0.5,
        device="cpu",
        seed=seed,
    )
    t_train = time.perf_counter() - t0

    t1 = time.perf_counter()
    model.eval()
    val_pred = mc.predict(x_val, samples=samples, seed=seed)
    val_accuracy = float((val_pred.mean.argmax(1) == y_val).float().mean())
    index = _pick_digit(x_val, y_val, 1)
    images, angles = rotation_series(x_val[index], steps=steps, total_angle=total_angle)
    logits, pred = rotation_samples(model, images, samples=samples, seed=seed)
    opposite, _ = rotation_series(x_val[index], steps=steps, total_angle=-total_angle)
    opp_pred = mc.predict(opposite, samples=samples, seed=seed)
    t_pred = time.perf_counter() - t1

    result = RotatedDigitResult(
        angles=[round(float(a), 4) for a in angles],
        logits=logits,
        probs=pred.samples,
        mean_probs=pred.mean,
        predicted=pred.mean.argmax(1).tolist(),
        entropy=pred.total.tolist(),
        mutual_information=pred.epistemic.tolist(),
        classes=top_classes(pred.mean, 3),
        predicted_opposite=opp_pred.mean.argmax(1).tolist(),
        val_accuracy=val_accuracy,
        image_index=index,
        train_size=len(x_train),
        epochs=epochs,
        samples=samples,
        seed=seed,
    )
    result.seconds = {"train": t_train, "predict": t_pred}
    if out is not None:
        out = Path(out)
        _chart(result, images, out / "rotated_digit.png")
        result.seconds["total"] = time.perf_counter() - t0
        write_text_atomic(out / "rotated_digit.json", json.dumps(_summary(result), indent=2) + "\n")
        write_text_atomic(out / "rotated_digit.md", _markdown(result, command))
    else:
        result.seconds["total"] = time.perf_counter() - t0
    return result


def _summary(r: RotatedDigitResult) -> dict[str, Any]:
    return {
        "experiment": "rotated_digit",
        "angles_deg": r.angles,
        "predicted": r.predicted,
        "paper_predicted": list(PAPER_PREDICTED),
        "predicted_opposite_direction": r.predicted_opposite,
        "mean_probs": [[round(v, 5) for v in row] for row in r.mean_probs.tolist()],
        "entropy": [round(v, 5) for v in r.entropy],
        "mutual_information": [round(v, 5) for v in r.mutual_information],
        "logit_std": [[round(v, 4) for v in row] for row in r.logits.std(1).tolist()],
        "charted_classes": r.classes,
        "val_accuracy": r.val_accuracy,
        "image_index_in_heldout_split": r.image_index,
        "train_size": r.train_size,
        "epochs": r.epochs,
        "samples": r.samples,
        "seed": r.seed,
        "seconds": {k: round(v, 1) for k, v in r.seconds.items()},
        "machine": machine_description(),
    }


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _chart(r: RotatedDigitResult, images: Tensor, path: Path) -> None:
    from matplotlib.figure import Figure

    from ..plots import save_figure

    steps = len(r.angles)
    fig = Figure(figsize=(9.0, 6.6), layout="constrained")
    grid = fig.add_gridspec(3, steps, height_ratios=[0.9, 3, 3])
    for i in range(steps):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(images[i, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{r.angles[i]:.0f}°\npred {r.predicted[i]}", fontsize=7)
    ax_in = fig.add_subplot(grid[1, :])
    ax_out = fig.add_subplot(grid[2, :], sharex=ax_in)
    x = torch.arange(steps, dtype=torch.float32)
    width = 0.5 / max(len(r.classes), 1)
    for j, c in enumerate(r.classes):
        offset = (j - (len(r.classes) - 1) / 2) * width
        xs = (x[:, None] + offset).expand(steps, r.samples).flatten().numpy()
        color = _COLORS[j % len(_COLORS)]
        ax_in.scatter(xs, r.logits[:, :, c].flatten().numpy(), s=3, alpha=0.35, color=color, lw=0, label=f"class {c}")
        ax_out.scatter(xs, r.probs[:, :, c].flatten().numpy(), s=3, alpha=0.35, color=color, lw=0, label=f"class {c}")
        ax_out.plot(x.numpy() + offset, r.mean_probs[:, c].numpy(), color=color, lw=1.0)
    shown = r.logits[:, :, r.classes]
    lo, hi = float(shown.min()), float(shown.max())
    ax_in.set_ylim(lo - 0.05 * (hi - lo), hi + 0.25 * (hi - lo))  # room for the legend
    ax_in.set_ylabel("softmax input (logit)")
    ax_out.set_ylabel("softmax output")
    ax_out.set_ylim(-0.03, 1.03)
    ax_out.set_xticks(x.numpy(), [f"{a:.0f}°" for a in r.angles])
    ax_out.set_xlabel("rotation (lines: MC predictive mean of each class)")
    for ax in (ax_in, ax_out):
        ax.grid(alpha=0.3)
    leg = ax_in.legend(fontsize=8, loc="upper center", ncol=len(r.classes), markerscale=3, frameon=True, framealpha=0.9)
    for handle in leg.legend_handles:
        handle.set_alpha(1)
    ax_in.tick_params(labelbottom=False)
    fig.suptitle(
        f"Rotated digit 1: {r.samples} MC dropout samples per image (LeNet-5, p = 0.5 before the last layer)",
        fontsize=10,
    )
    save_figure(fig, path, dpi=90)


def change_steps(predicted: list[int]) -> list[int]:
    """Steps next to a change of the predicted class: ``i`` where ``predicted[i] !=
    predicted[i - 1]`` or ``predicted[i] != predicted[i + 1]``."""
    n = len(predicted)
    return [
        i
        for i in range(n)
        if (i > 0 and predicted[i] != predicted[i - 1]) or (i + 1 < n and predicted[i] != predicted[i + 1])
    ]


def _spread_note(r: RotatedDigitResult) -> str:
    mi = torch.tensor(r.mutual_information)
    near = change_steps(r.predicted)
    if not near:
        return (
            f"The predicted class never changes; mutual information ranges from "
            f"{float(mi.min()):.3f} to {float(mi.max()):.3f} nats."
        )
    rest = [i for i in range(len(mi)) if i not in near]
    top = int(mi.argmax())
    mi_near = float(mi[near].mean())
    text = (
        f"Mutual information (the epistemic part) peaks at {r.angles[top]:.0f}° "
        f"({float(mi[top]):.3f} nats); averaged over the {len(near)} steps next to a change "
        f"of the predicted class it is {mi_near:.3f} nats"
    )
    if rest:
        mi_rest = float(mi[rest].mean())
        verdict = "larger" if mi_near > mi_rest else "not larger"
        text += (
            f", against {mi_rest:.3f} nats at the other {len(rest)} steps: as in the "
            f"paper's figure, the spread is {verdict} where the prediction changes"
        )
    return text + "."


def _markdown(r: RotatedDigitResult, command: str) -> str:
    same = sum(a == b for a, b in zip(r.predicted, PAPER_PREDICTED, strict=False))
    rows = "\n".join(
        f"| {i + 1} | {a:.0f}° | {p} | {r.mean_probs[i, p]:.2f} | {h:.3f} | {mi:.3f} | "
        f"{PAPER_PREDICTED[i] if i < len(PAPER_PREDICTED) else ''} | {q} |"
        for i, (a, p, h, mi, q) in enumerate(
            zip(r.angles, r.predicted, r.entropy, r.mutual_information, r.predicted_opposite, strict=True)
        )
    )
    sec = r.seconds
    return f"""# Rotated digit: MC dropout softmax inputs and outputs (Gal & Ghahramani 2016, fig 4)

Generated by `{command}` (do not edit by hand; rerun the command).

![rotated digit](rotated_digit.png)

## Protocol
- Data: **only the 10,000-image MNIST test set is available offline**, so the network is
  trained on {r.train_size:,} of its images and validated on the other 1,000
  (`bayesdrop.data.load_mnist_test_split`, seed {r.seed}). The digit is the first image of
  class 1 in the held-out 1,000 (index {r.image_index}), never seen in training.
- Network: `bayesdrop.models.LeNet5(dropout=0.5, placement="last")`: conv(6) - conv(16) -
  fc(120) - fc(84) - **dropout 0.5** - fc(10), 61,706 weights (the paper used Caffe's LeNet with
  20/50 filters and 500 hidden units, dropout before the last layer as here).
- Training: Adam, learning rate 1e-3, batch 128, {r.epochs} epochs, prior weight decay with
  length-scale 1e-2 (`bayesdrop.training.fit`). MC accuracy on the held-out 1,000:
  **{100 * r.val_accuracy:.1f}%** (T = {r.samples}).
- Rotation: {len(r.angles)} images from 0° to {r.angles[-1]:.0f}° counter-clockwise in equal
  steps (`bayesdrop.data.rotation_series`, bilinear). The paper does not give its angles; its
  figure goes from upright to roughly horizontal, which 0°-{r.angles[-1]:.0f}° covers.
- Sampling: T = {r.samples} stochastic passes per image (`mc.predict`, seed {r.seed}); the logits
  are the same samples read through `bd.wrap(model, task="regression")`, so
  softmax(logit samples) are exactly the charted softmax samples.

## Predicted classes along the rotation
- ours (counter-clockwise): **{" ".join(map(str, r.predicted))}**
- paper: {" ".join(map(str, PAPER_PREDICTED))} ({same} of {len(PAPER_PREDICTED)} steps agree)
- ours rotating clockwise instead: {" ".join(map(str, r.predicted_opposite))}

| step | angle | predicted | p(pred) | entropy | mutual information | paper | clockwise |
|---|---|---|---|---|---|---|---|
{rows}

Entropy and mutual information in nats, from the T = {r.samples} samples.

## Notes
- {_spread_note(r)}
- The classes along the way depend on the digit, the rotation direction, the network and its
  training, none of which the paper pins down (its digit and exact angles are not published),
  so a different class sequence is expected rather than a failure.
- Trained on {r.train_size:,} test-set images for {r.epochs} epochs instead of the 60,000-image
  training set (not available offline; `load_mnist("train")` would use it where present), with
  a smaller LeNet than Caffe's; held-out accuracy {100 * r.val_accuracy:.1f}%.

Machine: {machine_description()}; 1-minute load average at the end {load_average()} (shared
machine, timings noisy). Wall-clock: {sec.get("total", 0):.0f} s (training {sec["train"]:.0f} s,
MC prediction {sec["predict"]:.1f} s).
"""
