"""Bayesian active learning on the sampling engine: acquisition functions.

Scores take per-sample class probabilities ``(N, K, C)`` (the layout of ``Prediction.samples``)
or a ``Prediction``; higher scores are acquired first. The single-point scores (``bald``,
``max_entropy``, ``variation_ratio``, ``mean_std``, ``margin``, ``least_confidence``) also
accept a ``Prediction`` that did not keep its samples: the engine's running sums are enough,
so a pool is scored in O(N) memory. ``batchbald`` and ``epig`` need the samples, drawn with
``predict(..., consistent=True)`` so that every pool point sees the same K sub-networks.
"""

from ._acquisition import (
    Heuristic,
    bald,
    batchbald,
    epig,
    least_confidence,
    margin,
    max_entropy,
    mean_std,
    random_scores,
    score,
    stochastic_batch,
    variation_ratio,
)

__all__ = [
    "Heuristic",
    "bald",
    "batchbald",
    "epig",
    "least_confidence",
    "margin",
    "max_entropy",
    "mean_std",
    "random_scores",
    "score",
    "stochastic_batch",
    "variation_ratio",
]
