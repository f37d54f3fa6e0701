"""repwidget: the insides of neural networks, visible and clickable in Jupyter."""

from . import codec, demo
from .demo import demo_model
from .hook_names import HookNameError
from .interventions import Ablate, Patch, Steer
from .model import CaptureBudgetError, Model, ModelLoadError, load
from .options import options
from .run import Run

__version__ = "0.1.0"

__all__ = [
    "Ablate",
    "CaptureBudgetError",
    "HookNameError",
    "Model",
    "ModelLoadError",
    "Patch",
    "Run",
    "Steer",
    "codec",
    "demo",
    "demo_model",
    "load",
    "options",
]
