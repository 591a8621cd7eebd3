"""Seeds, devices, atomic checkpoints and the prior-derived weight decay."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._errors import BayesdropError, expected
from .._io import atomic_open

__all__ = [
    "seed_everything",
    "resolve_device",
    "prior_weight_decay",
    "save_checkpoint",
    "load_checkpoint",
]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device).

    Args:
        seed: a non-negative integer.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise expected("seed", "a non-negative integer", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda[:i]"`` into a device.

    Raises:
        BayesdropError: for an unknown device string or CUDA requested where there is none.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise expected("device", "'auto', 'cpu', 'cuda' or 'cuda:<i>'", device) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BayesdropError(
            f"Expected argument `device` to name an available device, but got {str(dev)!r} and "
            "CUDA is not available here; use device='auto' or 'cpu'."
        )
    return dev


def prior_weight_decay(length_scale: float, p: float, n: int, tau: float = 1.0) -> float:
    """Gal & Ghahramani's L2 coefficient ``lambda = l^2 (1 - p) / (2 N tau)``.

    It is the coefficient of ``lambda * ||W||^2`` added to the mean data loss (their Keras
    ``l2(lambda)``). A coupled-L2 optimizer (``torch.optim.Adam(weight_decay=...)``, which adds
    ``wd * W`` to the gradient) needs ``weight_decay = 2 * lambda``; :func:`fit` does this.

    Args:
        length_scale: prior length-scale ``l`` > 0.
        p: dropout probability in [0, 1).
        n: number of training points N >= 1.
        tau: model precision tau > 0 (1 for classification).

    Returns:
        lambda as a float.

    >>> round(prior_weight_decay(0.1, 0.5, 1000, 1.0), 15)  # 0.01 * 0.5 / 2000
    2.5e-06
    """
    if not length_scale > 0:
        raise expected("length_scale", "a positive float", length_scale)
    if not 0 <= p < 1:
        raise expected("p", "a float in [0, 1)", p)
    if not isinstance(n, int) or n < 1:
        raise expected("n", "a positive integer (the number of training points)", n)
    if not tau > 0:
        raise expected("tau", "a positive float", tau)
    return length_scale**2 * (1 - p) / (2 * n * tau)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (temp file in the same folder + replace).

    A reader never sees a half-written checkpoint, even if the process is killed mid-write.
    """
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        BayesdropError: when the file does not exist or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise expected("path", "an existing checkpoint file", str(path))
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - report which file is broken
        raise BayesdropError(f"Could not read checkpoint {str(path)!r}: {err}") from err
