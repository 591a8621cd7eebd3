"""Active-learning charts: learning curves with seed bands, and the items each strategy chose."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from .._errors import expected
from ._common import finish, new_figure

__all__ = ["learning_curves", "acquired_grid"]


def learning_curves(
    curves: Mapping[str, Sequence[tuple[Sequence[int], Sequence[float]]]],
    *,
    thresholds: Sequence[float] = (),
    title: str = "",
    ylabel: str = "test accuracy",
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Accuracy vs number of labels, one line per strategy: the median over its seeds, with a
    band from the lowest to the highest seed; dotted lines at ``thresholds``.

    Args:
        curves: per strategy, one ``(labels, accuracy)`` pair per seed (labels ascending;
            seeds may stop at different lengths: each point uses the seeds that reached it).
    """
    if not curves:
        raise expected("curves", "at least one strategy with one curve", "none")
    fig = new_figure((7.5, 4.8))
    ax = fig.add_subplot()
    cmap = _colors(len(curves))
    low = 1.0
    for color, (name, runs) in zip(cmap, curves.items(), strict=True):
        grid = sorted({int(n) for labels, _ in runs for n in labels})
        table = np.full((len(runs), len(grid)), np.nan)
        where = {n: i for i, n in enumerate(grid)}
        for row, (labels, acc) in enumerate(runs):
            for n, a in zip(labels, acc, strict=True):
                table[row, where[int(n)]] = a
        median = np.nanmedian(table, axis=0)
        low = min(low, float(np.nanmin(table)))
        ax.plot(grid, median, color=color, lw=1.6, label=f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        if len(runs) > 1:
            ax.fill_between(grid, np.nanmin(table, axis=0), np.nanmax(table, axis=0), color=color, alpha=0.15, lw=0)
    for t in thresholds:
        ax.axhline(t, color="0.4", lw=0.8, ls=":")
    ax.set_xlabel("labelled items")
    ax.set_ylabel(ylabel)
    ax.set_ylim(max(0.0, low - 0.02), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title + "\nmedian over seeds, band: lowest to highest seed", fontsize=10)
    return finish(fig, path)


def acquired_grid(
    rows: Mapping[str, tuple[Tensor, Sequence[int]]],
    *,
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """The first items each strategy acquired: one row per strategy, images ``(n, C, H, W)``
    (C = 1 or 3) titled with their labels."""
    if not rows:
        raise expected("rows", "at least one strategy", "none")
    width = max(len(images) for images, _ in rows.values())
    fig = new_figure((0.75 * width + 1.5, 0.95 * len(rows) + 0.6))
    axes = fig.subplots(len(rows), width, squeeze=False)
    for r, (name, (images, labels)) in enumerate(rows.items()):
        for c in range(width):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(images):
                picture = images[c].detach().float().cpu()
                picture = picture[0] if picture.shape[0] == 1 else picture.permute(1, 2, 0)
                ax.imshow(picture.numpy(), cmap="gray_r" if picture.ndim == 2 else None)
                ax.set_title(str(int(labels[c])), fontsize=7, pad=1)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return finish(fig, path)


def _colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]
