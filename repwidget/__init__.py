"""repwidget: the insides of neural networks, visible and clickable in Jupyter."""

from . import analyses, datasets, demo, patching, probes, steering, transcoders, units
from ._version import __version__
from .analyses.top_examples import TopExamples, top_examples
from .analyses.tuned_lens import TunedLens
from .demo import demo_model
from .generation import Generation
from .graphs import Graph, attribution_graph
from .hook_names import HookNameError
from .interventions import Ablate, Knockout, Patch, Replace, Skip, Steer
from .model import CaptureBudgetError, Model, ModelLoadError, load
from .options import options
from .probes import Probes, train_probes
from .run import Run
from .sae import SAE, feature_dashboard, feature_dashboards, train_sae
from .transcoders import CrossLayerTranscoder, Transcoder, TranscoderSet, train_transcoder

#: imported on first use: altair for charts, anywidget/ipywidgets for the views (name -> the module it is, or is in)
_LAZY = {
    "charts": "views.charts",
    "views": "views",
    "explore": "views",
    "Explorer": "views",
    "AttentionView": "views",
    "LogitLensView": "views",
    "PredictionsView": "views",
    "TokensView": "views",
}


def load_ipython_extension(ipython) -> None:
    """``%load_ext repwidget``: the ``%explore`` / ``%%explore`` magics, and ``Run`` values shown as the explorer."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return module if _LAZY[name].rpartition(".")[2] == name else getattr(module, name)
    raise AttributeError(f"module 'repwidget' has no attribute {name!r}")


__all__ = [
    "SAE",
    "Ablate",
    "AttentionView",
    "CaptureBudgetError",
    "CrossLayerTranscoder",
    "Explorer",
    "Generation",
    "Graph",
    "HookNameError",
    "Knockout",
    "LogitLensView",
    "Model",
    "ModelLoadError",
    "Patch",
    "PredictionsView",
    "Probes",
    "Replace",
    "Run",
    "Skip",
    "Steer",
    "TokensView",
    "TopExamples",
    "Transcoder",
    "TranscoderSet",
    "TunedLens",
    "__version__",
    "analyses",
    "attribution_graph",
    "charts",
    "datasets",
    "demo",
    "demo_model",
    "explore",
    "feature_dashboard",
    "feature_dashboards",
    "load",
    "options",
    "patching",
    "probes",
    "steering",
    "top_examples",
    "train_probes",
    "train_sae",
    "train_transcoder",
    "transcoders",
    "units",
    "views",
]
