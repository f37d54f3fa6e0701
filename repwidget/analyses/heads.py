"""Attention head scores from a run's patterns: previous-token, induction, duplicate-token, first-token."""

from __future__ import annotations

import torch

from ..run import Run

SCORES = ("previous_token", "induction", "duplicate_token", "first_token")


def _patterns(run: Run) -> torch.Tensor:
    """``[layer, head, query, key]`` from every captured ``attn.hook_pattern`` (all layers needed)."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(run.model.n_layers)]
    return torch.stack([run[name].float() for name in names])


def head_scores(run: Run) -> dict[str, torch.Tensor]:
    """Each score as a ``[layer, head]`` tensor in [0, 1].

    - ``previous_token``: mean attention from position q to q-1.
    - ``induction``: for tokens seen before, attention to the token right after an earlier
      occurrence (the ``A B ... A -> B`` move); mean over such queries.
    - ``duplicate_token``: for tokens seen before, attention to their earlier occurrences.
    - ``first_token``: mean attention to position 0 (the "attention sink").

    A score with no query to average over (no repeated token) is 0.
    """
    p = _patterns(run)  # [L, H, Q, K]
    n = p.shape[-1]
    ids = torch.tensor(run.token_ids)
    same = (ids[:, None] == ids[None, :]) & torch.ones(n, n, dtype=torch.bool).tril(-1)  # [q, k]: k<q, same token
    after = torch.zeros(n, n, dtype=torch.bool)
    after[:, 1:] = same[:, :-1]  # [q, k]: the token before k equals q's token (k-1 is an earlier occurrence)
    after &= torch.ones(n, n, dtype=torch.bool).tril(-1)  # k < q (causal); k = q would be trivially itself

    def masked_mean(mask: torch.Tensor) -> torch.Tensor:
        queries = mask.any(-1)
        if not queries.any():
            return torch.zeros(p.shape[:2])
        return (p * mask).sum(-1)[..., queries].mean(-1)

    prev = torch.diagonal(p, offset=-1, dim1=-2, dim2=-1).mean(-1) if n > 1 else torch.zeros(p.shape[:2])
    return {
        "previous_token": prev,
        "induction": masked_mean(after),
        "duplicate_token": masked_mean(same),
        "first_token": p[..., 0].mean(-1),
    }
