"""bayesdrop: fast Monte-Carlo dropout uncertainty for any PyTorch model."""

from ._errors import BayesdropError
from .prediction import Prediction

__all__ = ["BayesdropError", "Prediction"]
__version__ = "0.1.0"
