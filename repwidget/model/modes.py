"""Temporary modes of a model for the duration of a pass, always restored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def attention_implementation(model: nn.Module, name: str | None) -> Iterator[None]:
    """The model's attention implementation (``config._attn_implementation``) switched to ``name`` and back,
    whatever happens inside (``name=None``: left as it is)."""
    config = getattr(model, "config", None)
    if name is None or config is None:
        yield
        return
    before = getattr(config, "_attn_implementation", None)
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before


def eager_attention(model: nn.Module):
    """Switch a Hugging Face model to eager attention and back, whatever happens inside.

    Under SDPA or flash attention (the transformers default) the probabilities are never
    materialised, so ``output_attentions`` returns nothing. Eager attention computes the same
    outputs and returns the probabilities the model really used; the user keeps their model
    as it was loaded.
    """
    before = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return attention_implementation(model, None if before in (None, "eager") else "eager")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Dropout off for the pass; each module's training flag restored after."""
    training = [m for m in model.modules() if m.training]
    for m in training:
        m.training = False
    try:
        yield
    finally:
        for m in training:
            m.training = True
