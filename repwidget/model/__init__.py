"""The model adapter: architecture discovery, loading, planning passes and executing them."""

from .loading import ModelLoadError, load
from .model import Model
from .plan import CaptureBudgetError

__all__ = ["CaptureBudgetError", "Model", "ModelLoadError", "load"]
