"""Skip: a block bypassed (its output is its input)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import Intervention, _int, _register, _repr_args
from .edits import Bypass, Edit

if TYPE_CHECKING:
    from ..model.model import Model


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

    effect_type: ClassVar[type] = Bypass

    def effect(self, model: Model, n_tokens: int) -> Bypass:
        """The block whose output the executor replaces by its input."""
        return Bypass(self.layer)

    def edit(self, model: Model, n_tokens: int) -> Edit:
        raise TypeError("a skip replaces a block's output by its input, not an activation: see Skip.effect")

    def __repr__(self) -> str:
        return _repr_args(self, ("layer",))
