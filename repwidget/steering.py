"""Steering vectors from prompts, each a :class:`repwidget.Steer`: contrastive activation addition (the difference
of mean activations between two sets of prompts) and function vectors (the mean output of chosen heads over
in-context-learning prompts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .analyses.attribution import _weight
from .interventions import Steer

if TYPE_CHECKING:
    from .model.model import Model


def contrastive(
    model: Model,
    positive: Sequence[Any],
    negative: Sequence[Any],
    layer: int,
    position: int | str = -1,
    scale: float = 1.0,
) -> Steer:
    """Contrastive activation addition: the mean residual stream after block ``layer`` over ``positive`` prompts
    minus that over ``negative`` ones, as a steer at ``layer`` (every position). ``position``: the token each
    prompt is read at (default its last), or ``"mean"`` for the mean over its tokens."""
    hook = _hook(model, layer)
    vector = _mean(model, positive, hook, position) - _mean(model, negative, hook, position)
    name = f"contrastive ({len(positive)} vs {len(negative)} prompts)"
    return Steer(layer, vector, scale=scale, name=name)


def function_vector(
    model: Model,
    prompts: Sequence[Any],
    heads: Sequence[tuple[int, int]],
    layer: int,
    position: int = -1,
    scale: float = 1.0,
) -> Steer:
    """A function vector: the sum over ``heads`` (``(layer, head)`` pairs) of each head's mean output (what it adds
    to the residual stream, without the projection's bias) at ``position`` (default the last token) of
    in-context-learning ``prompts``, as a steer after block ``layer`` (every position; pass it on with
    ``dataclasses.replace(steer, positions=[...])`` for one)."""
    _hook(model, layer)
    pairs = [_head(model, h) for h in heads]
    if not pairs:
        raise ValueError("function_vector needs at least one (layer, head)")
    if len(set(pairs)) != len(pairs):
        raise ValueError("heads must be distinct")
    _check_prompts(prompts)
    if isinstance(position, bool) or not isinstance(position, int):
        raise ValueError(f"position must be a token position (an int), got {position!r:.20}")
    if getattr(model, "weightless", False):
        raise ValueError(
            "function_vector reads the attention output projections' weights, which are on NDIF only for this "
            "model; load the weights (remote=False), or steer with rw.steering.contrastive (activations only)"
        )
    arch = model.arch
    blocks = model.hf.get_submodule(arch.blocks)
    vector = torch.zeros(model.d_model, dtype=torch.float64)
    for at in sorted({a for a, _ in pairs}):
        z_hook, out_hook = f"blocks.{at}.attn.hook_z", f"blocks.{at}.hook_attn_out"
        projection = blocks[at].get_submodule(arch.attn_proj)
        w_o = _weight(projection, arch.n_heads * arch.d_head)  # [d_model, heads * d_head]
        bias = getattr(projection, "bias", None)
        for cache in model.capture_batch(list(prompts), [z_hook, out_hook], progress=False):
            z = cache[z_hook][_index(position, len(cache[z_hook]))].float()  # [heads, d_head]
            outputs = arch.attn_scale * torch.stack(
                [w_o[:, h * arch.d_head : (h + 1) * arch.d_head] @ z[h] for h in range(arch.n_heads)]
            )
            total = outputs.sum(0) + (arch.attn_scale * bias.detach().float() if bias is not None else 0)
            out = cache[out_hook][_index(position, len(cache[out_hook]))].float()
            if not torch.allclose(total, out, atol=1e-4 * (1 + float(out.abs().max())), rtol=1e-3):
                raise ValueError(
                    "this model's attention output is not the sum of its heads' outputs (a norm after the "
                    "projection?), so a head has no output of its own to average"
                )
            for h in (h for a, h in pairs if a == at):
                vector += outputs[h].double().cpu() / len(prompts)
    name = f"function vector of {len(pairs)} head{'s' if len(pairs) > 1 else ''} ({len(prompts)} prompts)"
    return Steer(layer, vector.float(), scale=scale, name=name)


def _hook(model: Model, layer: Any) -> str:
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must be an int in 0..{model.n_layers - 1}, got {layer!r:.40}")
    return f"blocks.{layer}.hook_resid_post"


def _head(model: Model, pair: Any) -> tuple[int, int]:
    ok = isinstance(pair, (tuple, list)) and len(pair) == 2 and all(type(v) is int for v in pair)
    if not ok or not (0 <= pair[0] < model.n_layers and 0 <= pair[1] < model.n_heads):
        raise ValueError(
            f"heads must be (layer, head) pairs in 0..{model.n_layers - 1} x 0..{model.n_heads - 1}, got {pair!r:.40}"
        )
    return int(pair[0]), int(pair[1])


def _check_prompts(prompts: Any) -> None:
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence) or not prompts:
        raise ValueError("prompts must be a non-empty list of texts (or token ids)")


def _index(position: Any, n: int) -> Any:
    if position == "mean":
        return slice(None)
    if isinstance(position, bool) or not isinstance(position, int) or not -n <= position < n:
        raise ValueError(f"position {position!r:.20} is outside a prompt of {n} tokens (or use 'mean')")
    return position


def _mean(model: Model, prompts: Sequence[Any], hook: str, position: int | str) -> torch.Tensor:
    _check_prompts(prompts)
    total = torch.zeros(model.d_model, dtype=torch.float64)
    for cache in model.capture_batch(list(prompts), [hook], progress=False):
        acts = cache[hook][_index(position, len(cache[hook]))].double().cpu()
        total += acts.mean(0) if position == "mean" else acts
    return (total / len(prompts)).float()
