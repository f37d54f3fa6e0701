"""Probes: per-layer classifiers of a concept read from a model's activations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..file_checks import FileFormatError, json_field, read_json, read_tensors, tensor_field
from ..hook_names import SITES, hook_for, parse
from ..texts import preview, token_ids
from . import fit

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
        return cls(**_read(path))


def _read(path: Path) -> dict[str, Any]:
    """The :class:`Probes` fields from a directory written by :meth:`Probes.save`, every field checked."""
    where = path / "probes.json"
    meta = read_json(where)
    kind = json_field(meta, "kind", "str", where)
    if kind not in fit.KINDS:
        raise FileFormatError(f"{where}: kind must be one of {', '.join(fit.KINDS)}, got {kind!r}")
    site = json_field(meta, "site", "str", where)
    if site not in SITES:
        raise FileFormatError(f"{where}: site must be one of {', '.join(SITES)}, got {site!r}")
    position = meta.get("position", -1)
    if position != "mean" and not (isinstance(position, int) and not isinstance(position, bool)):
        raise FileFormatError(f'{where}: position must be an integer or "mean", got {json.dumps(position)[:60]}')
    layers = json_field(meta, "layers", "list", where)
    if not layers or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in layers):
        raise FileFormatError(f"{where}: layers must be a non-empty list of layer numbers, got {layers!r:.60}")
    if len(set(layers)) != len(layers):
        raise FileFormatError(f"{where}: layers lists a layer twice: {layers}")
    classes = json_field(meta, "classes", "list", where)
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise FileFormatError(f"{where}: classes must be two or more distinct strings, got {classes!r:.60}")
    accuracy = json_field(meta, "accuracy", "list", where)
    if len(accuracy) != len(layers):
        raise FileFormatError(f"{where}: accuracy has {len(accuracy)} values for {len(layers)} layers")
    for i, value in enumerate(accuracy):
        json_field({f"accuracy[{i}]": value}, f"accuracy[{i}]", "fraction", where)
    d_model = json_field(meta, "d_model", "+int", where)
    control = meta.get("control", [])
    if not isinstance(control, list) or len(control) not in (0, len(layers)):
        raise FileFormatError(f"{where}: control must be a list of {len(layers)} accuracies, got {control!r:.60}")
    for i, value in enumerate(control):
        json_field({f"control[{i}]": value}, f"control[{i}]", "fraction", where)
    tolerance = meta.get("tolerance", 0.01)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 1:
        raise FileFormatError(f"{where}: tolerance must be a number in 0..1, got {tolerance!r:.60}")
    grouped = meta.get("grouped", False)
    if not isinstance(grouped, bool):
        raise FileFormatError(f"{where}: grouped must be true or false, got {grouped!r:.60}")

    file = path / "probes.safetensors"
    tensors = read_tensors(file)
    n_classes = len(classes)
    weights, means, stds, neurons, class_means = {}, {}, {}, {}, {}
    for layer in layers:
        width = d_model
        if kind == "sparse":
            neurons[layer] = tensor_field(tensors, f"{layer}.neurons", file, (None,), integer=True).long()
            width = len(neurons[layer])
            if width == 0 or not bool(((neurons[layer] >= 0) & (neurons[layer] < d_model)).all()):
                raise FileFormatError(f"{file}: tensor {layer}.neurons must hold neuron indices in 0..{d_model - 1}")
        weights[layer] = tensor_field(tensors, f"{layer}.weights", file, (width + 1, n_classes))
        means[layer] = tensor_field(tensors, f"{layer}.mean", file, (width,))
        stds[layer] = tensor_field(tensors, f"{layer}.std", file, (width,))
        if not bool((stds[layer] > 0).all()):
            raise FileFormatError(f"{file}: tensor {layer}.std must be positive (it divides the activations)")
        if f"{layer}.class_means" in tensors:
            class_means[layer] = tensor_field(tensors, f"{layer}.class_means", file, (n_classes, d_model))
    return {
        "kind": kind,
        "site": site,
        "position": position,
        "layers": layers,
        "classes": classes,
        "accuracy": accuracy,
        "baseline": json_field(meta, "baseline", "fraction", where),
        "weights": weights,
        "means": means,
        "stds": stds,
        "neurons": neurons,
        "d_model": d_model,
        "class_means": class_means,
        "control": control,
        "tolerance": float(tolerance),
        "grouped": grouped,
    }


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
    over the tokens after ``<bos>``), in padded batches with progress. Every text is tokenised and
    checked (and ``position`` checked against it) before the first pass."""
    hooks = [hook_for(site, layer) for layer in layers]
    for hook in hooks:
        parse(hook, model.n_layers)
    texts = list(texts) if not isinstance(texts, (str, bytes)) else texts
    ids = token_ids(model, texts)
    if position != "mean":
        if isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f'position must be a token index (int) or "mean", got {position!r}')
        for index, text_ids in enumerate(ids):
            if not -len(text_ids) <= position < len(text_ids):
                raise ValueError(
                    f"text {index} ({preview(texts[index])}): position {position} is outside its {len(text_ids)} tokens"
                )
    rows: list[torch.Tensor | None] = [None] * len(ids)
    for index, cache in model.iter_capture(ids, hooks):  # padded batches, each pass ending at the last hook
        if position == "mean":
            rows[index] = torch.stack(
                [cache[h][1:].float().mean(0) if len(cache[h]) > 1 else cache[h][0].float() for h in hooks]
            )
        else:
            rows[index] = torch.stack([cache[h][position].float() for h in hooks])
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
    groups: Sequence[Any] | None = None,
    control: bool = True,
    tolerance: float = 0.01,
) -> Probes:
    """Train one probe per layer to read the labels of ``examples`` from the model's activations.

    ``examples``: ``(text, label)`` pairs or ``rw.demo.Example`` (for example ``rw.demo.dataset("sentiment")``),
    or texts with ``labels=``. The representation is read at ``site`` at the last token (``position``;
    ``"mean"`` averages the tokens after ``<bos>``). ``kind``: ``logistic`` (multinomial, standardised,
    L2 ``l2``), ``sparse`` (logistic on the ``k`` neurons that best separate the classes) or
    ``mean_diff`` (nearest class mean; for two classes, the difference of means is the direction).
    A seeded ``test_fraction`` of the examples is held out; ``accuracy`` is measured on it.

    Probes flatter when the held-out texts share words with the training ones: give ``groups=`` (one
    hashable per example, e.g. its noun or template) to hold out whole groups instead. ``control``
    also trains each probe on shuffled labels and reports its accuracy (``probes.control``;
    ``probes.selectivity`` is the difference). ``best_layer`` is the first layer within
    ``tolerance`` of the best accuracy.
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
                      test_fraction=test_fraction, seed=seed, l2=l2, groups=groups, control=control,
                      tolerance=tolerance)  # fmt: skip


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
    groups: Sequence[Any] | None = None,
    control: bool = True,
    tolerance: float = 0.01,
) -> Probes:
    """Probes from cached activations ``[n, len(layers), d]`` and class indices ``y`` ``[n]`` (the other
    arguments as in :func:`train_probes`)."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 1:
        raise ValueError(f"tolerance must be a number in 0..1, got {tolerance!r:.40}")
    n = len(y)
    test, train = _split(y, len(classes), test_fraction, seed, groups)
    shuffled = y[torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))] if control else None
    majority = int(torch.bincount(y[train], minlength=len(classes)).argmax())
    baseline = (y[test] == majority).float().mean().item()
    weights, means, stds, neurons, accuracy, class_means, controls = {}, {}, {}, {}, [], {}, []
    for i, layer in enumerate(layers):
        x = acts[:, i].float()
        class_means[layer] = torch.stack([x[train][y[train] == c].mean(0) for c in range(len(classes))])
        probe = _fit(x, y, train, len(classes), kind, k, l2)
        accuracy.append(_accuracy(x, y, test, *probe))
        w, mean, std, columns = probe
        weights[layer], means[layer], stds[layer] = w.float(), mean.float(), std.float()
        if columns is not None:
            neurons[layer] = columns
        if shuffled is not None:
            controls.append(_accuracy(x, shuffled, test, *_fit(x, shuffled, train, len(classes), kind, k, l2)))
    return Probes(
        kind, site, position, list(layers), classes, accuracy, baseline, weights, means, stds, neurons, acts.shape[-1],
        class_means, controls, float(tolerance), groups is not None,
    )  # fmt: skip


Fitted = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]  # weights, mean, std, columns


def _fit(x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, n_classes: int, kind: str, k: int, l2: float) -> Fitted:
    """One probe of ``kind`` on the ``train`` rows of ``x``: weights on the standardised (chosen) columns."""
    columns = fit.best_neurons(x[train], y[train], n_classes, k) if kind == "sparse" else None
    if columns is not None:
        x = x[:, columns]
    if kind == "mean_diff":
        mean, std = torch.zeros(x.shape[1], dtype=x.dtype), torch.ones(x.shape[1], dtype=x.dtype)
        return fit.mean_difference(x[train], y[train], n_classes), mean, std, columns
    mean, std = fit.standardise(x[train])
    return fit.logistic((x[train] - mean) / std, y[train], n_classes, l2=l2), mean, std, columns


def _accuracy(x: torch.Tensor, y: torch.Tensor, test: torch.Tensor, w, mean, std, columns) -> float:
    """Accuracy on the ``test`` rows of a probe from :func:`_fit`."""
    if columns is not None:
        x = x[:, columns]
    predicted = (((x[test] - mean) / std) @ w[:-1] + w[-1]).argmax(-1)
    return (predicted == y[test]).float().mean().item()


def _split(
    y: torch.Tensor, n_classes: int, test_fraction: float, seed: int, groups: Sequence[Any] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out and training indices: a seeded ``test_fraction`` of the examples, or (``groups``) of whole
    groups, shuffled, until the held-out part reaches ``test_fraction`` of the examples."""
    n = len(y)
    generator = torch.Generator().manual_seed(seed)
    if groups is None:
        order = torch.randperm(n, generator=generator)
        n_test = max(n_classes, round(n * test_fraction))
        return order[:n_test], order[n_test:]
    groups = list(groups)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} examples; give one group per example")
    names = list(dict.fromkeys(groups))
    if len(names) < 2:
        raise ValueError(f"groups= holds {len(names)} group; holding groups out needs two or more")
    held: set[Any] = set()
    count = 0
    for g in torch.randperm(len(names), generator=generator).tolist():
        if count >= n * test_fraction:
            break
        held.add(names[g])
        count += groups.count(names[g])
    test = torch.tensor([i for i in range(n) if groups[i] in held])
    train = torch.tensor([i for i in range(n) if groups[i] not in held])
    if len(train) == 0:
        raise ValueError(f"holding out whole groups left no training example; lower test_fraction ({test_fraction})")
    missing = sorted(set(range(n_classes)) - set(y[train].tolist()))
    if missing:
        raise ValueError(f"held-out groups take every example of class index {missing[0]}; give more groups per class")
    return test, train
