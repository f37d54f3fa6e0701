"""Steer: add a vector (or an SAE feature's decoder vector) to the residual stream."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .base import (
    Intervention,
    _as_list,
    _at,
    _check_positions,
    _floats,
    _int,
    _label_positions,
    _positions,
    _register,
    _repr_args,
    _sae_feature,
    _short,
)
from .edits import AddRows, Edit

if TYPE_CHECKING:
    from ..model.model import Model


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
