"""Figure creation and atomic saving; matplotlib is imported here, lazily, and only here.

Figures are built as ``matplotlib.figure.Figure`` objects without pyplot: no GUI backend, no
global figure registry, nothing to close; PNGs render through Agg. This works headless.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._errors import BayesdropError, expected
from .._io import atomic_open

__all__ = ["save_figure"]

_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def new_figure(figsize: tuple[float, float], **subplot_kw: Any) -> Any:
    """A pyplot-free Figure with constrained layout."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is an optional extra
        raise BayesdropError("bayesdrop.plots needs matplotlib: `pip install bayesdrop[experiments]`.") from err
    return Figure(figsize=figsize, layout="constrained", **subplot_kw)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save ``fig`` to ``path`` (.png, .svg or .pdf) atomically: write a temporary file in the
    same folder, then rename it over ``path``. Creates missing parent folders.

    Returns:
        The path written.
    """
    p = Path(path)
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise expected("path", "a file name ending in .png, .svg or .pdf", str(path))
    with atomic_open(p, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    return p


def _metadata(fmt: str) -> dict[str, Any] | None:
    # No creation dates: the same figure gives the same bytes.
    if fmt == "png":
        return {"Software": None}
    if fmt == "svg":
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None}
    return None


def finish(fig: Any, path: str | os.PathLike[str] | None, dpi: int = 120) -> Any:
    """Save when a path is given; return the figure."""
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
