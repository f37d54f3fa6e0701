"""Sparse probing: how well the best k neurons (or SAE features) alone read a concept (two classes or more), against
the dense probe on all of them -- the comparison of "Are Sparse Autoencoders Useful?" (Kantamneni et al. 2025) as one
call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..datasets.dataset import Dataset
from ..datasets.split import held_out
from . import fit
from .read import read_at_hooks

KS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
OVER = ("neurons", "sae")


@dataclass
class SparseProbing:
    """Held-out accuracy of a logistic probe on the top ``k`` units, for each of ``ks``, and of the dense
    probe on all ``n_units``. ``ranking`` holds every unit, best first (see :func:`sparse_probing`)."""

    over: str
    hook: str
    classes: list[str]
    ks: list[int]
    accuracy: list[float]
    dense: float
    n_units: int
    baseline: float
    ranking: torch.Tensor = field(repr=False)

    def units(self, k: int) -> list[int]:
        """The ``k`` units the sparse probe of size ``k`` reads (neuron or feature indices)."""
        return self.ranking[:k].tolist()

    def chart(self):
        """Accuracy against k, with the dense probe and the majority baseline (altair; ``rw.charts.offline()``)."""
        from ..views.charts import sparse_probing

        return sparse_probing(self)


def sparse_curve(
    x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor, ks: Sequence[int], l2: float = 1.0
) -> tuple[list[float], float, torch.Tensor]:
    """On features ``x`` ``[n, units]`` with class indices ``y``: the held-out accuracy of a logistic probe
    (standardised, L2 ``l2``; multinomial for more than two classes) on the top-k units by
    :func:`fit.one_vs_rest_ranking` of the training rows, for each k; the dense probe's accuracy; the ranking."""
    n_classes = max(2, int(y.max()) + 1)
    ranking = fit.one_vs_rest_ranking(x[train], y[train], n_classes)

    def accuracy(columns: torch.Tensor) -> float:
        part = x[:, columns].float()
        mean, std = fit.standardise(part[train])
        w = fit.logistic(part[train], y[train], n_classes, l2=l2, mean=mean, std=std)
        predicted = (((part[test] - mean) / std) @ w[:-1] + w[-1]).argmax(-1)
        return (predicted == y[test]).float().mean().item()

    return [accuracy(ranking[:k]) for k in ks], accuracy(torch.arange(x.shape[1])), ranking


def sparse_probing(
    model: Any,
    dataset: Dataset | Sequence[tuple[str, Any]],
    layer: int | None = None,
    ks: Sequence[int] = KS,
    over: str = "neurons",
    sae: Any = None,
    position: int | str = -1,
    test: float = 0.2,
    seed: int = 0,
    l2: float = 1.0,
) -> SparseProbing:
    """Probes on the best ``k`` units of a classification task, for each k of ``ks``, against the dense probe.

    ``over="neurons"``: the MLP neurons of ``layer`` (``blocks.{layer}.mlp.hook_post``); ``over="sae"``: the
    features of ``sae`` (an ``rw.SAE``) at its own hook. Units are ranked on the training split by the absolute
    difference between their mean activation on the two classes (the ranking of Gurnee et al. 2023 and of
    Kantamneni et al. 2025); with more than two classes, by the largest such one-vs-rest gap over the classes, and
    each probe is one multinomial (softmax) probe over every class, not one per class. Each probe is the
    standardised L2 logistic regression of ``rw.train_probes`` (scikit-learn's objective at ``C = 1 / l2``). The
    activations are read once at ``position`` (last token by default, or ``"mean"``), and a seeded ``test``
    fraction of ``dataset`` (whole groups, if it has any) is held out.
    """
    if over not in OVER:
        raise ValueError(f"over must be one of {', '.join(OVER)}, got {over!r:.40}")
    data = dataset if isinstance(dataset, Dataset) else None
    if data is None:
        from ..datasets import from_pairs

        data = from_pairs(dataset, name="pairs")
    if data.kind == "continuous" or len(data.classes) < 2:
        raise ValueError(
            f"sparse probing reads a task of two classes or more; {data.name} has classes {data.classes[:5]} "
            "(a continuous target: rw.probes.train_regression)"
        )
    if over == "sae":
        if sae is None:
            raise ValueError('over="sae" needs sae= (an rw.SAE, e.g. rw.demo.demo_sae())')
        sae.check_fits(model)
        hook = sae.require_hook()
        if layer is not None and layer != sae.layer:
            raise ValueError(f"the SAE reads {hook}; leave layer out or give {sae.layer}")
    else:
        if layer is None:
            raise ValueError(f"give the layer whose neurons to rank: 0..{model.n_layers - 1}")
        hook = f"blocks.{layer}.mlp.hook_post"
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive numbers of units, got {ks}")
    acts = read_at_hooks(model, data.texts, [hook], position)[hook]
    if over == "sae":
        with torch.no_grad():
            acts = sae.encode(acts.to(sae.W_enc.dtype)).float().cpu()
    ks = [k for k in ks if k < acts.shape[1]] or [acts.shape[1]]
    y = torch.tensor([data.classes.index(label) for label in data.labels])
    test_rows, train_rows = held_out(len(data), test, seed, data.groups, least=len(data.classes))
    accuracy, dense, ranking = sparse_curve(acts, y, train_rows, test_rows, ks, l2)
    majority = int(torch.bincount(y[train_rows], minlength=len(data.classes)).argmax())
    baseline = (y[test_rows] == majority).float().mean().item()
    return SparseProbing(over, hook, data.classes, ks, accuracy, dense, acts.shape[1], baseline, ranking)
