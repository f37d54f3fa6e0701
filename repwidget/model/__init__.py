"""The model adapter: architecture discovery, loading, and the forward-pass engine."""

from .loading import ModelLoadError, load
from .model import CaptureBudgetError, Model

__all__ = ["CaptureBudgetError", "Model", "ModelLoadError", "load"]
