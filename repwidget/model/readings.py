"""Passes that read one thing of a run: its attention again from a block (sinks), its lens, logits rows or
predictions reduced where the model runs, or activations and logits in the autograd graph. Each is planned whole
(:func:`~repwidget.model.plan.plan_pass`) and run by the model's executor."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch

from ..interventions import as_tuple
from . import attention
from .plan import Plan, batches, plan_batch, plan_pass
from .reruns import reusable

if TYPE_CHECKING:
    from ..run import Run
    from .model import Model
    from .tokens import TokensLike


def replay(model: Model, run: Run, layer: int, sinks: dict[int, attention.Sink], capture=()) -> dict[str, torch.Tensor]:
    """``run``'s input again from block ``layer`` (the blocks before reused) until every sink and capture is
    filled; what the captures took."""
    names = model.expand(list(capture)) if capture else []
    reuse = {"start": layer, "reuse": run.result.block_outputs} if reusable(model, run) and layer > 0 else {}
    plan = plan_pass(
        model, run.token_ids, run.interventions, names, None, sinks=sinks, stop_early=True, record=False, **reuse
    )
    return model.executor.execute(plan)[0].cache


def captures(model: Model, ids: list[list[int]], names: list[str], batch_size: int | None, progress: bool):
    """``(index, {hook: activation})`` for every input, a batch at a time, each pass ending once its hooks are read."""
    if not names:
        raise ValueError("capture needs at least one hook name")
    for batch in batches(model, ids, names, batch_size, "reading activations", progress):
        plan = plan_batch(model, [ids[i] for i in batch], (), names, stop_early=True, record=False)
        for i, result in zip(batch, model.executor.execute(plan), strict=True):
            yield i, result.cache


def plan_of(model: Model, run: Run) -> Plan:
    """A pass of ``run``'s input and interventions that keeps nothing (what the executor reduces in it comes back)."""
    return plan_pass(model, run.token_ids, run.interventions, [], None, record=False)


def compare_in_pass(model: Model, clean: Run, run: Run, positions: Sequence[int], k: int) -> dict[str, torch.Tensor]:
    """Top-``k`` predictions of ``clean`` and ``run`` (the same input) at ``positions``, reduced in one pass of both
    (see ``Model.compare_in_pass``)."""
    ids = run.token_ids
    positions = [range(len(ids))[p] for p in positions]  # negative ones counted from the end
    following = torch.tensor([ids[p + 1] if p + 1 < len(ids) else 0 for p in positions])
    sets = [as_tuple(clean.interventions)]
    current = as_tuple(run.interventions)
    if len(current) != len(sets[0]) or any(a is not b for a, b in zip(current, sets[0], strict=True)):
        sets.append(current)  # else one sequence is both
    plan = plan_batch(model, [ids] * len(sets), sets, [], lengths=None, record=False)
    out = model.executor.compare(plan, list(positions), min(k, model.vocab_size), following)
    last = torch.tensor([p + 1 >= len(ids) for p in positions])
    for name in ("clean_loss", "loss"):
        out[name] = out[name].masked_fill(last, float("nan"))
    return out


def with_graph(
    model: Model, text_or_ids: TokensLike, hooks: str | Iterable[str], position: int | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One pass with autograd on: ``({hook: activation}, logits)``, both in the graph (see ``Model.with_graph``)."""
    if model.arch.unembed is None:
        raise ValueError("this model has no unembedding: there is no logit to take gradients of")
    ids = model.to_ids(text_or_ids)
    plan = plan_pass(model, ids, (), model.expand(hooks), None, grad=True, record=False)
    with torch.enable_grad():  # whatever the caller's grad mode: the graph is what this is for
        result = model.executor.execute(plan)[0]
        if result.logits is not None:
            return result.cache, result.logits if position is None else result.logits[position]
        rows = result.final_hidden if position is None else result.final_hidden[position]
        return result.cache, model.executor.unembed_in_graph(rows)
