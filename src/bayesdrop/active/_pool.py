"""The pool of an active-learning run: indices into a dataset, never copies of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._errors import expected

UNLABELLED = -1


class Pool:
    """Which items of a ``size``-item dataset are labelled, and in which round.

    Round 0 is the initial set. Items are only indices: the dataset is read where it lives. Every
    random choice takes an explicit seed, and the whole state is ``state_dict()`` (plain lists),
    so a run resumed from it makes the same choices.

    >>> pool = Pool(10)
    >>> pool.label([3, 7], round=0)
    >>> pool.labelled.tolist(), len(pool.unlabelled)
    ([3, 7], 8)
    """

    def __init__(self, size: int, excluded: Sequence[int] = ()) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise expected("size", "an integer >= 1 (the number of items)", size)
        self.size = size
        self.labelled_round = np.full(size, UNLABELLED, dtype=np.int64)
        self.excluded = np.zeros(size, dtype=bool)  # e.g. a validation set carved out of the pool
        self.exclude(excluded)

    # -- reading -------------------------------------------------------------------------------
    @property
    def labelled(self) -> np.ndarray:
        """Labelled item indices, ascending."""
        return np.flatnonzero(self.labelled_round != UNLABELLED)

    @property
    def unlabelled(self) -> np.ndarray:
        """Unlabelled (and not excluded) item indices, ascending."""
        return np.flatnonzero((self.labelled_round == UNLABELLED) & ~self.excluded)

    def labelled_in(self, round: int) -> np.ndarray:
        return np.flatnonzero(self.labelled_round == round)

    # -- changing ------------------------------------------------------------------------------
    def _indices(self, indices, name: str) -> np.ndarray:
        array = np.asarray(indices, dtype=np.int64).reshape(-1)
        if array.size and (array.min() < 0 or array.max() >= self.size):
            raise expected(name, f"item indices in [0, {self.size})", array[(array < 0) | (array >= self.size)][:5])
        if len(np.unique(array)) != len(array):
            raise expected(name, "distinct item indices", "repeated indices")
        return array

    def exclude(self, indices: Sequence[int]) -> None:
        array = self._indices(indices, "excluded")
        if array.size and bool((self.labelled_round[array] != UNLABELLED).any()):
            raise expected("excluded", "unlabelled items", "labelled ones")
        self.excluded[array] = True

    def label(self, indices: Sequence[int], round: int) -> None:
        """Mark ``indices`` labelled in ``round``; labelling an item twice is an error."""
        array = self._indices(indices, "indices")
        taken = array[(self.labelled_round[array] != UNLABELLED) | self.excluded[array]]
        if taken.size:
            raise expected("indices", "unlabelled, not excluded items", f"items already taken: {taken[:5].tolist()}")
        self.labelled_round[array] = round

    # -- seeded choices ------------------------------------------------------------------------
    def balanced_initial(self, targets: Sequence[int], per_class: int, seed: int) -> np.ndarray:
        """``per_class`` unlabelled items of every class of ``targets`` (one label per item),
        drawn with ``seed``; not yet labelled (pass them to :meth:`label`)."""
        targets = np.asarray(targets).reshape(-1)
        if len(targets) != self.size:
            raise expected("targets", f"{self.size} labels (one per item)", len(targets))
        rng = np.random.default_rng(seed)
        candidates = self.unlabelled
        chosen = []
        for cls in np.unique(targets[candidates]):
            members = candidates[targets[candidates] == cls]
            if len(members) < per_class:
                raise expected("per_class", f"at most {len(members)} (the items of class {cls})", per_class)
            chosen.append(rng.choice(members, per_class, replace=False))
        return np.sort(np.concatenate(chosen))

    def random_unlabelled(self, count: int, seed: int) -> np.ndarray:
        """``count`` unlabelled items drawn with ``seed`` (all of them when fewer), ascending:
        the pool subset a round scores, or random acquisition."""
        candidates = self.unlabelled
        if count >= len(candidates):
            return candidates
        return np.sort(np.random.default_rng(seed).choice(candidates, count, replace=False))

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain lists, compact for large pools: the labelled ``[index, round]`` pairs and the
        excluded indices."""
        labelled = self.labelled
        return {
            "size": self.size,
            "labelled": [[int(i), int(self.labelled_round[i])] for i in labelled],
            "excluded": np.flatnonzero(self.excluded).tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> Pool:
        pool = cls(int(state["size"]))
        pairs = np.asarray(state["labelled"], dtype=np.int64).reshape(-1, 2)
        excluded = np.asarray(state["excluded"], dtype=np.int64).reshape(-1)
        for name, values in (("labelled", pairs[:, 0]), ("excluded", excluded)):
            if values.size and (values.min() < 0 or values.max() >= pool.size):
                raise expected(
                    "state", f"{name} indices in [0, {pool.size})", values[(values < 0) | (values >= pool.size)][:5]
                )
        pool.labelled_round[pairs[:, 0]] = pairs[:, 1]
        pool.excluded[excluded] = True
        return pool
