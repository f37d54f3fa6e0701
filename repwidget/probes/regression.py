"""Regression probes: per-layer ridge regressions of a continuous target (a year, a rating, a latitude) read
from a model's activations, judged by held-out R^2 against a shuffled-target control."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..datasets.dataset import Dataset, normalise_labels
from . import fit
from .probes import _split
from .read import read_activations


@dataclass
class RegressionProbes:
    """Ridge probes of one continuous target, one per layer. ``r2[i]`` is the held-out R^2 at ``layers[i]``;
    ``control[i]`` that of the same probe trained on shuffled targets."""

    site: str
    position: int | str
    layers: list[int]
    r2: list[float]
    train_r2: list[float]
    control: list[float]
    weights: dict[int, torch.Tensor] = field(repr=False)  # [d + 1] on the standardised activations, bias last
    means: dict[int, torch.Tensor] = field(repr=False)
    stds: dict[int, torch.Tensor] = field(repr=False)
    l2: float = 1.0
    grouped: bool = False

    @property
    def selectivity(self) -> list[float]:
        """Held-out R^2 minus the control task's, by layer (one definition with ``Probes.selectivity``)."""
        return [a - c for a, c in zip(self.r2, self.control, strict=True)]

    @property
    def best_layer(self) -> int:
        """The layer with the highest held-out R^2."""
        return self.layers[max(range(len(self.layers)), key=self.r2.__getitem__)]

    def predict(self, acts: torch.Tensor, layer: int) -> torch.Tensor:
        """``[...]`` predicted targets of activations ``[..., d]`` read at this probe's site."""
        if layer not in self.weights:
            raise ValueError(f"no probe at layer {layer}; these probes cover layers {self.layers}")
        w = self.weights[layer]
        return ((acts.float().cpu() - self.means[layer]) / self.stds[layer]) @ w[:-1] + w[-1]

    def evaluate(self, model: Any, examples: Any, labels: Sequence[Any] | None = None) -> list[float]:
        """R^2 by layer on other examples (a ``rw.datasets.Dataset``, pairs, or texts with ``labels=``)."""
        texts, y = _targets(examples, labels)
        acts = read_activations(model, texts, self.layers, self.site, self.position)
        return [fit.r_squared(self.predict(acts[:, i], layer), y) for i, layer in enumerate(self.layers)]


def _targets(examples: Any, labels: Sequence[Any] | None) -> tuple[list[Any], torch.Tensor]:
    if isinstance(examples, Dataset):
        if examples.kind != "continuous":
            raise ValueError(f"{examples.name} is a {examples.kind} task; train classifiers on it with rw.train_probes")
        texts, values = examples.texts, examples.labels
    elif labels is not None:
        texts, values = list(examples), normalise_labels(labels, "continuous", "labels")
    else:
        pairs = list(examples)
        texts, values = [p[0] for p in pairs], normalise_labels([p[1] for p in pairs], "continuous", "pairs")
    if len(texts) != len(values):
        raise ValueError(f"{len(texts)} texts but {len(values)} targets; give one target per text")
    return texts, torch.tensor(values, dtype=torch.float64)


def train_regression(
    model: Any,
    examples: Any,
    labels: Sequence[Any] | None = None,
    layers: str | Sequence[int] = "all",
    site: str = "resid_post",
    position: int | str = -1,
    l2: float = 1.0,
    test_fraction: float = 0.25,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> RegressionProbes:
    """One ridge probe per layer predicting a number from the model's activations at ``site`` (``position``
    as in ``rw.train_probes``), fitted in closed form on standardised activations with penalty ``l2``.

    ``examples``: a continuous ``rw.datasets.Dataset`` (its groups held out whole), ``(text, number)`` pairs,
    or texts with ``labels=``. A seeded ``test_fraction`` (or whole ``groups``) is held out for ``r2``.
    """
    texts, y = _targets(examples, labels)
    if groups is None and isinstance(examples, Dataset):
        groups = examples.groups
    layers = list(range(model.n_layers)) if layers == "all" else [int(layer) for layer in layers]
    acts = read_activations(model, texts, layers, site, position)
    return fit_regression(acts, y, layers, site, position, l2, test_fraction, seed, groups)


def fit_regression(
    acts: torch.Tensor,
    y: torch.Tensor,
    layers: list[int],
    site: str = "resid_post",
    position: int | str = -1,
    l2: float = 1.0,
    test_fraction: float = 0.25,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> RegressionProbes:
    """:func:`train_regression` on cached activations ``[n, len(layers), d]`` and targets ``y`` ``[n]``."""
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or l2 < 0:
        raise ValueError(f"l2 must be a number >= 0, got {l2!r:.40}")
    y = y.double()
    test, train = _split(torch.zeros(len(y), dtype=torch.long), 1, test_fraction, seed, groups)
    if len(train) < 2 or len(test) < 2:
        raise ValueError(f"{len(y)} examples leave too few to train and test on; give more")
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + 1))]
    weights, means, stds, r2, train_r2, control = {}, {}, {}, [], [], []
    for i, layer in enumerate(layers):
        x = acts[:, i].double()
        means[layer], stds[layer] = (v.float() for v in fit.standardise(x[train]))
        z = (x - means[layer].double()) / stds[layer].double()
        w = fit.ridge(z[train], y[train], l2)
        weights[layer] = w.float()
        r2.append(fit.r_squared(z[test] @ w[:-1] + w[-1], y[test]))
        train_r2.append(fit.r_squared(z[train] @ w[:-1] + w[-1], y[train]))
        wc = fit.ridge(z[train], shuffled[train], l2)
        control.append(fit.r_squared(z[test] @ wc[:-1] + wc[-1], shuffled[test]))
    return RegressionProbes(site, position, list(layers), r2, train_r2, control, weights, means, stds, float(l2),
                            groups is not None)  # fmt: skip
