"""Reruns of one base run in batches (what sweeps over heads, positions or patches do), planned here.

Each batch re-runs from the earliest block it edits (the blocks before reused from the base, shared by the batch).
On a causal model, sets of interventions that change nothing before some position are grouped by that prefix and
re-run only from there, on the KV cache of the base's prefix; :meth:`RerunBatch.stitch` puts the prefix's rows and
the reused blocks' captures back. Plans are whole when made: nothing writes their fields afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .. import hook_names
from ..interventions import ActivationEdit, Intervention
from ..run import Run
from .execute import first_tensor, replace_first
from .plan import Plan, Result, first_edited_layer, held, plan_batch, rerun_batch_size

if TYPE_CHECKING:
    from .model import Model

Sets = list[tuple[Intervention, ...]]


@dataclass(frozen=True)
class RerunBatch:
    """One batch of reruns of ``base``: which sets of interventions it runs (``indices``), its plan, and what its
    results take from ``base`` (blocks before ``start``; positions before ``prefix``)."""

    indices: list[int]
    plan: Plan
    base: Run
    names: list[str]
    start: int
    prefix: int

    def stitch(self, results: list[Result]) -> list[Result]:
        """Each result whole: the prefix's rows and the captures of the reused blocks taken from ``base``."""
        head, out = self.base.result, []
        for r in results:
            if self.prefix:
                final = (
                    None if r.final_hidden is None else torch.cat([head.final_hidden[: self.prefix], r.final_hidden])
                )
                logits = None if r.logits is None else torch.cat([head.logits[: self.prefix], r.logits])
                r = Result({}, [None] * self.base.model.n_layers, final, logits)
            if self.start:
                n_layers = self.base.model.n_layers
                reused = [h for h in self.names if hook_names.parse(h)[0] < self.start]
                r.cache.update({h: held(self.base, h, n_layers) for h in reused})
            out.append(r)
        return out


def reusable(model: Model, run: Run) -> bool:
    """Whether reruns of ``run`` may reuse its block outputs (this executor, the same weights, every block kept)."""
    return (
        model.executor.reuses_blocks
        and run.weights_version == model.weights_version()
        and all(o is not None for o in run.result.block_outputs)
    )


def iter_reruns(model: Model, base: Run, sets: Sets, names: list[str], batch_size: int | None) -> Iterator[tuple]:
    """``(indices, runs)`` for each batch of reruns of ``base`` as it is computed (see :func:`plan_reruns`): a caller
    that reduces each batch (a sweep's metric) holds one batch of runs at a time."""
    version = model.weights_version()
    for batch in plan_reruns(model, base, sets, names, batch_size):
        results = batch.stitch(model.executor.execute(batch.plan))
        yield (
            batch.indices,
            [
                Run(model, base.token_ids, sets[i], result, 0, version)
                for i, result in zip(batch.indices, results, strict=True)
            ],
        )


def plan_reruns(model: Model, base: Run, sets: Sets, names: list[str], batch_size: int | None) -> Iterator[RerunBatch]:
    """The batches re-running ``base`` once per set of interventions, grouped by prefix (one prefix's KV cache held
    at a time: a group's cache is computed when its first batch is planned)."""
    ids = base.token_ids
    reuse = reusable(model, base)
    suffix = reuse and suffix_reruns(model, base, sets, names)
    first = [min((iv.first_changed(ids) for iv in s), default=len(ids)) for s in sets]
    prefixes = [min(p, len(ids) - 1) if suffix else 0 for p in first]
    order = sorted(range(len(sets)), key=lambda i: (prefixes[i], first_edited_layer(sets[i], model.n_layers)))
    for prefix in dict.fromkeys(prefixes[i] for i in order):
        group = [i for i in order if prefixes[i] == prefix]
        past = prefix_cache(model, ids[:prefix]) if prefix else None
        size = batch_size or rerun_batch_size(model, names, len(ids), len(ids) - prefix)
        for chunk in (group[i : i + size] for i in range(0, len(group), size)):
            chosen = [sets[i] for i in chunk]
            start = min(first_edited_layer(s, model.n_layers) for s in chosen)
            missing = [hook_names.parse(h)[0] for h in names if held(base, h, model.n_layers) is None]
            start = min([start, base.clean_prefix, *missing])
            start = start if reuse else 0
            plan = _batch_plan(model, base, chosen, names, start, prefix, past)
            yield RerunBatch(chunk, plan, base, names, start, prefix)


def suffix_reruns(model: Model, base: Run, sets: Sets, names: list[str]) -> bool:
    """Whether reruns of ``base`` may compute only the positions after a prefix (on its KV cache): a causal model,
    an executor with a prefix cache, a clean base with its final state, no captures, activation edits only."""
    return (
        model.arch.causal
        and "prefix_cache" in model.executor.capabilities
        and not names
        and not base.interventions
        and (base.result.final_hidden is not None or base.result.logits is not None)
        and all(issubclass(iv.effect_type, ActivationEdit) for ivs in sets for iv in ivs)
    )


def prefix_cache(model: Model, ids: list[int]) -> object:
    """The KV cache of a clean pass over ``ids``."""
    plan = Plan(
        ids=torch.tensor([ids], device=model.device), capture=[], record=False,
        forward={"use_cache": True, model.cache_kwarg: None},
    )  # fmt: skip
    return model.executor.execute(plan)[0].past


def _batch_plan(model: Model, base: Run, sets: Sets, names: list[str], start: int, prefix: int, past: object) -> Plan:
    """One batch of reruns of ``base`` from block ``start`` (the blocks before reused), over positions ``prefix ..``
    only when ``prefix`` (on a copy of ``past``, the prefix's KV cache)."""
    batch = len(sets)
    settings: dict = {"lengths": None, "record": False}
    if prefix:
        cache = copy.deepcopy(past)
        cache.batch_repeat_interleave(batch)
        settings["forward"] = {"use_cache": True, model.cache_kwarg: cache}
    if start > 0:
        # views, but a copy of the one block `start` reads (a model may write to its input in place)
        outputs = base.result.block_outputs
        settings["start"] = start
        settings["reuse"] = [_expanded(o, batch, layer == start - 1, prefix) for layer, o in enumerate(outputs)]
    return plan_batch(model, [base.token_ids] * batch, sets, names, offset=prefix, **settings)


def _expanded(output: object, batch: int, copy: bool = False, prefix: int = 0) -> object:
    """A block's output for one sequence (from position ``prefix`` on), as the same output for ``batch`` copies of
    it (a view, or a copy)."""
    first = first_tensor(output)[:, prefix:]
    many = first.expand(batch, *first.shape[1:])
    return replace_first(output, many.contiguous() if copy else many)
