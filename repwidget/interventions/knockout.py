"""Knockout: attention scores blocked before the softmax (queries may not attend to some keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import (
    Intervention,
    _check_index,
    _check_positions,
    _int,
    _label_positions,
    _positions,
    _register,
    _repr_args,
    _short,
)
from .edits import Edit, ScoreMask

if TYPE_CHECKING:
    from ..model.model import Model


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
        if not model.executor.interface:
            raise ValueError(f"{_short(self)}: this model's attention does not go through transformers' attention "
                             "interface, where knockouts are applied")  # fmt: skip
        blocked = set(self.key)
        for q in self.query if self.query is not None else range(n_tokens):
            visible = range(q + 1) if model.arch.causal else range(n_tokens)
            if all(k in blocked for k in visible):
                raise ValueError(f"{_short(self)}: query {q} could attend to no key at all")

    effect_type: ClassVar[type] = ScoreMask

    def effect(self, model: Model, n_tokens: int) -> ScoreMask:
        """The attention scores this knockout removes, in one sequence of ``n_tokens``."""
        heads = slice(None) if self.head is None else slice(self.head, self.head + 1)
        queries = list(range(n_tokens)) if self.query is None else list(self.query)
        return ScoreMask(self.layer, heads, queries, list(self.key))

    def edit(self, model: Model, n_tokens: int) -> Edit:
        raise TypeError("a knockout acts on attention scores, not on an activation: see Knockout.effect")

    def __repr__(self) -> str:
        return _repr_args(self, ("layer", "key"))
