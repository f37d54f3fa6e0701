"""Probes judged on other examples than they were trained on: a held-out split, an out-of-distribution set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .read import read_activations


def accuracy_by_layer(probes: Any, model: Any, texts: Sequence[Any], labels: Sequence[str]) -> list[float]:
    """The accuracy of each of ``probes`` (``rw.Probes``) on ``texts`` with class names ``labels``, read from
    ``model`` at the probes' site and position in one batched pass per batch of texts."""
    unknown = sorted(set(labels) - set(probes.classes))
    if unknown:
        raise ValueError(f"label {unknown[0]!r:.40} is not one of these probes' classes {probes.classes}")
    if not texts:
        raise ValueError("no examples to evaluate the probes on")
    acts = read_activations(model, texts, probes.layers, probes.site, probes.position)
    y = torch.tensor([probes.classes.index(label) for label in labels])
    predicted = [probes.logits(acts[:, i], layer).argmax(-1) for i, layer in enumerate(probes.layers)]
    return [(p == y).float().mean().item() for p in predicted]
