"""Probes: per-layer classifiers of a concept read from a model's activations."""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from ..datasets.dataset import Dataset
from ..datasets.split import held_out
from . import fit
from .files import read_fields
from .read import read_activations

MIN_PER_CLASS = 4


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
    #: held-out accuracy of the same probes trained on shuffled labels (the control task), by layer
    control: list[float] = field(default_factory=list)
    #: best_layer is the first layer within this much accuracy of the best
    tolerance: float = 0.01
    #: whether the held-out examples share no group (``groups=``) with the training ones
    grouped: bool = False

    @property
    def best_layer(self) -> int:
        """The first layer whose held-out accuracy is within :attr:`tolerance` of the best (where the concept
        becomes readable, not the last of a saturated tie)."""
        least = max(self.accuracy) - self.tolerance
        return next(layer for layer, acc in zip(self.layers, self.accuracy, strict=True) if acc >= least)

    @property
    def selectivity(self) -> list[float]:
        """Accuracy minus the control task's, by layer (how much the probe reads beyond what it can memorise)."""
        if not self.control:
            raise ValueError("these probes were trained without a control task (control=False)")
        return [a - c for a, c in zip(self.accuracy, self.control, strict=True)]

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
        name = f"toward {self.classes[c]}, strength {strength:g} (class gaps)"
        return Steer(layer, direction.tolist(), scale=strength * gap, name=name)

    def projection(self, layer: int, toward: str | None = None):
        """A ``rw.Ablate`` that projects :meth:`direction` at ``layer`` out of the residual stream."""
        from ..interventions import Ablate

        if self.site != "resid_post":
            raise ValueError(f"projecting out edits the residual stream after a block; these probes read {self.site}")
        return Ablate(layer, direction=self.direction(layer, toward).tolist())

    def evaluate(self, model: Any, examples: Any, labels: Sequence[Any] | None = None) -> list[float]:
        """Accuracy by layer on other examples (a held-out or OOD ``rw.datasets.Dataset``, pairs, or texts with
        ``labels=``), read from ``model`` at these probes' site and position in batched passes."""
        from .evaluate import accuracy_by_layer

        return accuracy_by_layer(self, model, *_examples(examples, labels))

    def chart(self):
        """Held-out accuracy by layer, with the majority-class baseline (altair; see ``rw.charts.offline()``)."""
        from ..views.charts import probe_accuracy

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
            "control": self.control,
            "tolerance": self.tolerance,
            "grouped": self.grouped,
        }
        (path / "probes.json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Probes:
        """Probes saved with :meth:`save`. ``probes.json`` is checked field by field and the tensors must be
        finite, of the shapes its ``d_model``, ``classes`` and ``kind`` imply; anything else is a one-line
        error naming the file and the field. Nothing is unpickled."""
        path = Path(path)
        for name in ("probes.json", "probes.safetensors"):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path} has no {name}; save probes with probes.save(path)")
        return cls(**read_fields(path))


def _examples(examples: Sequence[Any], labels: Sequence[Any] | None) -> tuple[list[Any], list[str]]:
    if isinstance(examples, Dataset):
        if examples.kind == "continuous":
            raise ValueError(f"{examples.name} has a continuous target; train regression probes on it with "
                             "rw.probes.train_regression(model, dataset)")  # fmt: skip
        examples, labels = examples.texts, examples.labels
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


@dataclass(frozen=True)
class ProbeConfig:
    """How probes are trained: the options of :func:`train_probes` and :func:`fit_probes` (given to either as
    keywords, or as ``config=``, which keywords override).

    ``kind``: ``logistic`` (multinomial, standardised, L2 ``l2``), ``sparse`` (logistic on the ``k`` neurons
    that best separate the classes) or ``mean_diff`` (nearest class mean; for two classes, the difference of
    means is the direction). The representation is read at ``site`` at ``position`` (default the last token;
    ``"mean"`` averages the tokens after ``<bos>``). A seeded (``seed``) ``test_fraction`` of the examples is
    held out, or with ``groups`` (one hashable per example, e.g. its noun or template) whole groups are.
    ``control`` also trains each probe on shuffled labels. ``best_layer`` is the first layer within
    ``tolerance`` of the best accuracy."""

    kind: str = "logistic"
    site: str = "resid_post"
    position: int | str = -1
    k: int = 16
    test_fraction: float = 0.25
    seed: int = 0
    l2: float = 1.0
    groups: Sequence[Any] | None = None
    control: bool = True
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in fit.KINDS:
            raise ValueError(f"kind must be one of {', '.join(fit.KINDS)}, got {self.kind!r}")
        tolerance = self.tolerance
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 1:
            raise ValueError(f"tolerance must be a number in 0..1, got {tolerance!r:.40}")

    @classmethod
    def of(cls, config: ProbeConfig | None, options: dict[str, Any], caller: str) -> ProbeConfig:
        """``config`` (or the defaults) with ``options`` in place of its fields; an unknown option is a
        ``TypeError`` naming ``caller``, as for any function."""
        if config is not None and not isinstance(config, cls):
            raise TypeError(f"{caller}(): config must be a ProbeConfig, got {type(config).__name__}")
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
        return replace(config, **options) if config is not None else cls(**options)


def _with_options(function):
    """Show :class:`ProbeConfig`'s fields as keyword parameters of ``function`` (in ``help()`` and tooltips)."""
    signature = inspect.signature(function)
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [inspect.Parameter(f.name, keyword, default=f.default) for f in fields(ProbeConfig)]
    function.__signature__ = signature.replace(parameters=params)
    return function


@_with_options
def train_probes(
    model: Any,
    examples: Sequence[Any],
    labels: Sequence[Any] | None = None,
    layers: str | Sequence[int] = "all",
    config: ProbeConfig | None = None,
    **options: Any,
) -> Probes:
    """Train one probe per layer to read the labels of ``examples`` from the model's activations.

    ``examples``: ``(text, label)`` pairs, ``rw.demo.Example`` (for example ``rw.demo.dataset("sentiment")``),
    a ``rw.datasets.Dataset`` (its groups held out whole, if it has any), or texts with ``labels=``. The
    options (``kind``, ``site``, ``position``, ``k``, ``test_fraction``, ``seed``, ``l2``, ``groups``,
    ``control``, ``tolerance``) are :class:`ProbeConfig`'s: a ``logistic`` probe by default, read at
    ``site="resid_post"`` of the last token, ``accuracy`` measured on a held-out quarter of the examples.
    ``probes.evaluate(model, other)`` measures them on other examples (a test split, an OOD set).

    Probes flatter when the held-out texts share words with the training ones: give ``groups=`` (one
    hashable per example, e.g. its noun or template) to hold out whole groups instead. ``control``
    also trains each probe on shuffled labels and reports its accuracy (``probes.control``;
    ``probes.selectivity`` is the difference). ``best_layer`` is the first layer within
    ``tolerance`` of the best accuracy.
    """
    config = ProbeConfig.of(config, options, "train_probes")
    if isinstance(examples, Dataset) and examples.groups is not None and config.groups is None:
        config = replace(config, groups=examples.groups)
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
    acts = read_activations(model, texts, layers, config.site, config.position)
    y = torch.tensor([classes.index(n) for n in names])
    return fit_probes(acts, y, classes, layers, config)


@_with_options
def fit_probes(
    acts: torch.Tensor,
    y: torch.Tensor,
    classes: list[str],
    layers: list[int],
    config: ProbeConfig | None = None,
    **options: Any,
) -> Probes:
    """Probes from cached activations ``[n, len(layers), d]`` and class indices ``y`` ``[n]`` (the options as
    in :func:`train_probes`: :class:`ProbeConfig`'s)."""
    c = ProbeConfig.of(config, options, "fit_probes")
    n = len(y)
    test, train = _split(y, len(classes), c.test_fraction, c.seed, c.groups)
    shuffled = y[torch.randperm(n, generator=torch.Generator().manual_seed(c.seed + 1))] if c.control else None
    majority = int(torch.bincount(y[train], minlength=len(classes)).argmax())
    baseline = (y[test] == majority).float().mean().item()
    weights, means, stds, neurons, accuracy, class_means, controls = {}, {}, {}, {}, [], {}, []
    for i, layer in enumerate(layers):
        x = acts[:, i].float()
        x_train = x[train]  # gathered once per layer: the class means, the probe and its control read it
        class_means[layer] = fit.class_means(x_train, y[train], len(classes))
        probe = _fit(x_train, y[train], len(classes), c.kind, c.k, c.l2)
        accuracy.append(_accuracy(x, y, test, *probe))
        w, mean, std, columns = probe
        weights[layer], means[layer], stds[layer] = w.float(), mean.float(), std.float()
        if columns is not None:
            neurons[layer] = columns
        if shuffled is not None:
            control = _fit(x_train, shuffled[train], len(classes), c.kind, c.k, c.l2)
            controls.append(_accuracy(x, shuffled, test, *control))
    return Probes(
        c.kind, c.site, c.position, list(layers), classes, accuracy, baseline, weights, means, stds, neurons,
        acts.shape[-1], class_means, controls, float(c.tolerance), c.groups is not None,
    )  # fmt: skip


Fitted = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]  # weights, mean, std, columns


def _fit(x: torch.Tensor, y: torch.Tensor, n_classes: int, kind: str, k: int, l2: float) -> Fitted:
    """One probe of ``kind`` on the training rows ``x``, ``y``: weights on the standardised (chosen) columns."""
    columns = fit.best_neurons(x, y, n_classes, k) if kind == "sparse" else None
    if columns is not None:
        x = x[:, columns]
    if kind == "mean_diff":
        mean, std = torch.zeros(x.shape[1], dtype=x.dtype), torch.ones(x.shape[1], dtype=x.dtype)
        return fit.mean_difference(x, y, n_classes), mean, std, columns
    mean, std = fit.standardise(x)
    return fit.logistic(x, y, n_classes, l2=l2, mean=mean, std=std), mean, std, columns


def _accuracy(x: torch.Tensor, y: torch.Tensor, test: torch.Tensor, w, mean, std, columns) -> float:
    """Accuracy on the ``test`` rows of a probe from :func:`_fit`."""
    if columns is not None:
        x = x[:, columns]
    u = w[:-1] / std[:, None]  # the standardisation folded into the weights
    predicted = (x[test] @ u + (w[-1] - mean @ u)).argmax(-1)
    return (predicted == y[test]).float().mean().item()


def _split(
    y: torch.Tensor, n_classes: int, test_fraction: float, seed: int, groups: Sequence[Any] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out and training indices (:func:`repwidget.datasets.held_out`), with every class left to train on."""
    test, train = held_out(len(y), test_fraction, seed, groups, least=n_classes)
    missing = sorted(set(range(n_classes)) - set(y[train].tolist()))
    if missing:
        raise ValueError(f"held-out groups take every example of class index {missing[0]}; give more groups per class")
    return test, train
