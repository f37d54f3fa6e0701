"""Analyses: pure functions of a :class:`repwidget.Run`."""

from .heads import head_scores
from .lens import Lens, logit_lens
from .losses import token_losses
from .predictions import top_tokens

__all__ = ["Lens", "head_scores", "logit_lens", "token_losses", "top_tokens"]
