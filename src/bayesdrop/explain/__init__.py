"""Explaining uncertainty: CLUE (counterfactual latent uncertainty explanations) on MC-dropout
networks, the generative models it searches in, and the baselines it is compared with.

- :func:`clue`: the smallest change, along the data manifold of a VAE, that makes the model
  confident; one engine call per step for all rows, fixed masks while optimising, fresh masks
  for the reported uncertainty.
- :func:`tabular_vae` (continuous + categorical columns), :func:`image_vae` (28x28), trained
  with ``training.fit(vae, data, loss=elbo_loss)``.
- :class:`VAEAC`: in-filling any features given the others (and the ground truth of the
  paper's computational evaluation); :func:`ufido` and :func:`sensitivity`: the baselines.
"""

from ._clue import (
    ClueResult,
    ClueSet,
    Distance,
    Kind,
    clue,
    clue_set,
    conditional_clue,
    sensitivity,
    uncertainty_of,
)
from ._experiment import EXPLAIN_DATASETS, ExplainConfig, explain_grid, load_explain_data, run_explain, trained_models
from ._ufido import ufido
from ._vae import VAE, BernoulliLikelihood, MixedLikelihood, elbo_loss, image_vae, tabular_vae
from ._vaeac import VAEAC, vaeac_loss

__all__ = [
    "EXPLAIN_DATASETS",
    "ExplainConfig",
    "explain_grid",
    "load_explain_data",
    "run_explain",
    "trained_models",
    "VAE",
    "VAEAC",
    "ufido",
    "vaeac_loss",
    "BernoulliLikelihood",
    "ClueResult",
    "ClueSet",
    "clue_set",
    "conditional_clue",
    "Distance",
    "Kind",
    "MixedLikelihood",
    "clue",
    "elbo_loss",
    "image_vae",
    "sensitivity",
    "tabular_vae",
    "uncertainty_of",
]
