"""Views: anywidgets over runs, alone or linked in the explorer, each a thin layer over a Session."""

from .explorer import Explorer, explore
from .session import Session
from .widget import AttentionView, LogitLensView, PredictionsView, RunWidget, TokensView

__all__ = [
    "AttentionView",
    "Explorer",
    "LogitLensView",
    "PredictionsView",
    "RunWidget",
    "Session",
    "TokensView",
    "explore",
]
