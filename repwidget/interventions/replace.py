"""Replace: the activation at a hook set to given values, one row per position (a transcoder's MLP output, a
reconstruction, anything computed outside the pass)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from ..hook_names import HookNameError, parse
from .base import (
    Intervention,
    _as_list,
    _check_positions,
    _floats,
    _label_positions,
    _positions,
    _register,
    _repr_args,
    _short,
)
from .edits import Edit, SetRows

if TYPE_CHECKING:
    from ..model.model import Model


@_register("replace")
@dataclass(frozen=True, repr=False)
class Replace(Intervention):
    """Set the activation at ``hook`` to ``values``: one row per position (``[n_tokens, width]``, or one row per
    entry of ``positions``), the hook's width each (``attn.hook_z`` flattened over heads).

    ``Replace("blocks.2.hook_mlp_out", transcoder(run["blocks.2.mlp.hook_in"]))`` puts a transcoder in place of
    MLP 2 for that prompt."""

    hook: str
    values: tuple[tuple[float, ...], ...]
    positions: tuple[int, ...] | None = None

    kernel_only: ClassVar[tuple[str, ...]] = ("values",)

    def __post_init__(self) -> None:
        if not isinstance(self.hook, str):
            raise TypeError(f"hook must be a hook name (str), got {self.hook!r:.80}")
        try:
            template = parse(self.hook)[1]
        except HookNameError as e:
            raise ValueError(str(e)) from None
        if template == "attn.hook_pattern":
            raise ValueError("attention patterns are read-only; replace blocks.{l}.attn.hook_z instead")
        rows = self.values
        if isinstance(rows, torch.Tensor):
            if rows.dim() < 2:
                raise ValueError(f"Replace values must be [positions, width], got shape {tuple(rows.shape)}")
            rows = rows.detach().float().cpu().reshape(rows.shape[0], -1).tolist()
        rows = list(rows) if isinstance(rows, (list, tuple)) else _as_list(rows)
        values = tuple(_floats(row, f"values row {i}") for i, row in enumerate(rows))
        if not values:
            raise ValueError("Replace values must hold at least one row")
        if len({len(row) for row in values}) != 1:
            raise ValueError("Replace values must be rows of one width")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "positions", _positions(self.positions))
        if self.positions is not None and len(self.positions) != len(values):
            raise ValueError(f"Replace has {len(values)} rows of values for {len(self.positions)} positions")

    @property
    def layer(self) -> int:
        return parse(self.hook)[0]

    @property
    def by_position(self) -> bool:
        return True  # a value per position

    def label(self) -> str:
        return f"replace {self.hook}{_label_positions(self.positions)}"

    def check(self, model: Model, n_tokens: int) -> None:
        super().check(model, n_tokens)
        width = model.hook_width(self.hook)
        if len(self.values[0]) != width:
            raise ValueError(f"{_short(self)}: values are {len(self.values[0])} wide, {self.hook} is {width} wide")
        if self.positions is None and len(self.values) != n_tokens:
            raise ValueError(
                f"{_short(self)}: {len(self.values)} rows of values for a run of {n_tokens} tokens; give one row "
                "per token or positions=[...]"
            )
        _check_positions(self, self.positions, n_tokens)

    def edit(self, model: Model, n_tokens: int) -> Edit:
        at = list(self.positions) if self.positions is not None else slice(None)
        return SetRows(at, slice(None), torch.tensor(self.values, dtype=torch.float32))

    def __repr__(self) -> str:
        return _repr_args(self, ("hook", "values"))
