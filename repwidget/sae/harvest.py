"""Activations of a model at one hook over many texts, in a bounded amount of memory, with progress."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from ..texts import token_ids


def activations(
    model: Any, hook: str, texts: Iterable[Any], skip_first: bool = True, batch_size: int | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(text index, [pos, width] activations)`` at ``hook`` for each text, read in padded batches (each pass
    ends once the hook is read; shortest texts first, so indices come out of order).

    ``attn.hook_z`` is flattened over heads. ``skip_first`` drops position 0 (the ``<bos>``
    attention sink, whose activation is unlike any other) from what is yielded. Every text is
    tokenised and checked before the first pass, so a bad one fails at once, named by its index.
    """
    for index, acts in activations_at(model, [hook], texts, skip_first, batch_size):
        yield index, acts[hook]


def activations_at(
    model: Any, hooks: Sequence[str], texts: Iterable[Any], skip_first: bool = True, batch_size: int | None = None
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """:func:`activations` at several hooks read in the same passes: ``(text index, {hook: [pos, width]})``."""
    ids = token_ids(model, texts)
    for index, cache in model.iter_capture(ids, list(hooks), batch_size=batch_size):
        out = {}
        for hook in hooks:
            acts = cache[hook]
            acts = acts.reshape(acts.shape[0], -1)
            out[hook] = acts[1:] if skip_first else acts
        yield index, out


def stack(model: Any, hook: str, texts: Iterable[Any], max_tokens: int = 1_000_000) -> torch.Tensor:
    """``[tokens, width]`` activations at ``hook`` over ``texts`` (float32, on the CPU), at most ``max_tokens``."""
    parts, total = [], 0
    for _, acts in activations(model, hook, texts):
        parts.append(acts.float().cpu()[: max_tokens - total])
        total += len(parts[-1])
        if total >= max_tokens:
            break
    if not parts:
        raise ValueError("no texts to read activations from")
    return torch.cat(parts)
