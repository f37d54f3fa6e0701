"""Ablate: zero (or set to reference statistics) a head, a neuron, an SAE feature, a direction or attention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..sae.model import SAE
from .base import (
    MODES,
    Intervention,
    _as_list,
    _at,
    _check_index,
    _check_positions,
    _check_reference,
    _columns,
    _floats,
    _int,
    _label_positions,
    _positions,
    _register,
    _repr_args,
    _sae_feature,
    _short,
)
from .edits import Edit, Project, SetRows, Splice

if TYPE_CHECKING:
    from ..model.model import Model


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
    ``Ablate(stage, channel=c)`` ablates a CNN's channel at ``stages.{stage}.hook_out`` (``positions``: pixels of
    that feature map, ``y * w + x``; the mean is over the reference images and pixels).
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
    channel: int | None = None

    kernel_only: ClassVar[tuple[str, ...]] = ("direction",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "head", _int(self.head, "head", optional=True))
        object.__setattr__(self, "neuron", _int(self.neuron, "neuron", optional=True))
        object.__setattr__(self, "channel", _int(self.channel, "channel", optional=True))
        object.__setattr__(self, "seed", _int(self.seed, "seed"))
        object.__setattr__(self, "positions", _positions(self.positions))
        if self.mode not in MODES:
            raise ValueError(f"Ablate mode must be one of {', '.join(MODES)}, got {self.mode!r:.40}")
        if self.sae is not None or self.feature is not None:
            if (
                self.head is not None
                or self.neuron is not None
                or self.channel is not None
                or len(_as_list(self.direction))
            ):
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
        given = [name for name in ("head", "neuron", "channel") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"Ablate takes a head, a neuron or a channel, not both {' and '.join(given)}")
        if len(_as_list(self.direction)):
            if self.head is not None or self.neuron is not None or self.channel is not None:
                raise ValueError("Ablate takes a direction, a head, a neuron or a channel, not several")
            direction = _floats(self.direction, "direction")
            if not any(direction):
                raise ValueError("direction is the zero vector; it has no direction to ablate")
            object.__setattr__(self, "direction", direction)
        else:
            object.__setattr__(self, "direction", ())

    @property
    def target(self) -> str:
        """What is ablated: ``"feature"``, ``"head"``, ``"neuron"``, ``"channel"``, ``"direction"`` or
        ``"attention"``."""
        if self.sae is not None:
            return "feature"
        if self.channel is not None:
            return "channel"
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
        if self.target == "channel":
            return f"stages.{self.layer}.hook_out"
        return f"blocks.{self.layer}.{site[self.target]}"

    def label(self) -> str:
        target = self.target
        at = _label_positions(self.positions)
        if target == "feature":
            return f"ablate feature {self.feature} of {self.sae.name}{at}"
        if target == "direction":
            return f"project out a direction at layer {self.layer} ({self.mode}){at}"
        what = {
            "head": f"head {self.layer}.{self.head}",
            "neuron": f"neuron {self.layer}.{self.neuron}",
            "channel": f"channel {self.layer}.{self.channel}",
        }
        return f"ablate {what.get(target, f'attention {self.layer}')} ({self.mode}){at}"

    def check(self, model: Model, n_tokens: int) -> None:
        if self.sae is not None:
            self.sae.check_fits(model)
        super().check(model, n_tokens)
        _check_index(self, "head", self.head, model.n_heads, "this model has heads")
        _check_index(self, "neuron", self.neuron, model.d_mlp, "the MLP has neurons")
        if self.channel is not None:
            _check_index(self, "channel", self.channel, model.channels(self.layer), "this stage has channels")
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
            "channel": lambda: _columns(self.channel, 1),
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
