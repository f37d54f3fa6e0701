"""Interventions: small frozen values that serialise to JSON and print as the Python that rebuilds them.

Each kind is one class in its own module (``ablate.py``, ``steer.py``, ...), registered here by ``@_register``:
what it takes (checked at construction), which hook it acts at, whether it fits a model
(:meth:`Intervention.check`), its effect on a pass (:meth:`Intervention.effect`: an activation edit, a score mask or
a bypass, see ``edits.py``), its JSON (``json.py``) and its label for the front end. A new kind is one more module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ..hook_names import HookNameError
from ..sae.model import SAE
from .edits import ActivationEdit, Bypass, Edit, ScoreMask

if TYPE_CHECKING:
    from ..model.model import Model

#: how an ablation replaces an activation: zero, the reference texts' mean, or a reference text's value
MODES = ("zero", "mean", "resample")

_KINDS: dict[str, type[Intervention]] = {}


def _register(name: str):
    def register(cls: type[Intervention]) -> type[Intervention]:
        cls.kind = name
        _KINDS[name] = cls
        return cls

    return register


class Intervention:
    """What every kind of intervention is: a frozen value that edits the activation at one hook."""

    kind: ClassVar[str]
    #: float fields that stay in the kernel when listed for the front end (never floats as JSON)
    kernel_only: ClassVar[tuple[str, ...]] = ()
    # every kind also has ``hook`` (the hook name it edits) and ``layer`` (that hook's block), as fields or
    # properties; they are not declared here, where a dataclass would take them for field defaults
    hook: ClassVar[Any]
    layer: ClassVar[Any]

    def label(self) -> str:
        """A short description for people (the front end shows it)."""
        raise NotImplementedError  # pragma: no cover

    def check(self, model: Model, n_tokens: int) -> None:
        """Raise ValueError, naming the valid range, unless this fits ``model`` and a run of ``n_tokens``."""
        if not 0 <= self.layer < model.n_layers:
            raise ValueError(
                f"{_short(self)}: layer {self.layer} is out of range; this model has layers 0..{model.n_layers - 1}"
            )
        try:
            model.check_hook(self.hook)
        except HookNameError as error:
            raise ValueError(f"{_short(self)}: {error}") from None

    #: the type of :meth:`effect`'s value (:class:`ActivationEdit`, :class:`ScoreMask` or :class:`Bypass`): what
    #: the planner dispatches on, and the executor capability it needs (``effect_type.capability``)
    effect_type: ClassVar[type] = ActivationEdit

    def effect(self, model: Model, n_tokens: int) -> Edit | ScoreMask | Bypass:
        """What this does to a pass of ``n_tokens`` tokens: an activation edit (:meth:`edit`) unless the kind says
        otherwise (a knockout's score mask, a skip's bypass)."""
        return self.edit(model, n_tokens)

    def edit(self, model: Model, n_tokens: int) -> Edit:
        """The edit of the activation at :attr:`hook` (reference statistics and patch sources read here)."""
        raise NotImplementedError  # pragma: no cover

    @property
    def by_position(self) -> bool:
        """Whether the edit treats positions differently (it names positions, or reads a value per position).
        Every edit is row-wise: position p's edited value depends only on its activation and on p."""
        return getattr(self, "positions", None) is not None

    def first_changed(self, ids: Sequence[int]) -> int:
        """The first position of a clean run on ``ids`` this can change (0: any). Causal reruns recompute only
        from there on (``Model.rerun_batch``), so it must never be later than the truth."""
        positions = getattr(self, "positions", None)
        return max(0, min(positions)) if positions else 0


def _int(value: Any, name: str, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r:.80}")
    return int(value)


def _short(iv: Any) -> str:
    text = repr(iv)
    return text if len(text) < 120 else text[:100] + "...)"


def _repr_args(obj: Any, required: Sequence[str]) -> str:
    parts = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name not in required and value == f.default:
            continue
        if isinstance(value, tuple) and f.name in (
            "vector", "source", "positions", "direction", "interventions", "query", "key",
        ):  # fmt: skip
            value = list(value)
        parts.append(f"{f.name}={value!r}")
    return f"rw.{type(obj).__name__}({', '.join(parts)})"


def _sae_feature(obj: Any) -> None:
    """Check ``sae``/``feature`` of an SAE intervention and take its layer from the SAE's hook."""
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


def _columns(start: int, width: int) -> slice:
    return slice(start, start + width)


def _positions(value: Any, name: str = "positions") -> tuple[int, ...] | None:
    """Distinct token positions (None: every position)."""
    if value is None:
        return None
    positions = tuple(_int(p, "position") for p in _as_list(value))
    if len(set(positions)) != len(positions):
        raise ValueError(f"{name} must be distinct")
    if not positions:
        raise ValueError(f"{name} is empty; leave it out for every position")
    return positions


def _check_positions(iv: Any, positions: tuple[int, ...] | None, n_tokens: int, name: str = "positions") -> None:
    if positions is None:
        return
    if len(positions) > n_tokens:
        raise ValueError(f"{_short(iv)}: {len(positions)} {name}, but this run has {n_tokens} tokens")
    for p in positions:
        if not 0 <= p < n_tokens:
            raise ValueError(f"{_short(iv)}: position {p} is out of range 0..{n_tokens - 1}")


def _label_positions(positions: tuple[int, ...] | None) -> str:
    if positions is None:
        return ""
    shown = ", ".join(map(str, positions[:4])) + (", ..." if len(positions) > 4 else "")
    return f" at position{'s' if len(positions) > 1 else ''} {shown}"


def _at(positions: tuple[int, ...] | None) -> Any:
    """The index of the positions an edit touches (every position when None)."""
    return slice(None) if positions is None else list(positions)


def _check_index(iv: Any, name: str, value: int | None, stop: int, what: str) -> None:
    if value is not None and not 0 <= value < stop:
        raise ValueError(f"{_short(iv)}: {name} {value} is out of range; {what} 0..{stop - 1}")


def _check_reference(iv: Any, model: Model) -> None:
    if iv.mode != "zero" and model.reference is None:
        raise ValueError(
            f"{_short(iv)}: mode={iv.mode!r} uses statistics of reference texts; "
            "call model.set_reference([...texts...]) first, or use mode='zero'"
        )


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


def kinds() -> dict[str, type[Intervention]]:
    """Every intervention kind by its JSON ``type``."""
    return dict(_KINDS)


def as_tuple(interventions: Intervention | Iterable[Intervention] | None) -> tuple[Intervention, ...]:
    """Normalise one intervention, a list of them or None into a tuple, checking each type."""
    if interventions is None:
        return ()
    if isinstance(interventions, Intervention):
        return (interventions,)
    if isinstance(interventions, (str, bytes, dict)) or not isinstance(interventions, Iterable):
        raise TypeError(
            f"interventions must be rw.Ablate / rw.Steer / rw.Patch / rw.Knockout / rw.Skip values, "
            f"got {interventions!r:.200}"
        )
    out = tuple(interventions)
    for item in out:
        if not isinstance(item, Intervention):
            raise TypeError(f"not an intervention: {item!r:.200} (use rw.Ablate, rw.Steer or rw.Patch)")
    return out
