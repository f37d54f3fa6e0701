"""What a top-examples harvest keeps (:class:`TopExamples`: per unit its top ``k`` (text, position, value) and a
token window around each), how it shows itself (HTML, every token escaped) and its files (safetensors + JSON, read
back strictly)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..file_checks import FileFormatError, json_field, read_json, read_tensors, tensor_field
from ..units import Direction, Feature, Head, Neuron, TranscoderFeature

FORMAT = "repwidget.top_examples"


@dataclass(frozen=True)
class Example:
    """One context: the text it is in (its index in the corpus), the peak's position there and value, and the window
    of tokens around it with the unit's value at each (``peak``: the peak's index in the window)."""

    text_index: int
    position: int
    value: float
    tokens: list[str]
    values: list[float]
    peak: int


@dataclass
class TopExamples:
    """The top contexts of each of ``units`` (:func:`repwidget.top_examples`). ``values``, ``text_index``,
    ``position``, ``window_start`` are ``[units, k]`` (best first; ``text_index == -1`` where fewer than ``k`` were
    found); ``window_ids`` / ``window_values`` ``[units, k, width]`` (id ``-1`` outside the text), window column
    ``j`` being position ``window_start + j``; ``tokens`` maps the ids in windows to their text."""

    units: list[Any]
    values: torch.Tensor
    text_index: torch.Tensor
    position: torch.Tensor
    window_start: torch.Tensor
    window_ids: torch.Tensor
    window_values: torch.Tensor
    tokens: dict[int, str]
    context: tuple[int, int] | None
    per_text: bool
    n_texts: int
    n_tokens: int

    @property
    def k(self) -> int:
        return self.values.shape[1]

    @property
    def labels(self) -> list[str]:
        return [_label(u) for u in self.units]

    def __len__(self) -> int:
        return len(self.units)

    def __repr__(self) -> str:
        return f"<TopExamples of {len(self)} units, k={self.k}, over {self.n_texts} texts ({self.n_tokens} tokens)>"

    def index(self, unit: Any) -> int:
        """Where ``unit`` (a unit, its ``spec()`` or its label) is in :attr:`units`."""
        for j, known in enumerate(self.units):
            if unit is known or unit == known or _spec(unit) == _spec(known) or unit == _label(known):
                return j
        shown = ", ".join(self.labels[:4]) + (f" and {len(self) - 4} more" if len(self) > 4 else "")
        raise KeyError(f"{_label(unit)} is not among these top examples' units ({shown})")

    def __contains__(self, unit: Any) -> bool:
        try:
            self.index(unit)
        except KeyError:
            return False
        return True

    def examples(self, unit: Any) -> list[Example]:
        """The contexts of ``unit`` (a unit or its position in :attr:`units`), best first."""
        j = unit if isinstance(unit, int) and not isinstance(unit, bool) else self.index(unit)
        out = []
        for i in range(self.k):
            if int(self.text_index[j, i]) < 0:
                break
            ids = self.window_ids[j, i]
            inside = ids >= 0
            tokens = [self.tokens[int(t)] for t in ids[inside].tolist()]
            values = self.window_values[j, i][inside].tolist()
            before = int((~inside[: int(self.position[j, i] - self.window_start[j, i])]).sum())
            peak = int(self.position[j, i] - self.window_start[j, i]) - before
            out.append(Example(int(self.text_index[j, i]), int(self.position[j, i]), float(self.values[j, i]),
                               tokens, values, peak))  # fmt: skip
        return out

    __getitem__ = examples

    # -- showing -------------------------------------------------------------------------
    def html(self, units: Any = None, n: int = 10) -> str:
        """Self-contained HTML of the top ``n`` contexts of ``units`` (default the first 8); every token escaped."""
        chosen = range(min(8, len(self))) if units is None else [self.index(u) for u in _listed(units)]
        return "".join(self._unit_html(j, n) for j in chosen)

    def _unit_html(self, j: int, n: int) -> str:
        rows = []
        for ex in self.examples(j)[:n]:
            peak = max(abs(ex.value), 1e-9)
            spans = "".join(
                f'<span title="{v:.3f}" style="background: rgba(230, 126, 34, {min(1.0, max(0.0, v) / peak):.2f});'
                f'{" outline: 1px solid #333;" if i == ex.peak else ""}">{html.escape(t)}</span>'
                for i, (t, v) in enumerate(zip(ex.tokens, ex.values, strict=True))
            )
            rows.append(
                f"<tr><td>{ex.value:.3f}</td><td>text {ex.text_index}</td>"
                f"<td style='font-family: monospace; white-space: pre'>{spans}</td></tr>"
            )
        return (
            f"<div class='rw-top-examples' data-rw-unit='{j}'><h4>{html.escape(_label(self.units[j]))}</h4>"
            f"<table><tr><th>value</th><th>where</th><th>context</th></tr>{''.join(rows)}</table></div>"
        )

    def _repr_html_(self) -> str:
        return self.html()

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``top_examples.json`` and ``top_examples.safetensors`` into the directory ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {
            "values": self.values.float().contiguous(),
            "text_index": self.text_index.long().contiguous(),
            "position": self.position.long().contiguous(),
            "window_start": self.window_start.long().contiguous(),
            "window_ids": self.window_ids.long().contiguous(),
            "window_values": self.window_values.float().contiguous(),
        }
        for j, unit in enumerate(self.units):
            if isinstance(unit, Direction):
                tensors[f"direction.{j}"] = unit.vector.float().contiguous()
        save_file(tensors, str(path / "top_examples.safetensors"))
        meta = {
            "format": FORMAT,
            "units": [_spec(u) for u in self.units],
            "tokens": {str(t): s for t, s in self.tokens.items()},
            "context": list(self.context) if self.context is not None else None,
            "per_text": self.per_text,
            "n_texts": self.n_texts,
            "n_tokens": self.n_tokens,
        }
        (path / "top_examples.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TopExamples:
        """Read a directory written by :meth:`save`, every field checked (a one-line error names what is wrong).
        Units come back as their specs (dicts) except directions (their vectors are saved); SAEs are named only."""
        path = Path(path)
        where = path / "top_examples.json"
        meta = read_json(where)
        if meta.get("format") != FORMAT:
            raise FileFormatError(f"{where}: format must be {FORMAT!r}, got {json.dumps(meta.get('format'))[:60]}")
        specs = json_field(meta, "units", "list", where)
        if not specs or not all(isinstance(s, dict) and s.get("kind") in _KINDS for s in specs):
            raise FileFormatError(f"{where}: units must be a non-empty list of unit specs ({', '.join(_KINDS)})")
        tokens = json_field(meta, "tokens", "dict", where)
        if not all(k.isdigit() and isinstance(v, str) for k, v in tokens.items()):
            raise FileFormatError(f"{where}: tokens must map token ids to their text")
        context = meta.get("context")
        ok = context is None or (isinstance(context, list) and len(context) == 2)
        if not ok or (context is not None and not all(type(c) is int and c >= 0 for c in context)):
            raise FileFormatError(f"{where}: context must be [before, after] (ints >= 0) or null, got {context!r:.60}")
        per_text = json_field(meta, "per_text", "bool", where)
        n_texts, n_tokens = json_field(meta, "n_texts", "+int", where), json_field(meta, "n_tokens", "int", where)
        file = path / "top_examples.safetensors"
        t = read_tensors(file)
        values = tensor_field(t, "values", file, (len(specs), None))
        k = values.shape[1]
        fields = {name: tensor_field(t, name, file, (len(specs), k), integer=True).long()
                  for name in ("text_index", "position", "window_start")}  # fmt: skip
        window_ids = tensor_field(t, "window_ids", file, (len(specs), k, None), integer=True).long()
        window_values = tensor_field(t, "window_values", file, tuple(window_ids.shape))
        if bool((fields["text_index"] >= n_texts).any()) or bool((fields["text_index"] < -1).any()):
            raise FileFormatError(f"{file}: text_index must be in -1..{n_texts - 1}")
        missing = {int(i) for i in window_ids[window_ids >= 0].unique().tolist()} - {int(i) for i in tokens}
        if missing:
            raise FileFormatError(f"{where}: tokens lacks the text of ids in the windows, e.g. {min(missing)}")
        units = [_unit(s, j, t, file) for j, s in enumerate(specs)]
        ctx = (context[0], context[1]) if context is not None else None
        return cls(units, values, fields["text_index"], fields["position"], fields["window_start"], window_ids,
                   window_values, {int(k): v for k, v in tokens.items()}, ctx, per_text, n_texts, n_tokens)  # fmt: skip


_KINDS = {
    "neuron": Neuron,
    "head": Head,
    "feature": Feature,
    "direction": Direction,
    "transcoder_feature": TranscoderFeature,
}


def _unit(spec: dict[str, Any], j: int, tensors: dict[str, torch.Tensor], file: Path) -> Any:
    """A saved unit as a unit (neurons, heads, directions), or its checked spec (a feature: its SAE is not saved)."""
    where = f"{file.with_suffix('.json')}: units[{j}]"
    try:
        if spec["kind"] == "neuron":
            return Neuron(_checked(spec, "layer", where), _checked(spec, "index", where))
        if spec["kind"] == "head":
            return Head(_checked(spec, "layer", where), _checked(spec, "head", where), str(spec.get("score")))
        if spec["kind"] == "direction":
            vector = tensor_field(tensors, f"direction.{j}", file, (None,))
            return Direction(vector, str(spec.get("hook")), str(spec.get("name", "direction")))
    except ValueError as e:
        raise FileFormatError(f"{where}: {e}") from None
    _checked(spec, "index", where)
    if spec.get("kind") == "transcoder_feature":  # its transcoders are not saved either
        _checked(spec, "layer", where)
        return dict(spec)
    if not isinstance(spec.get("sae"), str) or not isinstance(spec.get("hook"), str):
        raise FileFormatError(f"{where}: a feature names its sae and hook (strings)")
    return dict(spec)


def _checked(spec: dict[str, Any], key: str, where: str) -> int:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FileFormatError(f"{where}: {key} must be an int >= 0, got {json.dumps(value)[:40]}")
    return value


def _spec(unit: Any) -> Any:
    return unit.spec() if hasattr(unit, "spec") else unit


def _label(unit: Any) -> str:
    if hasattr(unit, "label"):
        return unit.label
    if isinstance(unit, dict) and unit.get("kind") == "feature":
        return f"feature {unit.get('index')} of {unit.get('sae')}"
    if isinstance(unit, dict) and unit.get("kind") == "transcoder_feature":
        return f"transcoder feature {unit.get('layer')}.{unit.get('index')}"
    return repr(unit)[:60]


def _listed(units: Any) -> list[Any]:
    return list(units) if isinstance(units, (list, range)) else [units]
