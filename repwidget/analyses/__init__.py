"""Analyses: pure functions of a :class:`repwidget.Run`."""

from .attribution import Attribution, direct_logit_attribution
from .directions import logit_effects, nearest
from .geometry import layer_similarity, similarity, similarity_matrix
from .heads import head_scores
from .lens import Lens, logit_lens
from .losses import token_losses
from .predictions import top_tokens

__all__ = [
    "Attribution",
    "Lens",
    "direct_logit_attribution",
    "head_scores",
    "layer_similarity",
    "logit_effects",
    "logit_lens",
    "nearest",
    "similarity",
    "similarity_matrix",
    "token_losses",
    "top_tokens",
]
