"""repwidget: the insides of neural networks, visible and clickable in Jupyter."""

from . import analyses, codec, demo
from .demo import demo_model
from .hook_names import HookNameError
from .interventions import Ablate, Patch, Steer
from .model import CaptureBudgetError, Model, ModelLoadError, load
from .options import options
from .run import Run

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "charts":  # altair is imported only when a chart is asked for
        import importlib

        return importlib.import_module(".charts", __name__)
    raise AttributeError(f"module 'repwidget' has no attribute {name!r}")


__all__ = [
    "Ablate",
    "CaptureBudgetError",
    "HookNameError",
    "Model",
    "ModelLoadError",
    "Patch",
    "Run",
    "Steer",
    "analyses",
    "charts",
    "codec",
    "demo",
    "demo_model",
    "load",
    "options",
]
