"""Views: anywidgets over runs, alone or linked in the explorer."""

from .explorer import Explorer, explore
from .widget import AttentionView, LogitLensView, PredictionsView, RunWidget, TokensView

__all__ = ["AttentionView", "Explorer", "LogitLensView", "PredictionsView", "RunWidget", "TokensView", "explore"]
