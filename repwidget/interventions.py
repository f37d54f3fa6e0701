"""Interventions: small frozen values that serialise to JSON and print as the Python that rebuilds them.

Each kind is one class: what it takes (checked at construction), which hook it edits, whether it fits a
model (:meth:`Intervention.check`), the edit of the activation it makes (:meth:`Intervention.edit`),
its JSON and its label for the front end. A new kind is one more ``@kind`` class here.

An edit is a function of the activation at the hook, ``[batch, pos, width]`` (``attn.hook_z`` flattened
over heads), returning the edited activation; any executor applies it where it reads the hook.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .hook_names import HookNameError, parse
from .placement import like
from .sae.model import SAE

if TYPE_CHECKING:
    from .model.model import Model

Edit = Callable[[torch.Tensor], torch.Tensor]  # [batch, pos, width] -> same shape

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


@dataclass(frozen=True, eq=False)
class SetRows:
    """The edit ``x[:, at, cols] = value`` (zero when ``value`` is None; ``value`` broadcasts over the batch)."""

    at: Any  # a slice or a list of positions
    cols: slice
    value: torch.Tensor | None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x[:, self.at, self.cols] = 0 if self.value is None else like(self.value, x)
        return x


@dataclass(frozen=True, eq=False)
class AddRows:
    """The edit ``x[:, at] += delta``."""

    at: Any
    delta: torch.Tensor  # [width]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.at == slice(None):
            return x + like(self.delta, x)
        x[:, self.at] = x[:, self.at] + like(self.delta, x)
        return x


@dataclass(frozen=True, eq=False)
class Project:
    """The edit setting the component of ``x[:, at]`` along the unit vector ``unit`` to ``target`` (a number, or
    one per position)."""

    at: Any
    unit: torch.Tensor  # [width], float32
    target: torch.Tensor  # [] or [pos]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        u = like(self.unit, x)
        rows = x[:, self.at]
        shift = like(self.target, x) - rows @ u  # [batch, pos]
        x[:, self.at] = rows + shift[..., None] * u
        return x


@dataclass(frozen=True, eq=False)
class Splice:
    """The edit splicing ``sae`` in at ``x[:, at]`` (with its error term) minus ``feature``: exactly that
    feature's decoder contribution goes. Rows are encoded a block at a time (never every feature of a long
    text at once)."""

    at: Any
    sae: Any
    feature: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        sae = self.sae
        chosen = x[:, self.at]
        flat = chosen.reshape(-1, x.shape[-1])
        out = torch.empty_like(flat)
        step = sae.rows_per_block()
        for start in range(0, len(flat), step):
            rows = flat[start : start + step]
            feats = sae.encode(rows)
            error = rows.float() - sae.decode(feats)
            feats[..., self.feature] = 0
            out[start : start + step] = (sae.decode(feats) + error).to(x.dtype)
        x[:, self.at] = out.reshape(chosen.shape)
        return x


def _check_index(iv: Any, name: str, value: int | None, stop: int, what: str) -> None:
    if value is not None and not 0 <= value < stop:
        raise ValueError(f"{_short(iv)}: {name} {value} is out of range; {what} 0..{stop - 1}")


def _check_reference(iv: Any, model: Model) -> None:
    if iv.mode != "zero" and model.reference is None:
        raise ValueError(
            f"{_short(iv)}: mode={iv.mode!r} uses statistics of reference texts; "
            "call model.set_reference([...texts...]) first, or use mode='zero'"
        )


@_register("ablate")
@dataclass(frozen=True, repr=False)
class Ablate(Intervention):
    """Ablate a head, an MLP neuron, an SAE feature, a direction, or (none given) a layer's attention output.

    ``mode`` is ``"zero"``, ``"mean"`` (the mean over the model's reference texts) or
    ``"resample"`` (the activation of a reference text, chosen by ``seed``).
    Reference texts are set with :meth:`repwidget.Model.set_reference`.
    ``Ablate(sae=sae, feature=f)`` splices the SAE in at its hook with its error term and zeroes
    feature ``f``: the activation loses exactly that feature's decoder contribution.
    ``Ablate(layer, direction=v)`` ablates one direction of the residual stream after block
    ``layer``: in zero mode its component is projected out (``x - (x.u)u``, ``u = v/|v|``); in mean
    and resample modes the component is set to the reference texts'. ``probes.projection(layer)``
    builds one from a probe. ``positions=[...]`` ablates at those token positions only.
    """

    layer: int | None = None
    head: int | None = None
    neuron: int | None = None
    mode: str = "zero"
    seed: int = 0
    sae: Any = None
    feature: int | None = None
    direction: tuple[float, ...] = ()
    positions: tuple[int, ...] | None = None

    kernel_only: ClassVar[tuple[str, ...]] = ("direction",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "head", _int(self.head, "head", optional=True))
        object.__setattr__(self, "neuron", _int(self.neuron, "neuron", optional=True))
        object.__setattr__(self, "seed", _int(self.seed, "seed"))
        object.__setattr__(self, "positions", _positions(self.positions))
        if self.mode not in MODES:
            raise ValueError(f"Ablate mode must be one of {', '.join(MODES)}, got {self.mode!r:.40}")
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
    def target(self) -> str:
        """What is ablated: ``"feature"``, ``"head"``, ``"neuron"``, ``"direction"`` or ``"attention"``."""
        if self.sae is not None:
            return "feature"
        if self.head is not None:
            return "head"
        if self.neuron is not None:
            return "neuron"
        return "direction" if self.direction else "attention"

    @property
    def hook(self) -> str:
        """The hook name of the activation this ablation edits."""
        site = {
            "head": "attn.hook_z",
            "neuron": "mlp.hook_post",
            "direction": "hook_resid_post",
            "attention": "hook_attn_out",
        }
        if self.target == "feature":
            return self.sae.require_hook()
        return f"blocks.{self.layer}.{site[self.target]}"

    def label(self) -> str:
        target = self.target
        at = _label_positions(self.positions)
        if target == "feature":
            return f"ablate feature {self.feature} of {self.sae.name}{at}"
        if target == "direction":
            return f"project out a direction at layer {self.layer} ({self.mode}){at}"
        what = {"head": f"head {self.layer}.{self.head}", "neuron": f"neuron {self.layer}.{self.neuron}"}
        return f"ablate {what.get(target, f'attention {self.layer}')} ({self.mode}){at}"

    def check(self, model: Model, n_tokens: int) -> None:
        if self.sae is not None:
            self.sae.check_fits(model)
        super().check(model, n_tokens)
        _check_index(self, "head", self.head, model.n_heads, "this model has heads")
        _check_index(self, "neuron", self.neuron, model.d_mlp, "the MLP has neurons")
        _check_reference(self, model)
        _check_positions(self, self.positions, n_tokens)
        if self.direction and len(self.direction) != model.d_model:
            width = len(self.direction)
            raise ValueError(f"{_short(self)}: the direction has width {width}, the residual stream {model.d_model}")

    def edit(self, model: Model, n_tokens: int) -> Edit:
        at = _at(self.positions)
        if self.target == "feature":
            return _feature_splice(self.sae, self.feature, self.positions)
        if self.target == "direction":
            return self._project(model, n_tokens)
        cols = {
            "head": lambda: _columns(self.head * model.d_head, model.d_head),
            "neuron": lambda: _columns(self.neuron, 1),
            "attention": lambda: slice(None),
        }[self.target]()
        if self.mode == "zero":
            return SetRows(at, cols, None)
        if self.mode == "mean":
            return SetRows(at, cols, model.reference.mean(self.hook)[cols])  # [width]
        return SetRows(at, cols, model.reference.resample(self.hook, n_tokens, self.seed)[at, cols])  # [pos, width]

    @property
    def by_position(self) -> bool:
        return self.positions is not None or self.mode == "resample"

    def _project(self, model: Model, n_tokens: int) -> Edit:
        """Set the component along ``direction`` to zero or to the reference texts'."""
        unit = torch.tensor(self.direction, dtype=torch.float32)
        unit = unit / unit.norm()
        at = _at(self.positions)
        if self.mode == "zero":
            target = torch.zeros(())
        elif self.mode == "mean":
            target = model.reference.mean(self.hook).float() @ unit  # a number
        else:
            target = model.reference.resample(self.hook, n_tokens, self.seed).float()[at] @ unit  # [pos]

        return Project(at, unit, target)

    def __repr__(self) -> str:
        if self.sae is not None:
            at = f", positions={list(self.positions)}" if self.positions is not None else ""
            return f"rw.Ablate(sae={self.sae!r}, feature={self.feature}{at})"
        return _repr_args(self, ("layer",))


def _feature_splice(sae: SAE, feature: int, positions: tuple[int, ...] | None = None) -> Edit:
    """Splice the SAE in (with its error term) minus one feature: exactly that feature's contribution goes."""
    return Splice(_at(positions), sae, feature)


@_register("steer")
@dataclass(frozen=True, repr=False)
class Steer(Intervention):
    """Add ``scale * vector`` to the residual stream after block ``layer``.

    ``Steer(sae=sae, feature=f, scale=s)`` adds ``s`` times feature ``f``'s decoder vector at the
    SAE's hook instead. ``positions=[...]`` steers at those token positions only. ``name`` says what the
    steer is in the units its maker chose (``probes.steering`` gives ``"toward negative, strength 2 (class
    gaps)"``); the label shows it instead of the raw scale.
    """

    layer: int | None = None
    vector: tuple[float, ...] = ()
    scale: float = 1.0
    sae: Any = None
    feature: int | None = None
    positions: tuple[int, ...] | None = None
    name: str | None = None

    kernel_only: ClassVar[tuple[str, ...]] = ("vector",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _positions(self.positions))
        if self.name is not None and not (isinstance(self.name, str) and 0 < len(self.name) <= 80):
            raise ValueError(f"name must be a string of 1 to 80 characters, got {self.name!r:.60}")
        if not isinstance(self.scale, (int, float, np.floating)) or isinstance(self.scale, bool):
            raise TypeError(f"scale must be a number, got {self.scale!r:.40}")
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

    def label(self) -> str:
        at = _label_positions(self.positions)
        if self.sae is not None:
            return f"steer feature {self.feature} of {self.sae.name} \u00d7 {self.scale:g}{at}"
        if self.name is not None:
            return f"steer layer {self.layer} {self.name}{at}"
        return f"steer layer {self.layer} (scale {self.scale:.2f}){at}"

    def check(self, model: Model, n_tokens: int) -> None:
        if self.sae is not None:
            self.sae.check_fits(model)
        super().check(model, n_tokens)
        if self.sae is None and len(self.vector) != model.d_model:
            raise ValueError(
                f"{_short(self)}: the steering vector has width {len(self.vector)}, the residual stream {model.d_model}"
            )
        _check_positions(self, self.positions, n_tokens)

    def edit(self, model: Model, n_tokens: int) -> Edit:
        if self.sae is not None:
            delta = self.sae.decoder_vectors()[self.feature] * self.scale
        else:
            delta = torch.tensor(self.vector, dtype=torch.float32) * self.scale
        return AddRows(_at(self.positions), delta)

    def __repr__(self) -> str:
        if self.sae is not None:
            at = f", positions={list(self.positions)}" if self.positions is not None else ""
            named = f", name={self.name!r}" if self.name is not None else ""
            return f"rw.Steer(sae={self.sae!r}, feature={self.feature}, scale={self.scale!r}{at}{named})"
        return _repr_args(self, ("layer", "vector"))


@_register("patch")
@dataclass(frozen=True, repr=False)
class Patch(Intervention):
    """Activation patching: take the activation at ``hook`` from a run on ``source`` token ids.

    ``head`` restricts a ``attn.hook_z`` patch to one head; ``positions`` to some positions
    (all by default, in which case source and target must have the same length).
    ``interventions``: the source run's own (its activation is read with them applied).
    Build one from a run with :meth:`Patch.from_run`.
    """

    hook: str
    source: tuple[int, ...]
    head: int | None = None
    positions: tuple[int, ...] | None = None
    interventions: tuple[Intervention, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.hook, str):
            raise TypeError(f"hook must be a hook name (str), got {self.hook!r:.80}")
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
            positions = tuple(_int(p, "position") for p in _as_list(self.positions))
            if len(set(positions)) != len(positions):
                raise ValueError("Patch positions must be distinct")
            object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "interventions", as_tuple(self.interventions))

    @classmethod
    def from_run(cls, run: Any, hook: str, head: int | None = None, positions: Iterable[int] | None = None) -> Patch:
        """Patch ``hook`` from ``run`` (a :class:`repwidget.Run`, with its interventions) into later runs."""
        return cls(
            hook=hook, source=tuple(run.token_ids), head=head, positions=positions, interventions=run.interventions
        )

    @property
    def layer(self) -> int:
        return parse(self.hook)[0]

    @property
    def by_position(self) -> bool:
        return True  # a source value per position

    def label(self) -> str:
        where = f" head {self.head}" if self.head is not None else ""
        at = _label_positions(self.positions)
        source = f" (with {len(self.interventions)} intervention(s))" if self.interventions else ""
        return f"patch {self.hook}{where}{at} from {len(self.source)} tokens{source}"

    def check(self, model: Model, n_tokens: int) -> None:
        super().check(model, n_tokens)
        _check_index(self, "head", self.head, model.n_heads, "this model has heads")
        n_source = len(self.source)
        if self.positions is not None and len(self.positions) > n_tokens:
            raise ValueError(f"{_short(self)}: {len(self.positions)} positions, but this run has {n_tokens} tokens")
        if self.positions is None and n_source != n_tokens:
            raise ValueError(
                f"{_short(self)}: the source has {n_source} tokens and this run {n_tokens}; "
                "patch runs of the same length or pass positions=[...]"
            )
        for p in self.positions or ():
            if not 0 <= p < min(n_source, n_tokens):
                raise ValueError(f"{_short(self)}: position {p} is out of range 0..{min(n_source, n_tokens) - 1}")
        for iv in self.interventions:
            iv.check(model, n_source)

    def first_changed(self, ids: Sequence[int]) -> int:
        """A clean source computes the same activations as the run up to the first token where their ids differ:
        writing them there changes nothing."""
        own = super().first_changed(ids)
        if self.interventions:
            return own
        common = min(len(self.source), len(ids))
        shared = next((i for i in range(common) if self.source[i] != ids[i]), common)
        return max(own, shared)

    def edit(self, model: Model, n_tokens: int) -> Edit:
        source = model.source_activation(self.source, self.hook, self.interventions)  # [src_pos, ...] as captured
        source = source.reshape(source.shape[0], -1)
        positions = list(self.positions) if self.positions is not None else list(range(n_tokens))
        cols = slice(None) if self.head is None else _columns(self.head * model.d_head, model.d_head)
        return SetRows(positions, cols, source[positions][:, cols])

    def __repr__(self) -> str:
        return _repr_args(self, ("hook", "source"))


@_register("knockout")
@dataclass(frozen=True, repr=False)
class Knockout(Intervention):
    """Attention knockout: queries at ``query`` positions may not attend to keys at ``key`` positions, in
    ``head`` of ``layer`` (every head by default); the remaining attention of each query renormalises (the
    blocked scores are masked before the softmax). ``query=None`` means every query position."""

    layer: int
    head: int | None = None
    query: tuple[int, ...] | None = None
    key: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", _int(self.layer, "layer"))
        object.__setattr__(self, "head", _int(self.head, "head", optional=True))
        object.__setattr__(self, "query", _positions(self.query, "query"))
        key = _positions(self.key, "key")
        if key is None:
            raise ValueError("Knockout needs key positions (key=[...])")
        object.__setattr__(self, "key", key)

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.attn.hook_pattern"

    def label(self) -> str:
        who = f"head {self.layer}.{self.head}" if self.head is not None else f"layer {self.layer}"
        queries = "every query" if self.query is None else _label_positions(self.query).strip()
        keys = _label_positions(self.key).replace("position", "key").strip()
        return f"knock out {who}: {queries} \u2192 {keys}"

    def check(self, model: Model, n_tokens: int) -> None:
        if not 0 <= self.layer < model.n_layers:
            raise ValueError(
                f"{_short(self)}: layer {self.layer} is out of range; this model has layers 0..{model.n_layers - 1}"
            )
        _check_index(self, "head", self.head, model.n_heads, "this model has heads")
        _check_positions(self, self.query, n_tokens, "query positions")
        _check_positions(self, self.key, n_tokens, "key positions")
        if not getattr(model.executor, "interface", True):
            raise ValueError(f"{_short(self)}: this model's attention does not go through transformers' attention "
                             "interface, where knockouts are applied")  # fmt: skip
        blocked = set(self.key)
        for q in self.query if self.query is not None else range(n_tokens):
            visible = range(q + 1) if model.arch.causal else range(n_tokens)
            if all(k in blocked for k in visible):
                raise ValueError(f"{_short(self)}: query {q} could attend to no key at all")

    def knock(self, model: Model, n_tokens: int) -> tuple[slice, list[int], list[int]]:
        """``(heads, queries, keys)``: the attention scores this knockout removes."""
        heads = slice(None) if self.head is None else slice(self.head, self.head + 1)
        queries = list(range(n_tokens)) if self.query is None else list(self.query)
        return heads, queries, list(self.key)

    def edit(self, model: Model, n_tokens: int) -> Edit:
        raise TypeError("a knockout acts on attention scores, not on an activation: see Knockout.knock")

    def __repr__(self) -> str:
        return _repr_args(self, ("layer", "key"))


@_register("skip")
@dataclass(frozen=True, repr=False)
class Skip(Intervention):
    """Skip block ``layer``: its output is its input, so ``hook_resid_post`` equals ``hook_resid_pre`` there
    (the block computes nothing the rest of the model sees). How much each layer matters: the loss with
    its block bypassed."""

    layer: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", _int(self.layer, "layer"))

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.hook_resid_post"

    def label(self) -> str:
        return f"skip block {self.layer}"

    def bypass(self) -> int:
        """The block whose output the executor replaces by its input."""
        return self.layer

    def edit(self, model: Model, n_tokens: int) -> Edit:
        raise TypeError("a skip replaces a block's output by its input, not an activation: see Skip.bypass")

    def __repr__(self) -> str:
        return _repr_args(self, ("layer",))


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
