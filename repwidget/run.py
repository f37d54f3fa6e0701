"""A Run: one forward pass, immutable: tokens, logits and a cache addressed by hook names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from .hook_names import HookNameError

if TYPE_CHECKING:
    from .interventions import Intervention
    from .model.model import Model
    from .model.plan import Result


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
        result: Result,
        clean_prefix: int,
        weights_version: int,
    ) -> None:
        self._model = model
        self._token_ids = tuple(token_ids)
        self._interventions = interventions
        #: what the executor returned: the captures, the block outputs reruns reuse, the final hidden state
        self.result = result
        self._tokens: list[str] | None = None
        #: blocks ``0 .. clean_prefix-1`` computed exactly as in the clean run (reusable by reruns)
        self.clean_prefix = clean_prefix
        #: the model's :meth:`~repwidget.Model.weights_version` when this run was made
        self.weights_version = weights_version
        self._summaries: dict[tuple[int, int], tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
        self._patterns: dict[int, torch.Tensor] = {}  # the last patterns read but not captured (a few)

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
        """``[pos, vocab]`` logits (None for a model without an unembedding), computed on first use (in a pass where
        the model runs, for a model whose weights are on NDIF only)."""
        if self.result.logits is None and self.result.final_hidden is not None:
            self._current("logits")
            self.result.logits = self._model.unembed(self.result.final_hidden)
        elif self.result.logits is None and self._in_pass:
            self._current("logits")
            self.result.logits = self._model.logits_in_pass_of(self, range(len(self._token_ids)))
        return self.result.logits

    def _current(self, what: str) -> None:
        """Refuse to compute ``what`` of this run with weights other than those it was made with (a mix of two
        models); what was computed before the weights changed is still read."""
        if self.weights_version != self._model.weights_version():
            raise ValueError(
                f"the model's weights changed since this run was made, so its {what} cannot be computed now (they "
                "would mix both weights); run it again: model.run(run.token_ids, run.interventions)"
            )

    @property
    def _in_pass(self) -> bool:
        """Logits of this run are computed in a pass (no final hidden state here, no local weights)."""
        return self.result.final_hidden is None and self._model.weightless and self._model.has_unembed

    def logits_at(self, positions: int | Iterable[int]) -> torch.Tensor | None:
        """Logits at some positions only, ``[len(positions), vocab]`` (or ``[vocab]`` for one int)."""
        if self.result.logits is None and (self.result.final_hidden is not None or self._in_pass):
            self._current("logits")
        if self.result.logits is None and self._in_pass:
            every = range(len(self._token_ids))  # negative positions count from the end, as when indexing
            if isinstance(positions, int):
                return self._model.logits_in_pass_of(self, [every[positions]])[0]
            rows = list(every[positions]) if isinstance(positions, slice) else [every[p] for p in positions]
            return self._model.logits_in_pass_of(self, rows)
        if self.result.logits is not None or self.result.final_hidden is None:
            return None if self.logits is None else self.logits[positions]
        return self._model.unembed(self.result.final_hidden[positions])

    @staticmethod
    def logits_of(runs: Sequence[Run], position: int) -> torch.Tensor:
        """``[len(runs), vocab]``: each run's logits at ``position``, unembedded together (one matrix product, not
        one pass over the unembedding per run: what sweeps of many reruns read)."""
        lazy = [r for r in runs if r.result.logits is None and r.result.final_hidden is not None]
        if not runs or len(lazy) < len(runs) or any(r.model is not runs[0].model for r in runs):
            return torch.stack([r.logits_at(position) for r in runs])
        return runs[0]._model.unembed(torch.stack([r.result.final_hidden[position] for r in runs]))

    def __getitem__(self, name: str) -> torch.Tensor:
        cache = self.result.cache
        try:
            return cache[name]
        except KeyError:
            pass
        layer, template = self._model.check_hook(name)  # unknown names list the valid ones
        if template == "attn.hook_pattern":
            return self.pattern(layer)
        captured = ", ".join(cache) if len(cache) <= 6 else f"{len(cache)} hooks"
        raise HookNameError(
            f"{name!r} was not captured in this run (captured: {captured or 'nothing'}). "
            f"Pass capture=[{name!r}] (globs such as 'blocks.*.attn.hook_z' work) to Model.run or Run.rerun."
        )

    def pattern(self, layer: int) -> torch.Tensor:
        """``[head, query, key]``: the attention probabilities of ``layer``, as captured, or else computed now by
        running the input again from that block (the blocks before reused); the last few are kept."""
        name = f"blocks.{layer}.attn.hook_pattern"
        if name in self.result.cache:
            return self.result.cache[name]
        if layer not in self._patterns:
            self._current("attention patterns")
            self._patterns[layer] = self._model.replay(self, layer, {}, capture=[name])[name]
            while len(self._patterns) > 2:
                self._patterns.pop(next(iter(self._patterns)))
        return self._patterns[layer]

    def summary(self, side: int = 24) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every layer's attention in brief: each head's pattern max-pooled to at most ``side`` x ``side``
        (``[layer, head, s, s]``) and the head scores ``{name: [layer, head]}`` of
        :func:`repwidget.analyses.head_scores`, computed a block of query rows at a time (never a whole pattern)."""
        from .model.attention import Summary, feed

        missing = [layer for layer in range(self._model.n_layers) if (layer, side) not in self._summaries]
        if missing:
            sinks = {layer: Summary(side, self.token_ids) for layer in missing}
            captured = [f"blocks.{layer}.attn.hook_pattern" in self.result.cache for layer in missing]
            if all(captured):  # the patterns are here: reduce them
                for layer, sink in sinks.items():
                    feed(sink, self.result.cache[f"blocks.{layer}.attn.hook_pattern"][None])
            else:
                self._current("attention summaries")
                self._model.replay(self, min(missing), sinks)
            self._take_summaries(sinks, side)
        layers = range(self._model.n_layers)
        thumbs = torch.stack([self._summaries[(layer, side)][0] for layer in layers])
        names = self._summaries[(0, side)][1]
        return thumbs, {k: torch.stack([self._summaries[(layer, side)][1][k] for layer in layers]) for k in names}

    def _take_summaries(self, sinks: dict, side: int | None) -> None:
        for layer, sink in sinks.items():
            if sink.filled:
                self._summaries[(layer, side)] = sink.result()

    def _inherit_summaries(self, base: Run, start: int) -> None:
        """A rerun's blocks before ``start`` are the base's: so are their attention summaries."""
        self._summaries.update({key: value for key, value in base._summaries.items() if key[0] < start})

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` was captured (patterns computed when read are not)."""
        return name in self.result.cache

    def __iter__(self) -> Iterator[str]:
        return iter(self.result.cache)

    def __len__(self) -> int:
        return len(self.result.cache)

    def rerun(self, interventions=(), capture=None) -> Run:
        """The same input re-run with ``interventions``, recomputing only from the earliest intervened block."""
        return self._model.rerun(self, interventions, capture)

    __eq__ = object.__eq__  # Mapping would compare tensors
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        ivs = f", interventions={list(self._interventions)!r}" if self._interventions else ""
        return f"<rw.Run of {len(self._token_ids)} tokens, {len(self)} hooks captured{ivs}>"
