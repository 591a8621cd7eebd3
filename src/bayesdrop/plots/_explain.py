"""Charts of uncertainty explanations: uncertainty before / after, per-feature changes of
tabular rows, and original | CLUE | difference for images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from .._errors import expected
from ._common import finish, new_figure

__all__ = ["uncertainty_histograms", "feature_changes", "clue_images"]


def uncertainty_histograms(
    before: Tensor, after: Tensor, *, label: str = "uncertainty", path: str | os.PathLike[str] | None = None
) -> Any:
    """Histograms of an uncertainty ``(N,)`` before and after the explanations."""
    b, a = before.detach().double().cpu().numpy(), after.detach().double().cpu().numpy()
    fig = new_figure((6.0, 3.6))
    ax = fig.add_subplot()
    bins = np.linspace(min(b.min(), a.min()), max(b.max(), a.max()) + 1e-9, 30)
    ax.hist(b, bins=bins, alpha=0.6, label=f"original (mean {b.mean():.3f})")
    ax.hist(a, bins=bins, alpha=0.6, label=f"CLUE (mean {a.mean():.3f})")
    ax.set_xlabel(label)
    ax.set_ylabel("points")
    ax.legend(fontsize=8)
    ax.set_title(f"{len(b)} explained points: {label} before and after", fontsize=10)
    return finish(fig, path)


def feature_changes(change: Tensor, names: Sequence[str], *, path: str | os.PathLike[str] | None = None) -> Any:
    """One bar chart per row of ``change`` ``(N, F)``: the change of each feature (standard
    deviations for continuous features, 1 where a category changed)."""
    if change.ndim != 2 or change.shape[1] != len(names):
        raise expected("change", f"(N, {len(names)}) per-feature changes", tuple(change.shape))
    rows = change.shape[0]
    fig = new_figure((max(6.0, 0.35 * len(names) + 2), 1.9 * rows + 0.6))
    axes = fig.subplots(rows, 1, squeeze=False, sharex=True)
    positions = np.arange(len(names))
    for i in range(rows):
        ax = axes[i][0]
        values = change[i].detach().double().cpu().numpy()
        ax.bar(positions, values, color=["tab:red" if v < 0 else "tab:blue" for v in values])
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_ylabel(f"row {i}", fontsize=8)
    axes[-1][0].set_xticks(positions)
    axes[-1][0].set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    fig.suptitle("CLUE: change per feature (continuous: standard deviations; categorical: 1 = changed)", fontsize=9)
    return finish(fig, path)


def clue_images(
    x: Tensor,
    explanation: Tensor,
    *,
    before: Tensor,
    after: Tensor,
    label_before: Tensor,
    label_after: Tensor,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Rows of original | CLUE | difference for images ``(N, 1, H, W)``, with the predicted
    class and the uncertainty in the titles."""
    rows = x.shape[0]
    fig = new_figure((6.0, 2.0 * rows))
    axes = fig.subplots(rows, 3, squeeze=False)
    for i in range(rows):
        original = x[i, 0].detach().cpu().numpy()
        counterfactual = explanation[i, 0].detach().cpu().numpy()
        panels = [
            (original, "gray_r", f"class {int(label_before[i])}, u {float(before[i]):.2f}", (0, 1)),
            (counterfactual, "gray_r", f"class {int(label_after[i])}, u {float(after[i]):.2f}", (0, 1)),
            (counterfactual - original, "RdBu_r", "CLUE - original", (-1, 1)),
        ]
        for ax, (image, cmap, title, (lo, hi)) in zip(axes[i], panels, strict=True):
            ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    return finish(fig, path)
