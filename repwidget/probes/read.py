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
    hooks = [hook_for(site, layer) for layer in layers]
    acts = read_at_hooks(model, texts, hooks, position)
    return torch.stack([acts[hook] for hook in hooks], 1)


def read_at_hooks(
    model: Any, texts: Sequence[Any], hooks: Sequence[str], position: int | str = -1
) -> dict[str, torch.Tensor]:
    """:func:`read_activations` at any hooks, of any widths, in the same passes: ``{hook: [n, width]}``
    (``attn.hook_z`` flattened over heads)."""
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
    rows: dict[str, list[Any]] = {hook: [None] * len(ids) for hook in hooks}
    for index, cache in model.iter_capture(ids, hooks):  # padded batches, each pass ending at the last hook
        for hook in hooks:
            rows[hook][index] = reading(cache[hook].reshape(len(cache[hook]), -1), position)
    return {hook: torch.stack(rows[hook]).cpu() for hook in hooks}


def reading(acts: torch.Tensor, position: int | str) -> torch.Tensor:
    """The row a probe reads from one text's activations ``[pos, d]``: at ``position``, or ``"mean"`` over the
    tokens after ``<bos>`` (the only token of a one-token text)."""
    if position == "mean":
        return acts[1:].float().mean(0) if len(acts) > 1 else acts[0].float()
    return acts[position].float()
