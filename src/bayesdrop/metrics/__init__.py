"""Every uncertainty metric of bayesdrop, once, as a plain function on tensors.

Inputs may be tensors or NumPy arrays; they are checked (shape, finiteness, probabilities
summing to 1, label range) and computed in float64. Scalar metrics return Python floats.

Groups: classification (:func:`accuracy`, :func:`nll`, :func:`brier_score`); calibration
(:func:`ece`, :func:`adaptive_ece`, :func:`mce`, :func:`classwise_ece`); selective
classification (:func:`risk_coverage_curve`, :func:`aurc`, :func:`augrc`,
:func:`risk_at_coverage`, :func:`coverage_at_risk`); ranking and OOD detection
(:func:`auroc`, :func:`average_precision`, :func:`fpr_at_tpr`, :func:`ood_metrics`,
:func:`error_auroc`); regression (:func:`rmse`, :func:`mae`, :func:`gaussian_nll`,
:func:`mc_log_likelihood`, :func:`picp`, :func:`interval_width`,
:func:`quantile_calibration_error`, :func:`crps_gaussian`, :func:`crps_mixture`); uncertainty
(:func:`entropy`, :func:`expected_entropy`, :func:`mutual_information`,
:func:`variation_ratio`, from :mod:`bayesdrop.uncertainty`); complexity
(:func:`count_parameters`, :func:`count_flops`, :func:`mc_flops`); and the whole set:
:func:`evaluate`, :class:`Evaluator` (streaming), :func:`format_table`, :func:`print_table`.
"""

from ..uncertainty import entropy, expected_entropy, mutual_information, variation_ratio
from ._calibration import (
    CalibrationBins,
    adaptive_ece,
    calibration_bins,
    classwise_ece,
    ece,
    mce,
)
from ._classification import accuracy, brier_score, nll
from ._complexity import count_flops, count_parameters, mc_flops
from ._evaluate import OOD_SCORES, Evaluator, evaluate, ood_scores
from ._ranking import (
    aupr_in,
    aupr_out,
    auroc,
    average_precision,
    error_auroc,
    fpr_at_95_tpr,
    fpr_at_tpr,
    ood_auroc,
    ood_metrics,
    precision_recall_curve,
    roc_curve,
)
from ._regression import (
    crps_gaussian,
    crps_mixture,
    gaussian_nll,
    interval_width,
    mae,
    mc_log_likelihood,
    picp,
    quantile_calibration_error,
    rmse,
)
from ._selective import (
    CoverageAtRisk,
    RiskCoverageCurve,
    augrc,
    aurc,
    coverage_at_risk,
    risk_at_coverage,
    risk_coverage_curve,
)
from ._table import format_table, print_table

__all__ = [
    # classification
    "accuracy",
    "nll",
    "brier_score",
    # calibration
    "CalibrationBins",
    "calibration_bins",
    "ece",
    "adaptive_ece",
    "mce",
    "classwise_ece",
    # selective classification
    "RiskCoverageCurve",
    "CoverageAtRisk",
    "risk_coverage_curve",
    "aurc",
    "augrc",
    "risk_at_coverage",
    "coverage_at_risk",
    # ranking, OOD
    "roc_curve",
    "precision_recall_curve",
    "auroc",
    "average_precision",
    "fpr_at_tpr",
    "ood_auroc",
    "aupr_in",
    "aupr_out",
    "fpr_at_95_tpr",
    "ood_metrics",
    "ood_scores",
    "OOD_SCORES",
    "error_auroc",
    # regression
    "rmse",
    "mae",
    "gaussian_nll",
    "mc_log_likelihood",
    "picp",
    "interval_width",
    "quantile_calibration_error",
    "crps_gaussian",
    "crps_mixture",
    # uncertainty (from bayesdrop.uncertainty)
    "entropy",
    "expected_entropy",
    "mutual_information",
    "variation_ratio",
    # complexity
    "count_parameters",
    "count_flops",
    "mc_flops",
    # all together
    "evaluate",
    "Evaluator",
    "format_table",
    "print_table",
]
