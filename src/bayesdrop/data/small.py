"""Small always-available data: scikit-learn's digits, and the Mauna Loa CO2 series."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._errors import BayesdropError, expected
from ._locate import candidate_dirs, describe_dirs

__all__ = ["load_digits", "load_co2", "CO2Data"]


def load_digits(size: int = 28, *, mode: str = "upsample") -> tuple[Tensor, Tensor]:
    """scikit-learn's 1,797 handwritten digits (8x8, shipped with scikit-learn, no download).

    Args:
        size: output side length: 8 (as shipped) or larger (28 to feed MNIST models).
        mode: how to reach ``size``: ``"upsample"`` (bilinear) or ``"pad"`` (zeros around the
            centred 8x8 image).

    Returns:
        ``(images, labels)``: float32 ``(1797, 1, size, size)`` in [0, 1] and int64 ``(1797,)``.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise expected("size", "an int >= 8", size)
    if mode not in ("upsample", "pad"):
        raise expected("mode", '"upsample" or "pad"', mode)
    from sklearn.datasets import load_digits as _sk_load_digits  # lazy: optional dependency

    bunch = _sk_load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    if size != 8:
        if mode == "upsample":
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            x = x.clamp_(0.0, 1.0)
        else:
            before = (size - 8) // 2
            after = size - 8 - before
            x = F.pad(x, (before, after, before, after))
    return x.contiguous(), y


@dataclass(frozen=True)
class CO2Data:
    """The Mauna Loa CO2 series of Gal & Ghahramani's extrapolation experiment.

    Attributes:
        x_train: ``(272, 1)`` float32 inputs, normalised to [-1.7257, 1.7257].
        y_train: ``(272, 1)`` float32 targets.
        x_test: ``(1000, 1)`` float32 inputs to extrapolate to (up to 3.7237). The file's ``y``
            column is a constant placeholder, not ground truth, so it is not returned.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor


def _read_xy_csv(path: Path) -> np.ndarray:
    header = path.open().readline().strip().replace(" ", "")
    if header != "x,y":
        raise BayesdropError(f"Expected {path} to start with the header 'x,y', but got {header!r}.")
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise BayesdropError(f"Could not parse {path} as two numeric columns: {err}") from None
    if table.shape[1] != 2 or not np.isfinite(table).all():
        raise BayesdropError(f"Expected {path} to hold two finite numeric columns x,y.")
    return table


def load_co2(root: str | PathLike[str] | None = None) -> CO2Data:
    """Load the CO2 series from ``train.csv`` and ``test.csv``.

    Looks in ``root`` (the two files, or ``root/co2/``, so the project's ``shared/data``
    works), ``$BAYESDROP_DATA/co2`` and ``~/.cache/bayesdrop/co2``.

    Raises:
        BayesdropError: files missing (lists where it looked) or malformed.
    """
    dirs = candidate_dirs("co2", root)
    for folder, _label in dirs:
        train, test = folder / "train.csv", folder / "test.csv"
        if train.is_file() and test.is_file():
            tr, te = _read_xy_csv(train), _read_xy_csv(test)
            as_col = lambda a: torch.as_tensor(a, dtype=torch.float32).reshape(-1, 1)  # noqa: E731
            return CO2Data(as_col(tr[:, 0]), as_col(tr[:, 1]), as_col(te[:, 0]))
    raise BayesdropError(
        "Could not find the CO2 data (train.csv and test.csv). Looked in:\n"
        f"{describe_dirs(dirs, 'co2')}\nTo get the data: pass `root=<folder>` or set "
        f"`BAYESDROP_DATA=<dir>` with the files in `<dir>/co2/`; the series comes from the "
        "public repository yaringal/DropoutUncertaintyCaffeModels (co2 experiment)."
    )
