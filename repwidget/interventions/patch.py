"""Patch: activation patching, the activation at a hook taken from a run on other token ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..hook_names import HookNameError, parse_any
from .base import (
    Intervention,
    _as_list,
    _check_index,
    _columns,
    _int,
    _label_positions,
    _register,
    _repr_args,
    _short,
    as_tuple,
)
from .edits import Edit, SetRows

if TYPE_CHECKING:
    from ..model.model import Model


@_register("patch")
@dataclass(frozen=True, repr=False)
class Patch(Intervention):
    """Activation patching: take the activation at ``hook`` from a run on ``source`` token ids (of a vision
    model: ``source`` names an image it ran, ``Patch.from_run(image_run, hook)``).

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
            template = parse_any(self.hook)[1]
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
        return parse_any(self.hook)[0]

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
        source = model.patch_sources.activation(self.source, self.hook, self.interventions)  # [src_pos, ...]
        source = source.reshape(source.shape[0], -1)
        positions = list(self.positions) if self.positions is not None else list(range(n_tokens))
        cols = slice(None) if self.head is None else _columns(self.head * model.d_head, model.d_head)
        return SetRows(positions, cols, source[positions][:, cols])

    def __repr__(self) -> str:
        return _repr_args(self, ("hook", "source"))
