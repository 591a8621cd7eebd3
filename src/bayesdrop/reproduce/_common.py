"""Helpers shared by the reproduction modules: atomic text files, the machine description,
the load average, the shared data folder, and the scoped seeding of model initialisation.

It imports nothing from the other ``bayesdrop.reproduce`` modules, so each of them (and the
command lines ``bayesdrop.reproduce.images`` and ``bayesdrop.reproduce.uci``) imports it without
an import cycle.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from .._io import atomic_open
from ..data import shared_data_root
from ..data.tabular import TABULAR_DATASETS

__all__ = ["write_text_atomic", "machine_description", "load_average", "dataset_dir"]

_REPO = Path(__file__).resolve().parents[3]


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename).

    Creates missing parent folders. Returns the path written.
    """
    p = Path(path)
    with atomic_open(p, "w") as f:
        f.write(text)
    return p


def machine_description() -> str:
    """One line naming the CPU architecture, cores, torch version and torch threads."""
    cores = os.cpu_count() or 0
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.machine()} ({cpu}), {cores} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s), Python {platform.python_version()}"
    )


def load_average() -> str:
    """The 1-minute load average as text ("n/a" where the OS has none)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):  # pragma: no cover - not on every OS
        return "n/a"


def dataset_dir(dataset: str) -> str | None:
    """Where a reproduction reads ``dataset``: the MNIST sets from ``shared/data/mnist``, the
    tabular sets from ``shared/data`` itself, anything else from its loader's own places (None)."""
    root = shared_data_root()
    if root is None:
        return None
    if dataset.startswith("mnist"):
        return str(root / "mnist")
    return str(root) if dataset in TABULAR_DATASETS else None
