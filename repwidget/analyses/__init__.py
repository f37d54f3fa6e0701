"""Analyses: functions of a :class:`repwidget.Run` (head scores, the logit lens, attribution, ...), or of a model
over texts (``layer_measures``, ``layer_similarity``), which run the passes they need. Analyses that intervene
and compare runs have their own public homes: ``rw.patching`` and ``rw.steering``."""

from .attribution import Attribution, direct_logit_attribution, resolve_token
from .depth import LayerMeasures, layer_measures
from .directions import logit_effects, nearest
from .geometry import layer_similarity, similarity, similarity_matrix
from .heads import head_scores
from .lens import Lens, kl_to_final, lens_kl, logit_lens
from .losses import token_losses
from .predictions import top_tokens
from .tcav import TCAVResult, tcav
from .tuned_lens import TunedLens
from .vision import Saliency, channel_attribution, saliency

__all__ = [
    "Attribution",
    "LayerMeasures",
    "Lens",
    "Saliency",
    "TCAVResult",
    "TunedLens",
    "channel_attribution",
    "direct_logit_attribution",
    "head_scores",
    "kl_to_final",
    "layer_measures",
    "layer_similarity",
    "lens_kl",
    "logit_effects",
    "logit_lens",
    "nearest",
    "resolve_token",
    "saliency",
    "similarity",
    "similarity_matrix",
    "tcav",
    "token_losses",
    "top_tokens",
]
