"""What directions in activation space mean: their direct effect on logits, and their nearest neighbours."""

from __future__ import annotations

from typing import Any

import torch


def logit_effects(model: Any, direction: torch.Tensor, k: int = 8) -> tuple[list, list]:
    """The ``k`` tokens whose logits ``direction`` (in the last hidden state) raises most, and the ``k`` it
    lowers most, each as ``(token, effect)``: the direct path through the unembedding."""
    unembed = model.unembedding().float()  # [vocab, d_model]
    effect = unembed @ direction.to(unembed.device).float()
    k = min(k, len(effect))
    up, down = effect.topk(k), (-effect).topk(k)
    words = model.to_str_tokens
    return (
        list(zip(words(up.indices.tolist()), up.values.tolist(), strict=True)),
        list(zip(words(down.indices.tolist()), (-down.values).tolist(), strict=True)),
    )


def nearest(vectors: torch.Tensor, direction: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and cosines of the ``k`` rows of ``vectors`` ``[n, d]`` most aligned with ``direction`` (by
    absolute cosine: a feature pointing the opposite way is as related)."""
    vectors = vectors.float().cpu()
    cosines = (vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)) @ direction.float().cpu()
    cosines = cosines / direction.float().norm().clamp_min(1e-12)
    top = cosines.abs().topk(min(k, len(cosines)))
    return top.indices, cosines[top.indices]
