"""Interventions: small frozen values that serialise to JSON and print as the Python that rebuilds them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch

from .hook_names import HookNameError, parse

MODES = ("zero", "mean", "resample")


def _int(value: Any, name: str, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


def _repr_args(obj: Any, required: Sequence[str]) -> str:
    parts = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name not in required and value == f.default:
            continue
        if isinstance(value, tuple) and f.name in ("vector", "source", "positions", "direction"):
            value = list(value)
        parts.append(f"{f.name}={value!r}")
    return f"rw.{type(obj).__name__}({', '.join(parts)})"


def _sae_feature(obj: Any) -> None:
    """Check ``sae``/``feature`` of an SAE intervention and take its layer from the SAE's hook."""
    from .sae.model import SAE

    if not isinstance(obj.sae, SAE):
        raise TypeError(f"sae must be a rw.SAE, got {type(obj.sae).__name__}")
    feature = _int(obj.feature, "feature")
    if not 0 <= feature < obj.sae.d_sae:
        raise ValueError(f"feature {feature} is out of range; {obj.sae.name} has features 0..{obj.sae.d_sae - 1}")
    object.__setattr__(obj, "feature", feature)
    layer = obj.sae.layer
    if obj.layer is not None and _int(obj.layer, "layer") != layer:
        raise ValueError(f"layer {obj.layer} does not match the SAE's hook {obj.sae.hook}")
    object.__setattr__(obj, "layer", layer)


@dataclass(frozen=True)
class Ablate:
    """Ablate a head, an MLP neuron, an SAE feature, a direction, or (none given) a layer's attention output.

    ``mode`` is ``"zero"``, ``"mean"`` (the mean over the model's reference texts) or
    ``"resample"`` (the activation of a reference text, chosen by ``seed``).
    Reference texts are set with :meth:`repwidget.Model.set_reference`.
    ``Ablate(sae=sae, feature=f)`` splices the SAE in at its hook with its error term and zeroes
    feature ``f``: the activation loses exactly that feature's decoder contribution.
    ``Ablate(layer, direction=v)`` ablates one direction of the residual stream after block
    ``layer``: in zero mode its component is projected out (``x - (x.u)u``, ``u = v/|v|``); in mean
    and resample modes the component is set to the reference texts'. ``probes.projection(layer)``
    builds one from a probe.
    """

    layer: int | None = None
    head: int | None = None
    neuron: int | None = None
    mode: str = "zero"
    seed: int = 0
    sae: Any = None
    feature: int | None = None
    direction: tuple[float, ...] = ()

    kind: ClassVar[str] = "ablate"

    def __post_init__(self) -> None:
        object.__setattr__(self, "head", _int(self.head, "head", optional=True))
        object.__setattr__(self, "neuron", _int(self.neuron, "neuron", optional=True))
        object.__setattr__(self, "seed", _int(self.seed, "seed"))
        if self.mode not in MODES:
            raise ValueError(f"Ablate mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.sae is not None or self.feature is not None:
            if self.head is not None or self.neuron is not None or len(_as_list(self.direction)):
                raise ValueError("Ablate takes an SAE feature, a head, a neuron or a direction, not several")
            object.__setattr__(self, "direction", ())
            if self.sae is None or self.feature is None:
                raise ValueError("an SAE feature ablation needs both sae= and feature=")
            if self.mode != "zero":
                raise ValueError("SAE features are ablated to zero; mode must be 'zero'")
            _sae_feature(self)
            return
        if self.layer is None:
            raise TypeError("Ablate needs a layer (or sae= and feature=)")
        object.__setattr__(self, "layer", _int(self.layer, "layer"))
        if self.head is not None and self.neuron is not None:
            raise ValueError("Ablate takes a head or a neuron, not both")
        if len(_as_list(self.direction)):
            if self.head is not None or self.neuron is not None:
                raise ValueError("Ablate takes a direction, a head or a neuron, not several")
            direction = _floats(self.direction, "direction")
            if not any(direction):
                raise ValueError("direction is the zero vector; it has no direction to ablate")
            object.__setattr__(self, "direction", direction)
        else:
            object.__setattr__(self, "direction", ())

    @property
    def hook(self) -> str:
        """The hook name of the activation this ablation edits."""
        if self.sae is not None:
            return self.sae.require_hook()
        if self.head is not None:
            return f"blocks.{self.layer}.attn.hook_z"
        if self.neuron is not None:
            return f"blocks.{self.layer}.mlp.hook_post"
        if self.direction:
            return f"blocks.{self.layer}.hook_resid_post"
        return f"blocks.{self.layer}.hook_attn_out"

    def __repr__(self) -> str:
        if self.sae is not None:
            return f"rw.Ablate(sae={self.sae!r}, feature={self.feature})"
        return _repr_args(self, ("layer",))


@dataclass(frozen=True)
class Steer:
    """Add ``scale * vector`` to the residual stream after block ``layer``.

    ``Steer(sae=sae, feature=f, scale=s)`` adds ``s`` times feature ``f``'s decoder vector at the
    SAE's hook instead.
    """

    layer: int | None = None
    vector: tuple[float, ...] = ()
    scale: float = 1.0
    sae: Any = None
    feature: int | None = None

    kind: ClassVar[str] = "steer"

    def __post_init__(self) -> None:
        if not isinstance(self.scale, (int, float, np.floating)) or isinstance(self.scale, bool):
            raise TypeError(f"scale must be a number, got {self.scale!r}")
        if not math.isfinite(self.scale):
            raise ValueError(f"scale must be finite, got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        if self.sae is not None or self.feature is not None:
            if self.sae is None or self.feature is None:
                raise ValueError("steering with an SAE feature needs both sae= and feature=")
            if len(_as_list(self.vector)):
                raise ValueError("Steer takes a vector or an SAE feature, not both")
            object.__setattr__(self, "vector", ())
            _sae_feature(self)
            return
        if self.layer is None:
            raise TypeError("Steer needs a layer and a vector (or sae= and feature=)")
        object.__setattr__(self, "layer", _int(self.layer, "layer"))
        object.__setattr__(self, "vector", _floats(self.vector, "vector"))

    @property
    def hook(self) -> str:
        if self.sae is not None:
            return self.sae.require_hook()
        return f"blocks.{self.layer}.hook_resid_post"

    def __repr__(self) -> str:
        if self.sae is not None:
            return f"rw.Steer(sae={self.sae!r}, feature={self.feature}, scale={self.scale!r})"
        return _repr_args(self, ("layer", "vector"))


@dataclass(frozen=True)
class Patch:
    """Activation patching: take the activation at ``hook`` from a run on ``source`` token ids.

    ``head`` restricts a ``attn.hook_z`` patch to one head; ``positions`` to some positions
    (all by default, in which case source and target must have the same length).
    Build one from a run with :meth:`Patch.from_run`.
    """

    hook: str
    source: tuple[int, ...]
    head: int | None = None
    positions: tuple[int, ...] | None = None

    kind: ClassVar[str] = "patch"

    def __post_init__(self) -> None:
        if not isinstance(self.hook, str):
            raise TypeError(f"hook must be a hook name (str), got {self.hook!r}")
        try:
            template = parse(self.hook)[1]
        except HookNameError as e:
            raise ValueError(str(e)) from None
        if template == "attn.hook_pattern":
            raise ValueError("attention patterns are read-only; patch blocks.{l}.attn.hook_z instead")
        object.__setattr__(self, "source", tuple(_int(i, "source token id") for i in _as_list(self.source)))
        if not self.source:
            raise ValueError("Patch source must hold at least one token id")
        object.__setattr__(self, "head", _int(self.head, "head", optional=True))
        if self.head is not None and not self.hook.endswith("attn.hook_z"):
            raise ValueError("Patch head= only applies to an attn.hook_z hook")
        if self.positions is not None:
            object.__setattr__(self, "positions", tuple(_int(p, "position") for p in _as_list(self.positions)))

    @classmethod
    def from_run(cls, run: Any, hook: str, head: int | None = None, positions: Iterable[int] | None = None) -> Patch:
        """Patch ``hook`` from ``run`` (a :class:`repwidget.Run`) into later runs."""
        return cls(hook=hook, source=tuple(run.token_ids), head=head, positions=positions)

    @property
    def layer(self) -> int:
        return parse(self.hook)[0]

    def __repr__(self) -> str:
        return _repr_args(self, ("hook", "source"))


Intervention = Ablate | Steer | Patch
_KINDS: dict[str, type] = {cls.kind: cls for cls in (Ablate, Steer, Patch)}


def _as_list(value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().reshape(-1).tolist()
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"expected a sequence, got {type(value).__name__}")
    return list(value)


def _floats(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, torch.Tensor) and value.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(value.shape)}")
    items = _as_list(value)
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold numbers") from None
    if not out:
        raise ValueError(f"{name} is empty")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} holds NaN or infinite values")
    return out


def to_json(intervention: Intervention) -> dict[str, Any]:
    """A JSON-serialisable dict, the inverse of :func:`from_json`."""
    data: dict[str, Any] = {"type": intervention.kind}
    for f in fields(intervention):
        value = getattr(intervention, f.name)
        if f.name == "sae":
            value = value.name if value is not None else None
        data[f.name] = list(value) if isinstance(value, tuple) else value
    return data


def from_json(data: Any) -> Intervention:
    """Rebuild an intervention from :func:`to_json` output; a malformed message raises ValueError."""
    if not isinstance(data, dict) or data.get("type") not in _KINDS:
        raise ValueError(f"not an intervention: expected a dict with type in {sorted(_KINDS)}, got {data!r}")
    cls = _KINDS[data["type"]]
    names = {f.name for f in fields(cls)}
    extra = set(data) - names - {"type"}
    if extra:
        raise ValueError(f"unknown fields for {cls.__name__}: {sorted(extra)}")
    values = {k: v for k, v in data.items() if k != "type"}
    if values.get("sae") is not None:
        from .sae.model import registered

        if not isinstance(values["sae"], str):
            raise ValueError(f"sae must be the name of a loaded SAE, got {values['sae']!r}")
        values["sae"] = registered(values["sae"])
    try:
        return cls(**values)
    except TypeError as e:
        raise ValueError(f"malformed {cls.__name__}: {e}") from None


def as_tuple(interventions: Intervention | Iterable[Intervention] | None) -> tuple[Intervention, ...]:
    """Normalise one intervention, a list of them or None into a tuple, checking each type."""
    if interventions is None:
        return ()
    if isinstance(interventions, (Ablate, Steer, Patch)):
        return (interventions,)
    if isinstance(interventions, (str, bytes, dict)) or not isinstance(interventions, Iterable):
        raise TypeError(f"interventions must be rw.Ablate / rw.Steer / rw.Patch values, got {interventions!r}")
    out = tuple(interventions)
    for item in out:
        if not isinstance(item, (Ablate, Steer, Patch)):
            raise TypeError(f"not an intervention: {item!r} (use rw.Ablate, rw.Steer or rw.Patch)")
    return out
