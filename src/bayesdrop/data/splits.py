"""Seeded train/validation splits and DataLoaders over in-memory tensors."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from .._errors import BayesdropError, expected

__all__ = ["train_val_split", "make_loader", "subsample"]


def _check_pair(x: Tensor, y: Tensor | None) -> None:
    if not isinstance(x, Tensor) or x.ndim == 0:
        raise expected("x", "a tensor with a leading batch dimension", type(x).__name__)
    if y is not None and (not isinstance(y, Tensor) or y.shape[:1] != x.shape[:1]):
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise expected("y", f"a tensor with {x.shape[0]} rows like `x`", got)


def train_val_split(
    x: Tensor,
    y: Tensor,
    *,
    val_size: int | float = 0.1,
    seed: int = 0,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Split ``(x, y)`` into train and validation parts by a seeded random permutation.

    Args:
        x: ``(N, *)`` inputs; y: ``(N, *)`` targets.
        val_size: number of validation examples (int) or fraction of N (float in (0, 1)).
        seed: the same seed gives the same split.

    Returns:
        ``((x_train, y_train), (x_val, y_val))``.
    """
    _check_pair(x, y)
    n = x.shape[0]
    if isinstance(val_size, float) and not isinstance(val_size, bool):
        if not 0.0 < val_size < 1.0:
            raise expected("val_size", "a fraction in (0, 1) or an int count", val_size)
        n_val = max(1, round(n * val_size))
    elif isinstance(val_size, int) and not isinstance(val_size, bool):
        n_val = val_size
    else:
        raise expected("val_size", "an int count or a float fraction", val_size)
    if not 0 < n_val < n:
        raise BayesdropError(
            f"Expected argument `val_size` to leave both parts non-empty (1..{n - 1} of {n} "
            f"examples), but got {val_size!r}."
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])


def subsample(x: Tensor, y: Tensor, n: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded random subset of ``n`` rows of ``(x, y)`` (all rows if ``n >= N``)."""
    _check_pair(x, y)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise expected("n", "a positive int", n)
    if n >= x.shape[0]:
        return x, y
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def make_loader(
    x: Tensor,
    y: Tensor | None = None,
    *,
    batch_size: int = 128,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over in-memory tensors; yields ``(x, y)`` batches, or ``(x,)`` without ``y``.

    Shuffling uses its own generator seeded with ``seed``, so the batch order is reproducible
    and independent of the global RNG.
    """
    _check_pair(x, y)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise expected("batch_size", "a positive int", batch_size)
    dataset = TensorDataset(x) if y is None else TensorDataset(x, y)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last,
        num_workers=num_workers,
    )
