"""Held-out splits: a seeded fraction of the examples, or of whole groups (no group on both sides)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def held_out(
    n: int, fraction: float, seed: int, groups: Sequence[Any] | None = None, least: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(test, train)`` indices of ``n`` examples: a seeded ``fraction`` of them (at least ``least``), or with
    ``groups`` (one hashable per example) whole groups, drawn in a seeded order until the held-out part
    reaches ``fraction`` of the examples, so that no group is on both sides."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be a number between 0 and 1 (exclusive), got {fraction!r:.40}")
    generator = torch.Generator().manual_seed(seed)
    if groups is None:
        order = torch.randperm(n, generator=generator)
        n_test = max(least, round(n * fraction))
        return order[:n_test], order[n_test:]
    groups = list(groups)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} examples; give one group per example")
    names = list(dict.fromkeys(groups))
    if len(names) < 2:
        raise ValueError(f"the examples form {len(names)} group; holding groups out needs two or more")
    sizes: dict[Any, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    held: set[Any] = set()
    count = 0
    for g in torch.randperm(len(names), generator=generator).tolist():
        if count >= n * fraction:
            break
        held.add(names[g])
        count += sizes[names[g]]
    test = torch.tensor([i for i in range(n) if groups[i] in held], dtype=torch.long)
    train = torch.tensor([i for i in range(n) if groups[i] not in held], dtype=torch.long)
    if len(train) == 0:
        raise ValueError(f"holding out whole groups left no training example; lower the held-out fraction ({fraction})")
    return test, train
