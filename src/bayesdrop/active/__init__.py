"""Bayesian active learning on the sampling engine: acquisition functions.

Scores take per-sample class probabilities ``(N, K, C)`` (the layout of ``Prediction.samples``)
or a ``Prediction``; higher scores are acquired first. The single-point scores (``bald``,
``max_entropy``, ``variation_ratio``, ``mean_std``, ``margin``, ``least_confidence``) also
accept a ``Prediction`` that did not keep its samples: the engine's running sums are enough,
so a pool is scored in O(N) memory. ``batchbald`` and ``epig`` need the samples, drawn with
``predict(..., consistent=True)`` so that every pool point sees the same K sub-networks.

``Pool`` (indices, never dataset copies) and ``run_loop`` (train -> score -> acquire -> label,
resumable from its state file after every round) run the protocols; ``ActiveConfig`` /
``run_active`` / ``run_active_grid`` name a whole experiment (data set, model, method,
protocol), track it in MLflow, repeat it over heuristics and seeds (optionally on Ray), and
``summarize`` / ``plot_learning_curves`` / ``plot_acquired`` report it.
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
from ._charts import plot_acquired, plot_learning_curves
from ._experiment import (
    ACTIVE_DATASETS,
    ActiveConfig,
    ActiveData,
    ActiveResult,
    OutOfTime,
    active_grid,
    first_picks,
    grid_report,
    labels_to_accuracy,
    learning_curve_area,
    load_active_data,
    load_active_result,
    run_active,
    run_active_grid,
    summarize,
)
from ._loop import LoopConfig, Round, fit_step, run_loop
from ._pool import Pool

__all__ = [
    "ACTIVE_DATASETS",
    "ActiveConfig",
    "ActiveData",
    "ActiveResult",
    "OutOfTime",
    "active_grid",
    "first_picks",
    "grid_report",
    "labels_to_accuracy",
    "learning_curve_area",
    "load_active_data",
    "load_active_result",
    "plot_acquired",
    "plot_learning_curves",
    "run_active",
    "run_active_grid",
    "summarize",
    "Heuristic",
    "LoopConfig",
    "Pool",
    "Round",
    "fit_step",
    "run_loop",
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
