"""What an intervention does to a pass (:meth:`Intervention.effect`): an edit of the activation at its hook, a
mask of attention scores (:class:`ScoreMask`) or a bypassed block (:class:`Bypass`). The planner dispatches on the
effect's type in one place (``model/plan.py``); executors consume the edits without importing the kinds.

An edit is a function of the activation at the hook, ``[batch, pos, width]`` (``attn.hook_z`` flattened over
heads), returning the edited activation; any executor applies it where it reads the hook. The four primitives
below are data an executor may also compile (the nnsight backend does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..placement import like

Edit = Callable[[torch.Tensor], torch.Tensor]  # [batch, pos, width] -> same shape


class ActivationEdit:
    """The effect most kinds have: an :data:`Edit` of the activation at the intervention's hook (any executor)."""

    #: the executor capability this effect needs (None: every executor applies edits)
    capability: ClassVar[str | None] = None


@dataclass(frozen=True)
class ScoreMask:
    """Attention scores blocked before the softmax in block ``layer``: ``heads``, ``queries`` and ``keys`` of one
    sequence (an attention knockout)."""

    capability: ClassVar[str | None] = "knockout"
    #: the one-line refusal of a backend without the capability (``{backend}``: its name)
    refusal: ClassVar[str] = (
        "attention knockouts act inside the attention function, which the {backend} backend does not reach; "
        "use the local backend (rw.load(model)) or ablate the head (rw.Ablate)"
    )

    layer: int
    heads: slice
    queries: list[int]
    keys: list[int]

    @property
    def spec(self) -> tuple[slice, list[int], list[int]]:
        """``(heads, queries, keys)``, as ``Plan.knockouts`` holds it."""
        return self.heads, self.queries, self.keys


@dataclass(frozen=True)
class Bypass:
    """Block ``layer``'s output replaced by its input (a skipped block)."""

    capability: ClassVar[str | None] = "bypass"
    refusal: ClassVar[str] = (
        "skipping a block is not compiled for the {backend} backend yet; use the local backend (rw.load(model))"
    )

    layer: int


@dataclass(frozen=True, eq=False)
class SetRows(ActivationEdit):
    """The edit ``x[:, at, cols] = value`` (zero when ``value`` is None; ``value`` broadcasts over the batch)."""

    at: Any  # a slice or a list of positions
    cols: slice
    value: torch.Tensor | None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x[:, self.at, self.cols] = 0 if self.value is None else like(self.value, x)
        return x


@dataclass(frozen=True, eq=False)
class AddRows(ActivationEdit):
    """The edit ``x[:, at] += delta``."""

    at: Any
    delta: torch.Tensor  # [width]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.at == slice(None):
            return x + like(self.delta, x)
        x[:, self.at] = x[:, self.at] + like(self.delta, x)
        return x


@dataclass(frozen=True, eq=False)
class Project(ActivationEdit):
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
class Splice(ActivationEdit):
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
