"""The data sets by name: descriptions for the CLI and one loader returning ready splits."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

from torch import Tensor
from torch.utils.data import DataLoader

from .._errors import BayesdropError, expected
from .mnist import load_fashion_mnist, load_mnist
from .small import load_co2, load_digits
from .splits import make_loader, subsample, train_val_split

__all__ = ["DatasetSplits", "list_datasets", "load_dataset"]

_DESCRIPTIONS: dict[str, str] = {
    "fashion-mnist": "Fashion-MNIST, 60,000/10,000 28x28 clothing images, 10 classes "
    "(apt-get install dataset-fashion-mnist, or download=True)",
    "mnist": "MNIST, 60,000/10,000 28x28 handwritten digits, 10 classes (download=True)",
    "mnist-10k": "MNIST test set only, split 9,000 train / 1,000 validation (seeded); no test "
    "split. For machines with only the 10,000 test images",
    "digits": "scikit-learn's 1,797 8x8 digits upsampled to 28x28, 10 classes; always "
    "available, no download (seeded 1,297/200/300 train/val/test split)",
    "co2": "Mauna Loa CO2 series (272 training points, 1,000 extrapolation inputs without targets), regression",
}


def list_datasets() -> dict[str, str]:
    """Every data set name with a one-line description (UCI sets included when available)."""
    names = dict(_DESCRIPTIONS)
    try:
        from .uci import UCI_DATASETS
    except ImportError:  # the UCI module is optional here
        return names
    for name in UCI_DATASETS:
        info = UCI_DATASETS[name] if isinstance(UCI_DATASETS, dict) else None
        title = info if isinstance(info, str) else getattr(info, "title", name)
        names[name] = f"UCI {title}: regression with the published 90/10 splits (bayesdrop.data.load_uci)"
    return names


@dataclass(frozen=True)
class DatasetSplits:
    """A data set as train / validation / test tensors.

    Attributes:
        name: the registry name.
        task: ``"classification"`` or ``"regression"``.
        x_train, y_train: training inputs ``(N, *input_shape)`` and targets ``(N,)`` int64
            labels or ``(N, 1)`` float regression targets.
        x_val, y_val: validation part (None if no validation split was asked for).
        x_test, y_test: test part; ``y_test`` is None where no ground truth exists (CO2's
            extrapolation inputs), both None where there is no test set (``mnist-10k``).
        num_classes: classes for classification, None for regression.
        input_shape: shape of one input, e.g. ``(1, 28, 28)``.
    """

    name: str
    task: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor | None
    y_val: Tensor | None
    x_test: Tensor | None
    y_test: Tensor | None
    num_classes: int | None
    input_shape: tuple[int, ...]

    def loaders(self, batch_size: int = 128, *, seed: int = 0, num_workers: int = 0) -> dict[str, DataLoader]:
        """DataLoaders ``{"train", "val", "test"}`` (those that exist); train is shuffled with a
        generator seeded by ``seed``, the others keep their order."""
        out = {
            "train": make_loader(
                self.x_train,
                self.y_train,
                batch_size=batch_size,
                shuffle=True,
                seed=seed,
                num_workers=num_workers,
            )
        }
        if self.x_val is not None:
            out["val"] = make_loader(self.x_val, self.y_val, batch_size=batch_size, num_workers=num_workers)
        if self.x_test is not None:
            out["test"] = make_loader(self.x_test, self.y_test, batch_size=batch_size, num_workers=num_workers)
        return out


def load_dataset(
    name: str,
    root: str | PathLike[str] | None = None,
    *,
    val_size: int | float | None = None,
    max_train: int | None = None,
    seed: int = 0,
    download: bool = False,
    split: int = 0,
) -> DatasetSplits:
    """Load a registered data set as ready train / validation / test splits.

    UCI sets (``"yacht"``, ``"boston"``, ...) give one published split in the original units,
    inputs ``(N, Q)`` and targets ``(N, 1)`` float32 (the paper's protocol, with its
    standardisation and grid search, is ``bayesdrop.reproduce.uci``).

    Args:
        name: one of :func:`list_datasets`.
        root: folder to look in first (see each loader; for UCI sets the folder holding one
            subfolder per data set, or a folder with ``uci/`` in it).
        val_size: validation examples taken from the training set (int count or float
            fraction; 0 for none). Default: 5,000 for (Fashion-)MNIST, 1,000 for ``mnist-10k``,
            200 for ``digits``, 0 for ``co2``.
        max_train: keep a seeded random subset of at most this many training examples (after
            the validation split), for quick runs.
        seed: seed of the splits and the subset.
        download: allow downloading (Fashion-)MNIST into the user cache.
        split: the published split of a UCI set (``0 <= split < n_splits``); must be 0 for
            the other data sets.
    """
    from .uci import UCI_DATASETS, find_uci_root, load_uci

    if not isinstance(name, str) or (name not in _DESCRIPTIONS and name not in UCI_DATASETS):
        raise expected("name", f"one of {sorted(list_datasets())}", name)
    if split != 0 and name not in UCI_DATASETS:
        raise expected("split", f"0 for {name!r} (only the UCI sets have published splits)", split)
    classification = True
    x_test = y_test = None
    if name in UCI_DATASETS:
        uci = load_uci(name, find_uci_root(name, root), split=split)
        x, y = uci.x_train.float(), uci.y_train.float().unsqueeze(1)
        x_test, y_test = uci.x_test.float(), uci.y_test.float().unsqueeze(1)
        classification = False
        default_val: int | float = 0
    elif name in ("mnist", "fashion-mnist"):
        loader = load_mnist if name == "mnist" else load_fashion_mnist
        x, y = loader("train", root, download=download)
        x_test, y_test = loader("test", root, download=download)
        default_val = 5000
    elif name == "mnist-10k":
        x, y = load_mnist("test", root, download=download)
        default_val = 1000
    elif name == "digits":
        x_all, y_all = load_digits(28)
        (x, y), (x_test, y_test) = train_val_split(x_all, y_all, val_size=300, seed=seed)
        default_val = 200
    else:  # co2
        co2 = load_co2(root)
        x, y, x_test = co2.x_train, co2.y_train, co2.x_test
        classification = False
        default_val = 0
    val = default_val if val_size is None else val_size
    x_val = y_val = None
    if val:
        (x, y), (x_val, y_val) = train_val_split(x, y, val_size=val, seed=seed)
    if max_train is not None:
        x, y = subsample(x, y, max_train, seed=seed)
    if x.shape[0] == 0:
        raise BayesdropError(f"The training split of {name!r} is empty.")
    return DatasetSplits(
        name=name,
        task="classification" if classification else "regression",
        x_train=x,
        y_train=y,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=10 if classification else None,
        input_shape=tuple(x.shape[1:]),
    )
