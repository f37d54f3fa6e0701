"""Interventions as JSON: :func:`to_json` and its inverse :func:`from_json` (SAEs resolved against the caller's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from ..sae.model import SAE
from .base import _KINDS, Intervention


def to_json(intervention: Intervention, saes: Sequence[SAE] | None = None) -> dict[str, Any]:
    """A JSON-serialisable dict, the inverse of :func:`from_json`.

    An SAE is written as its index in ``saes`` when given (an explorer's list), else by name.
    """
    data: dict[str, Any] = {"type": intervention.kind}
    for f in fields(intervention):
        value = getattr(intervention, f.name)
        if f.name == "sae" and value is not None:
            value = _sae_index(value, saes) if saes is not None else value.name
        if f.name == "interventions":
            value = [to_json(iv, saes) for iv in value]
        data[f.name] = list(value) if isinstance(value, tuple) else value
    return data


def _sae_index(sae: SAE, saes: Sequence[SAE]) -> int:
    for i, known in enumerate(saes):
        if known is sae:
            return i
    raise ValueError(f"{sae.name} is not one of this view's SAEs; pass it in saes=[...]")


def from_json(data: Any, saes: Sequence[SAE] | Mapping[str, SAE] | None = None) -> Intervention:
    """Rebuild an intervention from :func:`to_json` output; a malformed message raises ValueError.

    Fields left out take their defaults. An SAE is looked up in ``saes``: by index in a list, by name
    in a mapping. There is no process-wide registry: JSON means something only next to its SAEs.
    """
    if not isinstance(data, dict) or data.get("type") not in _KINDS:
        raise ValueError(f"not an intervention: expected a dict with type in {sorted(_KINDS)}, got {data!r:.200}")
    cls = _KINDS[data["type"]]
    names = {f.name for f in fields(cls)}
    extra = set(data) - names - {"type"}
    if extra:
        raise ValueError(f"unknown fields for {cls.__name__}: {sorted(map(str, extra))[:10]}")
    values = {k: v for k, v in data.items() if k != "type"}
    if values.get("sae") is not None:
        values["sae"] = _find_sae(values["sae"], saes)
    if isinstance(values.get("interventions"), list):
        values["interventions"] = tuple(from_json(item, saes) for item in values["interventions"][:64])
    try:
        return cls(**values)
    except TypeError as e:
        raise ValueError(f"malformed {cls.__name__}: {e}") from None


def _find_sae(key: Any, saes: Sequence[SAE] | Mapping[str, SAE] | None) -> SAE:
    if saes is None:
        raise ValueError("this intervention names an SAE; pass saes=[...] (the SAEs it may refer to)")
    if isinstance(saes, Mapping):
        if isinstance(key, str) and key in saes:
            return saes[key]
        raise ValueError(f"unknown SAE {key!r:.80}; known: {', '.join(sorted(saes)) or 'none'}")
    if type(key) is int and 0 <= key < len(saes):
        return saes[key]
    raise ValueError(f"sae must be an index into this view's {len(saes)} SAEs, got {key!r:.80}")
