"""Layer-by-layer measures over a dataset: how much each block changes the residual stream, how close each
layer's logit lens is to the output, how spread its token representations are, and what skipping it costs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..interventions import Skip
from ..texts import token_ids
from .lens import kl_to_final
from .losses import token_losses


@dataclass(frozen=True)
class LayerMeasures:
    """One value per layer (``[n_layers]`` tensors), means over every token after ``<bos>`` of the dataset.

    - ``update``: ``|resid_post - resid_pre| / |resid_pre|``, each block's relative change of the stream.
    - ``cosine``: cosine between ``resid_pre`` and ``resid_post`` (successive residual streams).
    - ``lens_kl``: KL(final || logit lens) in nats: how far each layer's readout is from the output's.
    - ``prompt_entropy``: matrix-based (alpha = 1) entropy of each prompt's token Gram matrix ``Z Z^T``
      (eigenvalues over the trace), averaged over prompts ("Layer by Layer", Skean et al. 2025); high when
      the prompt's tokens point in many directions, 0 when they collapse to one.
    - ``effective_rank``: exp of the entropy of the normalised singular values of every token's
      centred representation over the dataset (Roy and Vetterli 2007).
    - ``skip_loss``: the mean next-token loss with the block skipped (``rw.Skip``) minus ``loss``
      (None when ``skip=False``).
    """

    update: torch.Tensor
    cosine: torch.Tensor
    lens_kl: torch.Tensor | None
    prompt_entropy: torch.Tensor
    effective_rank: torch.Tensor
    skip_loss: torch.Tensor | None
    loss: float | None
    tokens: int

    def as_dict(self) -> dict[str, list[float]]:
        """The per-layer measures as lists (those computed), for tables and charts."""
        names = ("update", "cosine", "lens_kl", "prompt_entropy", "effective_rank", "skip_loss")
        return {n: getattr(self, n).tolist() for n in names if getattr(self, n) is not None}


def layer_measures(model: Any, texts: Sequence[Any], skip: bool = True) -> LayerMeasures:
    """:class:`LayerMeasures` of ``model`` over ``texts`` (one padded-batch reading of every residual stream,
    plus, with ``skip``, one batched pass per layer with that block skipped). A model without an unembedding
    has no lens KL or losses."""
    ids = token_ids(model, texts)
    if not any(len(x) > 1 for x in ids):
        raise ValueError("layer measures need a text of two tokens or more (the first, <bos>, is left out)")
    n_layers, d = model.n_layers, model.d_model
    pre = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    post = [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]
    sums = {k: torch.zeros(n_layers, dtype=torch.float64) for k in ("update", "cosine", "kl", "entropy")}
    first = torch.zeros(n_layers, d, dtype=torch.float64)
    second = torch.zeros(n_layers, d, d, dtype=torch.float64)
    tokens, prompts, losses = 0, 0, []
    lens = model.has_unembed
    for index, cache in model.iter_capture(ids, pre + post):
        if len(ids[index]) < 2:
            continue
        a = torch.stack([cache[h][1:] for h in pre]).double().cpu()  # [layer, pos, d]
        b = torch.stack([cache[h][1:] for h in post]).double().cpu()
        sums["update"] += ((b - a).norm(dim=-1) / a.norm(dim=-1).clamp_min(1e-12)).sum(1)
        sums["cosine"] += torch.nn.functional.cosine_similarity(a, b, dim=-1).sum(1)
        sums["entropy"] += _gram_entropy(b)
        first += b.sum(1)
        second += b.transpose(1, 2) @ b
        tokens += b.shape[1]
        prompts += 1
        if lens:
            resids = [cache[h] for h in post]
            sums["kl"] += kl_to_final(model, [r[1:] for r in resids]).double().sum(1)
            logits = model.logits_from_resid(resids[-1]).float()
            target = torch.tensor(ids[index][1:], device=logits.device)
            losses.append(torch.nn.functional.cross_entropy(logits[:-1], target, reduction="sum").cpu())
    mean = first / tokens
    covariance = second - tokens * mean[:, :, None] * mean[:, None, :]
    singular = torch.linalg.eigvalsh(covariance).clamp_min(0).sqrt()  # of the centred [tokens, d] matrix
    loss = float(sum(losses)) / sum(len(x) - 1 for x in ids) if lens else None
    skip_loss = None
    if skip and lens:
        skip_loss = torch.tensor([_loss(model, ids, Skip(layer)) - loss for layer in range(n_layers)])
    return LayerMeasures(
        update=(sums["update"] / tokens).float(),
        cosine=(sums["cosine"] / tokens).float(),
        lens_kl=(sums["kl"] / tokens).float() if lens else None,
        prompt_entropy=(sums["entropy"] / prompts).float(),
        effective_rank=_entropy(singular).exp().float(),
        skip_loss=skip_loss,
        loss=loss,
        tokens=tokens,
    )


def _entropy(values: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of the non-negative ``values`` of each row, normalised to sum to 1."""
    p = values / values.sum(-1, keepdim=True).clamp_min(1e-300)
    return -(p * p.clamp_min(1e-300).log()).sum(-1)


def _gram_entropy(z: torch.Tensor) -> torch.Tensor:
    """``[layer]``: the alpha = 1 matrix entropy of each layer's Gram matrix ``z z^T`` (``z``: ``[layer, pos, d]``)."""
    eig = torch.linalg.eigvalsh(z @ z.transpose(1, 2)).clamp_min(0)
    return _entropy(eig)


def _loss(model: Any, ids: list[list[int]], skip: Skip) -> float:
    """The mean next-token loss over ``ids`` with ``skip`` applied."""
    total = sum(float(token_losses(run).sum()) for run in model.run_batch(ids, skip, capture=()))
    return total / sum(len(x) - 1 for x in ids)
