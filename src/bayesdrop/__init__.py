"""bayesdrop: fast Monte-Carlo dropout uncertainty for any PyTorch model."""

from . import metrics, outputs, uncertainty
from ._errors import BayesdropError, BayesdropWarning
from ._sites import Method
from ._wrap import MCModel, Mode, Task, unwrap, wrap
from .layers import ConcreteDropout, concrete_regularization
from .prediction import Prediction

__all__ = [
    "BayesdropError",
    "BayesdropWarning",
    "ConcreteDropout",
    "MCModel",
    "Method",
    "Mode",
    "Prediction",
    "Task",
    "concrete_regularization",
    "metrics",
    "outputs",
    "uncertainty",
    "unwrap",
    "wrap",
]
__version__ = "0.1.0"
