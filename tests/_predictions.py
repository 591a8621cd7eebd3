"""Predictions built by hand from raw samples with the direct definitions of bayesdrop.uncertainty
(shared by the metrics and plots tests, so that they do not depend on the sampling engine)."""

from __future__ import annotations

import math

import torch

from bayesdrop import Prediction
from bayesdrop.uncertainty import expected_entropy, mutual_information, predictive_entropy, variation_ratio


def classification_prediction(log_p: torch.Tensor, keep: bool = False) -> Prediction:
    """A classification Prediction from ``(B, T, C)`` per-sample log-probabilities."""
    t = log_p.shape[1]
    probs = log_p.exp()
    return Prediction(
        task="classification",
        n_samples=t,
        mean=probs.mean(1),
        total=predictive_entropy(log_p),
        aleatoric=expected_entropy(log_p),
        epistemic=mutual_information(log_p),
        variance=probs.var(1, correction=0),
        log_mean=torch.logsumexp(log_p, 1) - math.log(t),
        variation_ratio=variation_ratio(log_p),
        kept_samples=probs if keep else None,
    )
