"""Charts of active-learning results (drawn by ``bayesdrop.plots``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ..plots import acquired_grid, learning_curves
from ._experiment import ActiveResult, group_label

__all__ = ["plot_learning_curves", "plot_acquired"]


def _groups(results: Sequence[ActiveResult]) -> dict[str, list[ActiveResult]]:
    varying = [
        n for n in ("method", "rate", "samples", "acquire") if len({json.dumps(r.config.get(n)) for r in results}) > 1
    ]
    out: dict[str, list[ActiveResult]] = {}
    for r in results:
        out.setdefault(group_label(r.config, varying), []).append(r)
    return out


def plot_learning_curves(
    results: Sequence[ActiveResult],
    *,
    thresholds: Sequence[float] = (),
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Test accuracy vs labels per strategy, median and band over seeds."""
    curves = {name: [(r.labels, r.accuracy) for r in runs] for name, runs in _groups(results).items()}
    return learning_curves(curves, thresholds=thresholds, title=title, path=path)


def plot_acquired(
    results: Sequence[ActiveResult],
    x: Tensor,
    y: Tensor,
    *,
    count: int = 20,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """The first ``count`` items acquired by each strategy (its lowest seed), from the data
    ``x`` ``(N, C, H, W)`` with labels ``y`` the runs indexed."""
    rows = {}
    for name, runs in _groups(results).items():
        run = min(runs, key=lambda r: r.config["seed"])
        picked = [i for round_items in run.acquired for i in round_items][:count]
        rows[name] = (x[picked], y[picked].tolist())
    return acquired_grid(rows, title=f"First {count} acquired items (lowest seed); titles: labels", path=path)
