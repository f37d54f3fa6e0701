"""The logit lens: each layer's residual stream read through the final norm and the unembedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..run import Run

CHUNK = 256  # positions unembedded at once, so a long text never holds [pos, vocab] for every layer


@dataclass(frozen=True)
class Lens:
    """``ids`` and ``probs`` are ``[layer, position, k]``: the top-``k`` tokens after each block."""

    ids: torch.Tensor
    probs: torch.Tensor
    positions: range


def logit_lens(run: Run, positions: range | None = None, k: int = 1) -> Lens:
    """Top-``k`` next tokens and probabilities read from every ``hook_resid_post`` of ``run``.

    The last layer's row is the model's own prediction. Needs ``blocks.*.hook_resid_post`` captured
    (the default capture) and a model with an unembedding; on the nnsight backend, a run without them is
    read again in one pass that brings back only the top tokens.
    """
    n = len(run.token_ids)
    positions = range(n) if positions is None else positions
    if positions.step != 1 or not (0 <= positions.start <= positions.stop <= n):
        raise ValueError(f"positions must be a contiguous range inside 0..{n}, got {positions}")
    captured = all(f"blocks.{layer}.hook_resid_post" in run for layer in range(run.model.n_layers))
    weightless = getattr(run.model, "weightless", False)  # no local weights: never read here
    if (not captured or weightless) and run.model.lens_in_pass:  # read where the model runs, the top tokens back
        ids, probs = run.model.lens_in_pass_of(run, positions, k)
        return Lens(ids.cpu(), probs.cpu(), positions)
    ids, probs = [], []
    for layer in range(run.model.n_layers):
        resid = run[f"blocks.{layer}.hook_resid_post"]
        layer_ids, layer_probs = [], []
        for start in range(positions.start, positions.stop, CHUNK):
            stop = min(start + CHUNK, positions.stop)
            top = run.model.logits_from_resid(resid[start:stop]).float().softmax(-1).topk(k)
            layer_ids.append(top.indices.cpu())
            layer_probs.append(top.values.cpu())
        ids.append(torch.cat(layer_ids) if layer_ids else torch.zeros(0, k, dtype=torch.long))
        probs.append(torch.cat(layer_probs) if layer_probs else torch.zeros(0, k))
    return Lens(torch.stack(ids), torch.stack(probs), positions)


def lens_kl(model, resids: list[torch.Tensor]) -> torch.Tensor:
    """``[layer, position]``: KL(final || lens) in nats, of each layer's logit-lens distribution (``resids[l]``,
    ``[pos, d_model]``, read through the model's head) from the last one's (the model's own prediction)."""
    out = torch.empty(len(resids), len(resids[-1]))
    for start in range(0, len(resids[-1]), CHUNK):
        stop = min(start + CHUNK, len(resids[-1]))
        final = model.logits_from_resid(resids[-1][start:stop]).float().log_softmax(-1)
        for layer, resid in enumerate(resids):
            lens = model.logits_from_resid(resid[start:stop]).float().log_softmax(-1)
            out[layer, start:stop] = (final.exp() * (final - lens)).sum(-1).cpu()
    return out
