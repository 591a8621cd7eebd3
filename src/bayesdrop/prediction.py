"""The one result type of every MC prediction."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ._errors import BayesdropError

__all__ = ["Prediction"]


@dataclass(frozen=True, eq=False)
class Prediction:
    """What ``MCModel.predict`` returns, for classification and regression alike.

    Shapes use ``B`` for the batch, ``T`` for the number of MC samples, ``C`` for classes and
    ``*out`` for a regression output's shape.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        n_samples: T, the number of stochastic forward passes behind every number here.
        mean: ``(B, C)`` predictive probabilities E_t softmax_t, or ``(B, *out)`` predictive mean.
        total: classification ``(B,)`` predictive entropy (nats); regression ``(B, *out)``
            predictive variance = aleatoric + epistemic.
        aleatoric: classification ``(B,)`` expected entropy; regression ``(B, *out)`` expected
            noise variance E_t sigma2_t (``1 / tau`` for point-output models given ``tau``,
            0 when neither a variance head nor ``tau`` is available).
        epistemic: classification ``(B,)`` mutual information; regression ``(B, *out)`` variance
            of the sampled means, Var_t mu_t (divisor T).
        variance: classification ``(B, C)`` per-class variance of the sampled probabilities;
            regression: same tensor as ``total``.
        log_mean: classification ``(B, C)`` log of ``mean`` computed by log-mean-exp (stable for
            tiny probabilities); None for regression.
        variation_ratio: classification ``(B,)`` 1 - modal votes / T; None for regression.
        log_likelihood: ``(B,)`` log predictive density (regression, mixture over samples via
            log-mean-exp, summed over ``*out``) or log probability (classification) of the
            ``target`` given to ``predict``; None when no target was given.
    """

    task: str
    n_samples: int
    mean: Tensor
    total: Tensor
    aleatoric: Tensor
    epistemic: Tensor
    variance: Tensor
    log_mean: Tensor | None = None
    variation_ratio: Tensor | None = None
    log_likelihood: Tensor | None = None
    kept_samples: Tensor | None = field(default=None, repr=False)
    kept_sample_variances: Tensor | None = field(default=None, repr=False)

    @property
    def samples(self) -> Tensor:
        """``(B, T, C)`` per-sample probabilities or ``(B, T, *out)`` per-sample means."""
        if self.kept_samples is None:
            raise BayesdropError(
                "The raw samples were not kept: call `predict(..., keep_samples=True)` to get "
                "`samples` of layout (B, T, C) (classification) or (B, T, *out) (regression)."
            )
        return self.kept_samples

    @property
    def sample_variances(self) -> Tensor:
        """``(B, T, *out)`` per-sample predicted variances of a Gaussian-head regression model."""
        if self.kept_sample_variances is None:
            raise BayesdropError(
                "No per-sample variances: they exist for regression models with a variance head "
                "(`output='mean_var'` or `'mean_logvar'`) predicted with `keep_samples=True`."
            )
        return self.kept_sample_variances

    @property
    def std(self) -> Tensor:
        """Regression: ``(B, *out)`` predictive standard deviation sqrt(total)."""
        if self.task != "regression":
            raise BayesdropError("`std` is defined for regression predictions only.")
        return self.total.sqrt()

    @property
    def predicted_class(self) -> Tensor:
        """Classification: ``(B,)`` argmax of the predictive probabilities."""
        if self.task != "classification":
            raise BayesdropError("`predicted_class` is defined for classification only.")
        return self.mean.argmax(-1)
