"""A Run: one forward pass, immutable: tokens, logits and a cache addressed by hook names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import torch

from .hook_names import HookNameError, parse

if TYPE_CHECKING:
    from .interventions import Intervention
    from .model.model import Model


class Run(Mapping[str, torch.Tensor]):
    """The result of :meth:`repwidget.Model.run`. Index it by hook name: ``run["blocks.0.hook_resid_post"]``.

    Tensors have no batch axis: residual streams ``[pos, d_model]``, patterns ``[head, query, key]``,
    ``attn.hook_z`` ``[pos, head, d_head]``, ``mlp.hook_post`` ``[pos, d_mlp]``.
    """

    def __init__(
        self,
        model: Model,
        token_ids: list[int],
        interventions: tuple[Intervention, ...],
        cache: dict[str, torch.Tensor],
        block_outputs: list[object | None],
        final_hidden: torch.Tensor | None,
        logits: torch.Tensor | None,
        clean_prefix: int,
    ) -> None:
        self._model = model
        self._token_ids = tuple(token_ids)
        self._interventions = interventions
        self._cache = cache
        self._block_outputs = block_outputs
        self._final_hidden = final_hidden
        self._logits = logits
        self._tokens: list[str] | None = None
        #: blocks ``0 .. clean_prefix-1`` computed exactly as in the clean run (reusable by reruns)
        self.clean_prefix = clean_prefix

    @property
    def model(self) -> Model:
        return self._model

    @property
    def token_ids(self) -> list[int]:
        return list(self._token_ids)

    @property
    def tokens(self) -> list[str]:
        """Token strings as the tokenizer decodes them one by one (their ids without a tokenizer)."""
        if self._tokens is None:
            self._tokens = self._model.to_str_tokens(self._token_ids)
        return list(self._tokens)

    @property
    def interventions(self) -> tuple[Intervention, ...]:
        return self._interventions

    @property
    def logits(self) -> torch.Tensor | None:
        """``[pos, vocab]`` logits (None for a model without an unembedding), computed on first use."""
        if self._logits is None and self._final_hidden is not None:
            self._logits = self._model._unembed(self._final_hidden)
        return self._logits

    def logits_at(self, positions: int | Iterable[int]) -> torch.Tensor | None:
        """Logits at some positions only, ``[len(positions), vocab]`` (or ``[vocab]`` for one int)."""
        if self._logits is not None or self._final_hidden is None:
            return None if self.logits is None else self.logits[positions]
        return self._model._unembed(self._final_hidden[positions])

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._cache[name]
        except KeyError:
            pass
        parse(name, self._model.n_layers)  # unknown names list the valid ones
        captured = ", ".join(self._cache) if len(self._cache) <= 6 else f"{len(self._cache)} hooks"
        raise HookNameError(
            f"{name!r} was not captured in this run (captured: {captured or 'nothing'}). "
            f"Pass capture=[{name!r}] (globs such as 'blocks.*.attn.hook_z' work) to Model.run or Run.rerun."
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    def rerun(self, interventions=(), capture=None) -> Run:
        """The same input re-run with ``interventions``, recomputing only from the earliest intervened block."""
        return self._model._execute(self._token_ids, interventions, capture, base=self)

    __eq__ = object.__eq__  # Mapping would compare tensors
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        ivs = f", interventions={list(self._interventions)!r}" if self._interventions else ""
        return f"<rw.Run of {len(self._token_ids)} tokens, {len(self._cache)} hooks captured{ivs}>"
