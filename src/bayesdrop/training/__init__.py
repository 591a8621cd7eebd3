"""Training and evaluation of wrapped models: loops, schedules, early stopping, checkpoints.

>>> from bayesdrop.training import prior_weight_decay
>>> round(prior_weight_decay(length_scale=0.1, p=0.5, n=1000, tau=1.0), 15)
2.5e-06
"""

from ._loop import (
    EpochStats,
    Evaluation,
    History,
    dataset_targets,
    evaluate_model,
    fit,
    network,
)
from ._utils import (
    load_checkpoint,
    prior_weight_decay,
    resolve_device,
    save_checkpoint,
    seed_everything,
    seeded,
)

__all__ = [
    "seeded",
    "EpochStats",
    "Evaluation",
    "History",
    "dataset_targets",
    "evaluate_model",
    "fit",
    "load_checkpoint",
    "network",
    "prior_weight_decay",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
]
