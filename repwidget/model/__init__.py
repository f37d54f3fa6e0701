"""The model adapter: architecture discovery, loading, and the forward-pass engine."""

from .loading import ModelLoadError, load
from .model import Model

__all__ = ["Model", "ModelLoadError", "load"]
