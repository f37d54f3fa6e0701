"""Analyses: pure functions of a :class:`repwidget.Run`."""

from .heads import head_scores
from .losses import token_losses
from .predictions import top_tokens

__all__ = ["head_scores", "token_losses", "top_tokens"]
