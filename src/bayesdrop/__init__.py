"""bayesdrop: fast Monte-Carlo dropout uncertainty for any PyTorch model."""

from . import metrics, uncertainty
from ._errors import BayesdropError
from ._sites import Method
from ._wrap import MCModel, Task, unwrap, wrap
from .layers import ConcreteDropout, concrete_regularization
from .prediction import Prediction

__all__ = [
    "BayesdropError",
    "ConcreteDropout",
    "MCModel",
    "Method",
    "Prediction",
    "Task",
    "concrete_regularization",
    "metrics",
    "uncertainty",
    "unwrap",
    "wrap",
]
__version__ = "0.1.0"
