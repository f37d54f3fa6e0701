"""Probes: per-layer classifiers of a concept read from a model's activations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..hook_names import parse
from . import fit

SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out", "mlp.hook_post")
MIN_PER_CLASS = 4


def hook_for(site: str, layer: int) -> str:
    """``resid_post`` -> ``blocks.{layer}.hook_resid_post``; ``mlp.hook_post`` -> ``blocks.{layer}.mlp.hook_post``."""
    if site not in SITES:
        raise ValueError(f"site must be one of {', '.join(SITES)}, got {site!r}")
    return f"blocks.{layer}.{site}" if "." in site else f"blocks.{layer}.hook_{site}"


@dataclass
class Probes:
    """Probes of one concept, one per layer. ``accuracy[i]`` is the held-out accuracy at ``layers[i]``."""

    kind: str
    site: str
    position: int | str
    layers: list[int]
    classes: list[str]
    accuracy: list[float]
    baseline: float
    weights: dict[int, torch.Tensor] = field(repr=False)  # [d + 1, classes] on the (standardised) features
    means: dict[int, torch.Tensor] = field(repr=False)
    stds: dict[int, torch.Tensor] = field(repr=False)
    neurons: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)  # sparse probes: the columns used
    d_model: int = 0  #: width of the activations the probes read
    class_means: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)  # [classes, d], training split

    @property
    def best_layer(self) -> int:
        """The layer with the highest held-out accuracy (the earliest, on ties)."""
        return self.layers[max(range(len(self.layers)), key=lambda i: (self.accuracy[i], -i))]

    def _features(self, acts: torch.Tensor, layer: int) -> torch.Tensor:
        self._check_layer(layer)
        x = acts.float().cpu()
        if layer in self.neurons:
            x = x[..., self.neurons[layer]]
        return (x - self.means[layer]) / self.stds[layer]

    def _check_layer(self, layer: int) -> None:
        if layer not in self.weights:
            raise ValueError(f"no probe at layer {layer}; these probes cover layers {self.layers}")

    def logits(self, acts: torch.Tensor, layer: int) -> torch.Tensor:
        """``[..., classes]`` scores of activations ``[..., d]`` read at this probe's site."""
        x = self._features(acts, layer)
        w = self.weights[layer]
        return x @ w[:-1] + w[-1]

    def predict(self, acts: torch.Tensor, layer: int) -> list[str]:
        return [self.classes[i] for i in self.logits(acts, layer).argmax(-1).reshape(-1).tolist()]

    def direction(self, layer: int, cls: str | None = None) -> torch.Tensor:
        """``[d]``: the direction in activation space that raises class ``cls`` (default: the second class)
        against the others, unit norm. For two classes and ``mean_diff`` it is ``mean_1 - mean_0``."""
        self._check_layer(layer)
        c = self.classes.index(cls) if cls is not None else min(1, len(self.classes) - 1)
        w = self.weights[layer][:-1]
        others = [i for i in range(len(self.classes)) if i != c]
        v = (w[:, c] - w[:, others].mean(1)) / self.stds[layer]
        if layer in self.neurons:
            full = torch.zeros(self.d_model)
            full[self.neurons[layer]] = v
            v = full
        return v / v.norm().clamp_min(1e-12)

    def steering(self, layer: int, toward: str | None = None, strength: float = 2.0):
        """A ``rw.Steer`` along :meth:`direction` at ``layer``, ``strength`` times the distance between the
        training mean of class ``toward`` and the mean of the other classes along that direction."""
        from ..interventions import Steer

        if self.site != "resid_post":
            raise ValueError(f"steering adds to the residual stream after a block; these probes read {self.site}")
        direction = self.direction(layer, toward)
        c = self.classes.index(toward) if toward is not None else min(1, len(self.classes) - 1)
        means = self.class_means[layer]
        others = [i for i in range(len(self.classes)) if i != c]
        gap = float((means[c] - means[others].mean(0)) @ direction)
        return Steer(layer, direction.tolist(), scale=strength * gap)

    def projection(self, layer: int, toward: str | None = None):
        """A ``rw.Ablate`` that projects :meth:`direction` at ``layer`` out of the residual stream."""
        from ..interventions import Ablate

        if self.site != "resid_post":
            raise ValueError(f"projecting out edits the residual stream after a block; these probes read {self.site}")
        return Ablate(layer, direction=self.direction(layer, toward).tolist())

    def chart(self):
        """Held-out accuracy by layer, with the majority-class baseline (altair; see ``rw.charts.offline()``)."""
        from ..charts import probe_accuracy

        return probe_accuracy(self)

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """``probes.json`` + ``probes.safetensors`` in ``path`` (nothing pickled)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for layer in self.layers:
            tensors[f"{layer}.weights"] = self.weights[layer].contiguous()
            tensors[f"{layer}.mean"] = self.means[layer].contiguous()
            tensors[f"{layer}.std"] = self.stds[layer].contiguous()
            if layer in self.neurons:
                tensors[f"{layer}.neurons"] = self.neurons[layer].contiguous()
            if layer in self.class_means:
                tensors[f"{layer}.class_means"] = self.class_means[layer].contiguous()
        save_file(tensors, path / "probes.safetensors")
        meta = {
            "kind": self.kind,
            "site": self.site,
            "position": self.position,
            "layers": self.layers,
            "classes": self.classes,
            "accuracy": self.accuracy,
            "baseline": self.baseline,
            "d_model": self.d_model,
        }
        (path / "probes.json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Probes:
        from safetensors.torch import load_file

        path = Path(path)
        for name in ("probes.json", "probes.safetensors"):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path} has no {name}; save probes with probes.save(path)")
        meta = json.loads((path / "probes.json").read_text())
        tensors = load_file(path / "probes.safetensors")
        layers = meta["layers"]
        probes = cls(
            meta["kind"],
            meta["site"],
            meta["position"],
            layers,
            meta["classes"],
            meta["accuracy"],
            meta["baseline"],
            {layer: tensors[f"{layer}.weights"] for layer in layers},
            {layer: tensors[f"{layer}.mean"] for layer in layers},
            {layer: tensors[f"{layer}.std"] for layer in layers},
            {layer: tensors[f"{layer}.neurons"] for layer in layers if f"{layer}.neurons" in tensors},
            meta["d_model"],
            {layer: tensors[f"{layer}.class_means"] for layer in layers if f"{layer}.class_means" in tensors},
        )
        return probes


def _examples(examples: Sequence[Any], labels: Sequence[Any] | None) -> tuple[list[Any], list[str]]:
    if labels is not None:
        texts = list(examples)
        labels = list(labels)
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels; give one label per text")
        return texts, [str(label) for label in labels]
    texts, out = [], []
    for example in examples:
        if hasattr(example, "text") and hasattr(example, "target"):
            text, label = example.text, example.target
        else:
            try:
                text, label = example
            except (TypeError, ValueError):
                raise ValueError(f"examples must be (text, label) pairs or rw.demo.Example, got {example!r}") from None
        texts.append(text)
        out.append(str(label))
    return texts, out


def read_activations(
    model: Any, texts: Sequence[Any], layers: Sequence[int], site: str, position: int | str = -1
) -> torch.Tensor:
    """``[n, len(layers), d]`` activations at ``site`` of each layer, read at ``position`` (or ``"mean"``
    over the tokens after ``<bos>``), one pass per text with progress."""
    hooks = [hook_for(site, layer) for layer in layers]
    for hook in hooks:
        parse(hook, model.n_layers)
    rows = []
    for text in tqdm(texts, desc=f"reading {site}", leave=False):
        run = model.run(text, capture=hooks)
        if position == "mean":
            rows.append(
                torch.stack([run[h][1:].float().mean(0) if len(run[h]) > 1 else run[h][0].float() for h in hooks])
            )
        else:
            n = len(run.token_ids)
            if not -n <= position < n:
                raise ValueError(f"position {position} is outside a text of {n} tokens: {text!r:.80}")
            rows.append(torch.stack([run[h][position].float() for h in hooks]))
    return torch.stack(rows).cpu()


def train_probes(
    model: Any,
    examples: Sequence[Any],
    labels: Sequence[Any] | None = None,
    layers: str | Sequence[int] = "all",
    site: str = "resid_post",
    kind: str = "logistic",
    position: int | str = -1,
    k: int = 16,
    test_fraction: float = 0.25,
    seed: int = 0,
    l2: float = 1.0,
) -> Probes:
    """Train one probe per layer to read the labels of ``examples`` from the model's activations.

    ``examples``: ``(text, label)`` pairs or ``rw.demo.Example`` (for example ``rw.demo.dataset("sentiment")``),
    or texts with ``labels=``. The representation is read at ``site`` at the last token (``position``;
    ``"mean"`` averages the tokens after ``<bos>``). ``kind``: ``logistic`` (multinomial, standardised,
    L2 ``l2``), ``sparse`` (logistic on the ``k`` neurons that best separate the classes) or
    ``mean_diff`` (nearest class mean; for two classes, the difference of means is the direction).
    A seeded ``test_fraction`` of the examples is held out; ``accuracy`` is measured on it.
    """
    if kind not in fit.KINDS:
        raise ValueError(f"kind must be one of {', '.join(fit.KINDS)}, got {kind!r}")
    texts, names = _examples(examples, labels)
    classes = sorted(set(names))
    if len(classes) < 2:
        raise ValueError(f"all {len(names)} examples have the label {classes[0]!r}; a probe needs two classes or more")
    counts = {c: names.count(c) for c in classes}
    few = {c: n for c, n in counts.items() if n < MIN_PER_CLASS}
    if few:
        raise ValueError(
            f"too few examples of {few}; give at least {MIN_PER_CLASS} per class (more for a reliable probe)"
        )
    layers = list(range(model.n_layers)) if layers == "all" else [int(layer) for layer in layers]
    acts = read_activations(model, texts, layers, site, position)
    y = torch.tensor([classes.index(n) for n in names])
    return fit_probes(acts, y, classes, layers, kind=kind, site=site, position=position, k=k,
                      test_fraction=test_fraction, seed=seed, l2=l2)  # fmt: skip


def fit_probes(
    acts: torch.Tensor,
    y: torch.Tensor,
    classes: list[str],
    layers: list[int],
    kind: str = "logistic",
    site: str = "resid_post",
    position: int | str = -1,
    k: int = 16,
    test_fraction: float = 0.25,
    seed: int = 0,
    l2: float = 1.0,
) -> Probes:
    """Probes from cached activations ``[n, len(layers), d]`` and class indices ``y`` ``[n]``."""
    n = len(y)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(len(classes), round(n * test_fraction))
    test, train = order[:n_test], order[n_test:]
    majority = int(torch.bincount(y[train], minlength=len(classes)).argmax())
    baseline = (y[test] == majority).float().mean().item()
    weights, means, stds, neurons, accuracy, class_means = {}, {}, {}, {}, [], {}
    for i, layer in enumerate(layers):
        x = acts[:, i].float()
        class_means[layer] = torch.stack([x[train][y[train] == c].mean(0) for c in range(len(classes))])
        if kind == "sparse":
            neurons[layer] = fit.best_neurons(x[train], y[train], len(classes), k)
            x = x[:, neurons[layer]]
        if kind == "mean_diff":
            mean, std = torch.zeros(x.shape[1], dtype=x.dtype), torch.ones(x.shape[1], dtype=x.dtype)
            w = fit.mean_difference(x[train], y[train], len(classes))
        else:
            mean, std = fit.standardise(x[train])
            w = fit.logistic((x[train] - mean) / std, y[train], len(classes), l2=l2)
        predicted = (((x[test] - mean) / std) @ w[:-1] + w[-1]).argmax(-1)
        accuracy.append((predicted == y[test]).float().mean().item())
        weights[layer], means[layer], stds[layer] = w.float(), mean.float(), std.float()
    return Probes(
        kind, site, position, list(layers), classes, accuracy, baseline, weights, means, stds, neurons, acts.shape[-1],
        class_means,
    )  # fmt: skip
