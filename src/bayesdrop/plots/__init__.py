"""Plots of MC predictions and their metrics (matplotlib, headless).

matplotlib is imported lazily, when a plot is drawn; figures are pyplot-free
``matplotlib.figure.Figure`` objects (no GUI backend needed, nothing to close). Every function
returns the Figure and saves it atomically when given ``path=`` (.png, .svg or .pdf).

- :func:`reliability_diagram`: accuracy vs confidence per bin, with the confidence histogram.
- :func:`risk_coverage`: selective risk vs coverage per uncertainty score, with the oracle.
- :func:`mc_histogram`: the T MC samples of one input and one class (or output).
- :func:`ood_histogram`: an uncertainty score on in- vs out-of-distribution inputs.
- :func:`learning_curves`: active-learning accuracy vs labels, median and band over seeds.
- :func:`acquired_grid`: the items each active-learning strategy acquired first.
- :func:`uncertainty_histograms`, :func:`feature_changes`, :func:`clue_images`: CLUE results.
- :func:`regression_bands`: predictive mean with aleatoric and total uncertainty bands.
"""

from ._active import acquired_grid, learning_curves
from ._classification import mc_histogram, ood_histogram, reliability_diagram, risk_coverage
from ._common import save_figure
from ._explain import clue_images, feature_changes, uncertainty_histograms
from ._regression import regression_bands, regression_calibration

__all__ = [
    "acquired_grid",
    "clue_images",
    "feature_changes",
    "uncertainty_histograms",
    "learning_curves",
    "reliability_diagram",
    "risk_coverage",
    "mc_histogram",
    "ood_histogram",
    "regression_bands",
    "regression_calibration",
    "save_figure",
]
