"""Messages between the views and the kernel: requests checked field by field, tensors packed as buffers.

The front end sends ``{"type": "get", "id", "what", ...}`` for data and ``{"type": "set", "id",
"interventions"}`` to change the run. The kernel answers ``{"type": "reply"|"applied"|"error", "id", ...}``
with tensors as ``{"dtype", "shape", "buffer": index}`` into the message's binary buffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import codec

#: what a "get" may ask for, and the fields each needs
REQUESTS: dict[str, tuple[str, ...]] = {
    "overview": (),
    "pattern": ("layer", "head"),
    "lens": ("start", "stop"),
    "predictions": ("position",),
    "neurons": ("layer", "position"),
    "neuron": ("layer", "index"),
    "features": ("sae", "position"),
    "feature": ("sae", "index"),
    "dashboard": ("sae", "index"),
    "probe": ("probe", "layer"),
}
#: float tensors travel as float16 where the eye cannot tell the difference
HALF = {"pattern", "values", "probs"}


def parse_steer_probe(content: dict[str, Any], limits: Limits, classes: list[list[str]]) -> dict[str, Any]:
    """``{probe, layer, toward, strength}`` of a "steer_probe" message (steer along a probe's direction)."""
    index = _index(content, "probe", limits.n_probes, "steer_probe") if limits.n_probes else None
    if index is None:
        raise ValueError("steer_probe: this view has no probes; pass probes=[p] to rw.explore")
    layer = _index(content, "layer", limits.n_layers, "steer_probe")
    toward = content.get("toward")
    if toward not in classes[index]:
        raise ValueError(f"steer_probe: toward must be one of {classes[index]}, got {toward!r}")
    strength = content.get("strength")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not -100 <= strength <= 100:
        raise ValueError(f"steer_probe: strength must be a number in -100..100, got {strength!r}")
    return {"probe": index, "layer": layer, "toward": toward, "strength": float(strength)}


def parse_project_probe(content: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """``{probe, layer}`` of a "project_probe" message (toggle projecting a probe's direction out)."""
    if not limits.n_probes:
        raise ValueError("project_probe: this view has no probes; pass probes=[p] to rw.explore")
    return {
        "probe": _index(content, "probe", limits.n_probes, "project_probe"),
        "layer": _index(content, "layer", limits.n_layers, "project_probe"),
    }


@dataclass(frozen=True)
class Limits:
    """The sizes a request's indices must fit."""

    n_layers: int
    n_heads: int
    n_tokens: int
    d_mlp: int
    d_saes: tuple[int, ...] = ()
    n_probes: int = 0


def _index(content: dict[str, Any], name: str, stop: int, what: str) -> int:
    value = content.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} request: {name} must be an int, got {value!r}")
    if not 0 <= value < stop:
        raise ValueError(f"{what} request: {name} {value} is out of range 0..{stop - 1}")
    return value


def parse_get(content: dict[str, Any], limits: Limits) -> tuple[str, dict[str, Any]]:
    """``(what, arguments)`` of a "get" message; anything malformed raises ValueError saying what."""
    what = content.get("what")
    if what not in REQUESTS:
        raise ValueError(f"unknown request {what!r}; expected one of {', '.join(REQUESTS)}")
    stops = {
        "layer": limits.n_layers,
        "head": limits.n_heads,
        "position": limits.n_tokens,
        "index": limits.d_mlp,
        "start": limits.n_tokens,
        "stop": limits.n_tokens + 1,
        "probe": limits.n_probes,
    }
    if "probe" in REQUESTS[what] and not limits.n_probes:
        raise ValueError(f"{what} request: this view has no probes; pass probes=[p] to rw.explore")
    if "sae" in REQUESTS[what]:
        if not limits.d_saes:
            raise ValueError(f"{what} request: this view has no SAEs; pass saes=[sae] to rw.explore")
        stops["sae"] = len(limits.d_saes)
        stops["index"] = limits.d_saes[_index(content, "sae", len(limits.d_saes), what)]
    args = {name: _index(content, name, stops[name], what) for name in REQUESTS[what]}
    if what == "lens" and args["stop"] <= args["start"]:
        raise ValueError(f"lens request: stop {args['stop']} must be after start {args['start']}")
    if what == "pattern" and content.get("window") is not None:
        window = content["window"]
        if not (isinstance(window, list) and len(window) == 4 and all(type(v) is int for v in window)):
            raise ValueError(f"pattern request: window must be [q0, q1, k0, k1] ints, got {window!r}")
        args["window"] = tuple(window)
    return what, args


def message_id(content: Any) -> int | None:
    """The request id of a message, if it has a usable one."""
    value = content.get("id") if isinstance(content, dict) else None
    return value if type(value) is int else None


def pack(data: dict[str, Any]) -> tuple[dict[str, Any], list[memoryview]]:
    """Replace every tensor in ``data`` (one level deep) by a codec header pointing into the returned buffers."""
    out: dict[str, Any] = {}
    buffers: list[memoryview] = []
    for key, value in data.items():
        if isinstance(value, (torch.Tensor, np.ndarray)):
            floating = value.is_floating_point() if isinstance(value, torch.Tensor) else value.dtype.kind == "f"
            if floating:
                dtype = "float16" if key in HALF else "float32"
            else:
                dtype = "uint8" if value.dtype in (torch.uint8, np.uint8) else "int32"
            encoded = codec.encode(value, dtype)
            buffers.append(encoded.pop("buffer"))
            out[key] = {**encoded, "buffer": len(buffers) - 1}
        else:
            out[key] = value
    return out, buffers
