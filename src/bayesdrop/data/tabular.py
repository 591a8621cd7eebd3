"""The tabular data sets of the CLUE paper (Antorán et al., ICLR 2021): LSAT, COMPAS, Credit and
red Wine, encoded for networks and VAEs (continuous features standardised with the training
split's statistics, categorical features one-hot) and decodable back to their original units.

Files (``root``, default the project's ``shared/data``): ``tabular/lsat_train.csv`` and
``tabular/lsat_test.csv``, ``tabular/compas-scores-two-years.csv``,
``tabular/default-of-credit-card-clients.csv``, ``uci/wine-quality-red/data.txt``.
"""

from __future__ import annotations

import csv
import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._errors import BayesdropError, expected
from ._locate import shared_data_root

__all__ = [
    "Feature",
    "TabularData",
    "TABULAR_DATASETS",
    "load_tabular",
    "load_lsat",
    "load_compas",
    "load_credit",
    "load_wine",
]


@dataclass(frozen=True)
class Feature:
    """One input feature: ``continuous`` (standardised: ``(value - mean) / std``) or
    ``categorical`` (one-hot over ``categories``, in that order)."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1


@dataclass(frozen=True)
class TabularData:
    """A tabular data set, encoded.

    Attributes:
        name: the registry name; task: ``"classification"`` or ``"regression"``.
        features: the input features in column order (a categorical one spans its width).
        x_train, x_test: encoded inputs ``(N, D)`` float32, D = sum of the feature widths.
        y_train, y_test: class indices ``(N,)`` int64 or standardised targets ``(N, 1)``.
        target: the target's name; target_mean, target_std: its training statistics
            (regression; the targets are ``(y - mean) / std``).
        classes: class names (classification).
    """

    name: str
    task: str
    features: tuple[Feature, ...]
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    target: str
    target_mean: float = 0.0
    target_std: float = 1.0
    classes: tuple[str, ...] = ()
    notes: str = field(default="", compare=False)

    @property
    def widths(self) -> list[int]:
        """Encoded columns per feature (1 for continuous, the number of categories otherwise)."""
        return [f.width for f in self.features]

    @property
    def categorical_mask(self) -> Tensor:
        """``(D,)`` bool: the one-hot columns."""
        return torch.tensor([f.kind == "categorical" for f in self.features for _ in range(f.width)])

    def column_slices(self) -> list[slice]:
        out, start = [], 0
        for w in self.widths:
            out.append(slice(start, start + w))
            start += w
        return out

    def decode(self, x: Tensor) -> list[dict[str, float | str]]:
        """Encoded rows ``(N, D)`` as dicts in the original units (categories by name, the
        largest one-hot entry)."""
        if x.ndim != 2 or x.shape[1] != sum(self.widths):
            raise expected("x", f"encoded rows (N, {sum(self.widths)})", tuple(x.shape))
        x = x.detach().cpu().double()
        rows: list[dict[str, float | str]] = [{} for _ in range(x.shape[0])]
        for feature, cols in zip(self.features, self.column_slices(), strict=True):
            block = x[:, cols]
            for i in range(x.shape[0]):
                if feature.kind == "categorical":
                    rows[i][feature.name] = feature.categories[int(block[i].argmax())]
                else:
                    rows[i][feature.name] = float(block[i, 0]) * feature.std + feature.mean
        return rows

    def encode(self, rows: list[dict[str, float | str]]) -> Tensor:
        """Rows in original units (as :meth:`decode` gives them) encoded ``(N, D)``."""
        out = torch.zeros(len(rows), sum(self.widths))
        for feature, cols in zip(self.features, self.column_slices(), strict=True):
            for i, row in enumerate(rows):
                if feature.name not in row:
                    raise expected("rows", f"a value for feature {feature.name!r}", sorted(row))
                value = row[feature.name]
                if feature.kind == "categorical":
                    if str(value) not in feature.categories:
                        raise expected(feature.name, f"one of {feature.categories}", value)
                    out[i, cols.start + feature.categories.index(str(value))] = 1.0
                else:
                    out[i, cols.start] = (float(value) - feature.mean) / feature.std
        return out


TABULAR_DATASETS = {
    "lsat": "LSAT (law school): regression of ZFYA on UGPA, LSAT, race and sex; the files' split 17,432 / 4,358",
    "compas": "COMPAS (ProPublica filters): two-year recidivism from 7 features incl. is_recid; 5,554 / 618",
    "compas-no-recid": "COMPAS without is_recid (which nearly equals the label): 6 features; 5,554 / 618",
    "credit": "Default of credit card clients (Taiwan): 23 features, 27,000 / 3,000",
    "wine": "Red wine quality (UCI): regression on 11 physico-chemical features, 1,440 / 159",
}


def _root(root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        return Path(root)
    shared = shared_data_root()
    if shared is not None:
        return shared
    raise BayesdropError(
        "Argument `root`: the folder holding tabular/ and uci/ (the project's shared/data) was not "
        "found; pass root=<folder> or set BAYESDROP_SHARED_DATA."
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise BayesdropError(f"Missing data file {path} (see bayesdrop.data.tabular's docstring).")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _build(
    name: str,
    task: str,
    columns: list[tuple[str, str, list]],
    target: list,
    train: np.ndarray,
    test: np.ndarray,
    target_name: str,
    classes: tuple[str, ...] = (),
    notes: str = "",
) -> TabularData:
    """Encode raw columns ``(name, kind, values)`` with the training rows' statistics."""
    features, train_blocks, test_blocks = [], [], []
    for fname, kind, values in columns:
        if kind == "continuous":
            v = np.asarray(values, dtype=np.float64)
            mean, std = float(v[train].mean()), float(v[train].std())
            std = std if std > 1e-12 else 1.0
            features.append(Feature(fname, "continuous", (), mean, std))
            encoded = ((v - mean) / std)[:, None]
        else:
            labels = [str(x) for x in values]
            categories = tuple(sorted(set(labels), key=_natural))
            index = np.array([categories.index(x) for x in labels])
            features.append(Feature(fname, "categorical", categories))
            encoded = np.eye(len(categories))[index]
        train_blocks.append(encoded[train])
        test_blocks.append(encoded[test])
    x_train = torch.tensor(np.concatenate(train_blocks, 1), dtype=torch.float32)
    x_test = torch.tensor(np.concatenate(test_blocks, 1), dtype=torch.float32)
    if task == "classification":
        y = torch.tensor(np.asarray(target, dtype=np.int64))
        return TabularData(
            name, task, tuple(features), x_train, y[train], x_test, y[test], target_name, classes=classes, notes=notes
        )
    t = np.asarray(target, dtype=np.float64)
    mean, std = float(t[train].mean()), float(t[train].std())
    y = torch.tensor((t - mean) / std, dtype=torch.float32)[:, None]
    return TabularData(
        name, task, tuple(features), x_train, y[train], x_test, y[test], target_name, mean, std, notes=notes
    )


def _natural(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def load_lsat(root: str | os.PathLike[str] | None = None) -> TabularData:
    """LSAT: ZFYA (first-year average, standardised) from UGPA, LSAT, race (8) and sex (2);
    the CLUE paper's split as the files give it (17,432 train, 4,358 test)."""
    folder = _root(root) / "tabular"
    rows = _read_csv(folder / "lsat_train.csv") + _read_csv(folder / "lsat_test.csv")
    n_train = len(rows) - len(_read_csv(folder / "lsat_test.csv"))
    races = ["amerind", "asian", "black", "hisp", "mexican", "other", "puerto", "white"]

    def one_of(row: dict[str, str], names: list[str]) -> str:
        hot = [n for n in names if float(row[n]) == 1.0]
        if len(hot) != 1:
            raise BayesdropError(f"LSAT row with {len(hot)} of the one-hot flags {names} set: {row}")
        return hot[0]

    columns = [
        ("UGPA", "continuous", [float(r["UGPA"]) for r in rows]),
        ("LSAT", "continuous", [float(r["LSAT"]) for r in rows]),
        ("race", "categorical", [one_of(r, races) for r in rows]),
        ("sex", "categorical", [one_of(r, ["female", "male"]) for r in rows]),
    ]
    idx = np.arange(len(rows))
    return _build("lsat", "regression", columns, [float(r["ZFYA"]) for r in rows], idx[:n_train], idx[n_train:], "ZFYA")


def load_compas(root: str | os.PathLike[str] | None = None, include_is_recid: bool = True) -> TabularData:
    """COMPAS with ProPublica's filters (|days_b_screening_arrest| <= 30, is_recid != -1,
    c_charge_degree != 'O', a score): two-year recidivism from age_cat, race, sex,
    c_charge_degree, is_recid (unless ``include_is_recid=False``: it nearly equals the label),
    priors_count and time served (days in jail, clipped at 0); 10% test split drawn as
    scikit-learn's ``train_test_split(test_size=0.1, random_state=42)`` (5,554 / 618)."""
    rows = _read_csv(_root(root) / "tabular" / "compas-scores-two-years.csv")
    kept = []
    for r in rows:
        if r["days_b_screening_arrest"] == "" or abs(float(r["days_b_screening_arrest"])) > 30:
            continue
        if r["is_recid"] == "-1" or r["c_charge_degree"] == "O" or r["score_text"] in ("", "N/A", "NA"):
            continue
        kept.append(r)
    stamp = "%Y-%m-%d %H:%M:%S"
    served = [
        max(
            0,
            (
                datetime.datetime.strptime(r["c_jail_out"], stamp) - datetime.datetime.strptime(r["c_jail_in"], stamp)
            ).days,
        )
        for r in kept
    ]
    columns = [
        ("age_cat", "categorical", [r["age_cat"] for r in kept]),
        ("race", "categorical", [r["race"] for r in kept]),
        ("sex", "categorical", [r["sex"] for r in kept]),
        ("c_charge_degree", "categorical", [r["c_charge_degree"] for r in kept]),
        *([("is_recid", "categorical", [r["is_recid"] for r in kept])] if include_is_recid else []),
        ("priors_count", "continuous", [float(r["priors_count"]) for r in kept]),
        ("time_served", "continuous", [float(d) for d in served]),
    ]
    try:
        from sklearn.model_selection import train_test_split  # the paper's split, exactly
    except ImportError:
        raise BayesdropError("COMPAS's published split needs scikit-learn: pip install scikit-learn.") from None

    train, test = train_test_split(np.arange(len(kept)), test_size=0.1, random_state=42, shuffle=True)
    return _build(
        "compas" if include_is_recid else "compas-no-recid",
        "classification",
        columns,
        [int(r["two_year_recid"]) for r in kept],
        np.asarray(train),
        np.asarray(test),
        "two_year_recid",
        classes=("no", "yes"),
    )


def load_credit(root: str | os.PathLike[str] | None = None) -> TabularData:
    """Default of credit card clients: default next month from 23 features; SEX (2),
    EDUCATION (graduate school, university, high school, other: the codes 0, 4, 5, 6) and
    MARRIAGE (married, single, other: 0 and 3) are categorical, the rest continuous; a seeded
    permutation (NumPy seed 0) holds out its first 3,000 rows (27,000 / 3,000)."""
    rows = _read_csv(_root(root) / "tabular" / "default-of-credit-card-clients.csv")
    education = {"1": "graduate school", "2": "university", "3": "high school"}
    marriage = {"1": "married", "2": "single"}
    columns: list[tuple[str, str, list]] = [("LIMIT_BAL", "continuous", [float(r["LIMIT_BAL"]) for r in rows])]
    columns.append(("SEX", "categorical", [{"1": "male", "2": "female"}[r["SEX"]] for r in rows]))
    columns.append(("EDUCATION", "categorical", [education.get(r["EDUCATION"], "other") for r in rows]))
    columns.append(("MARRIAGE", "categorical", [marriage.get(r["MARRIAGE"], "other") for r in rows]))
    rest = [c for c in rows[0] if c not in ("LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "default.payment.next.month")]
    columns += [(c, "continuous", [float(r[c]) for r in rows]) for c in rest]
    order = np.random.RandomState(0).permutation(len(rows))
    test_size = len(rows) // 10
    return _build(
        "credit",
        "classification",
        columns,
        [int(r["default.payment.next.month"]) for r in rows],
        order[test_size:],
        order[:test_size],
        "default.payment.next.month",
        classes=("no default", "default"),
    )


def load_wine(root: str | os.PathLike[str] | None = None) -> TabularData:
    """Red wine quality: regression on the 11 physico-chemical features (all continuous); a
    seeded permutation (NumPy seed 0) holds out its first 10% (1,440 / 159)."""
    folder = _root(root) / "uci" / "wine-quality-red"
    path = folder / "data.txt"
    if not path.is_file():
        raise BayesdropError(f"Missing data file {path}.")
    data = np.loadtxt(path)
    names = [
        "fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides",
        "free sulfur dioxide", "total sulfur dioxide", "density", "pH", "sulphates", "alcohol",
    ]  # fmt: skip
    columns = [(n, "continuous", data[:, i].tolist()) for i, n in enumerate(names)]
    order = np.random.RandomState(0).permutation(len(data))
    test_size = len(data) // 10
    return _build("wine", "regression", columns, data[:, 11].tolist(), order[test_size:], order[:test_size], "quality")


def load_tabular(name: str, root: str | os.PathLike[str] | None = None) -> TabularData:
    """A data set of :data:`TABULAR_DATASETS` by name."""
    loaders = {
        "lsat": load_lsat,
        "compas": load_compas,
        "compas-no-recid": lambda r: load_compas(r, include_is_recid=False),
        "credit": load_credit,
        "wine": load_wine,
    }
    if name not in loaders:
        raise expected("name", f"one of {sorted(loaders)}", name)
    return loaders[name](root)
