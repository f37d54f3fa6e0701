"""Probes saved to a directory read back: ``probes.json`` checked field by field, the tensors checked against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..file_checks import FileFormatError, json_field, read_json, read_tensors, tensor_field
from ..hook_names import SHORT_NAMES
from . import fit


def read_fields(path: Path) -> dict[str, Any]:
    """The :class:`Probes` fields from a directory written by :meth:`Probes.save`, every field checked."""
    where = path / "probes.json"
    meta = read_json(where)
    kind = json_field(meta, "kind", "str", where)
    if kind not in fit.KINDS:
        raise FileFormatError(f"{where}: kind must be one of {', '.join(fit.KINDS)}, got {kind!r}")
    site = json_field(meta, "site", "str", where)
    if site not in SHORT_NAMES:
        raise FileFormatError(f"{where}: site must be one of {', '.join(SHORT_NAMES)}, got {site!r}")
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
