"""Activations for probes: one row per text, at one site of each layer (or at any hooks), read at a position or
averaged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..hook_names import hook_for, parse
from ..texts import preview, token_ids


def read_activations(
    model: Any, texts: Sequence[Any], layers: Sequence[int], site: str, position: int | str = -1
) -> torch.Tensor:
    """``[n, len(layers), d]`` activations at ``site`` of each layer, read at ``position`` (or ``"mean"``
    over the tokens after ``<bos>``), in padded batches with progress. Every text is tokenised and
    checked (and ``position`` checked against it) before the first pass."""
    return read_at_hooks(model, texts, [hook_for(site, layer) for layer in layers], position)


def read_at_hooks(model: Any, texts: Sequence[Any], hooks: Sequence[str], position: int | str = -1) -> torch.Tensor:
    """:func:`read_activations` at any hooks: ``[n, len(hooks), width]`` (``attn.hook_z`` flattened over heads)."""
    hooks = list(hooks)
    for hook in hooks:
        parse(hook, model.n_layers)
    texts = list(texts) if not isinstance(texts, (str, bytes)) else texts
    ids = token_ids(model, texts)
    if position != "mean":
        if isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f'position must be a token index (int) or "mean", got {position!r}')
        for index, text_ids in enumerate(ids):
            if not -len(text_ids) <= position < len(text_ids):
                raise ValueError(
                    f"text {index} ({preview(texts[index])}): position {position} is outside its {len(text_ids)} tokens"
                )
    rows: list[torch.Tensor | None] = [None] * len(ids)
    for index, cache in model.iter_capture(ids, hooks):  # padded batches, each pass ending at the last hook
        acts = [cache[h].reshape(len(cache[h]), -1) for h in hooks]
        if position == "mean":
            rows[index] = torch.stack([a[1:].float().mean(0) if len(a) > 1 else a[0].float() for a in acts])
        else:
            rows[index] = torch.stack([a[position].float() for a in acts])
    return torch.stack(rows).cpu()
