"""Planning a pass: what it captures, which edits go where, which blocks a rerun may reuse, and the budget.

A :class:`Plan` says what to compute; an executor (``executor.py``) computes it and returns a
:class:`Result`. Nothing here runs the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import torch

from .. import hook_names
from ..interventions import Bypass, Edit, Intervention, ScoreMask
from ..options import options
from .attention import Sink
from .errors import UnsupportedOnBackendError

if TYPE_CHECKING:
    from .executor import Executor
    from .model import Model


class CaptureBudgetError(ValueError):
    """A run would capture more than ``rw.options.max_capture_bytes``; raised before anything is allocated."""


@dataclass
class EditStep:
    """One intervention's edit of one hook: its label (for errors) and its edit of each sequence of the batch
    (None for a sequence it does not apply to)."""

    label: str
    edits: list[Edit | None]


@dataclass
class Plan:
    """What one pass computes: the input, hooks to capture, edits per hook, attention sinks, first block to run.

    A batch holds sequences of different lengths, padded on the right (or the left, ``left``); each edit
    and capture sees its sequence alone, exactly as in a run of that sequence by itself. A plan is whole when
    planned (:func:`plan_batch`, :func:`plan_pass` take every field as a keyword): nothing writes its fields after.
    """

    ids: torch.Tensor  # [batch, pos]
    capture: list[str]
    edits: dict[str, list[EditStep]] = field(default_factory=dict)
    start: int = 0  # blocks before it return ``reuse`` outputs instead of computing
    reuse: list[object] | None = None
    stop_early: bool = False  # end the pass as soon as everything in ``capture`` is captured
    lengths: list[int] | None = None  # real tokens of each sequence (None: the whole row)
    left: bool = False  # padding on the left
    #: attention sinks by layer (the first sequence's probabilities, never held whole)
    sinks: dict[int, Sink] = field(default_factory=dict)
    #: attention scores blocked before the softmax, by layer: for each sequence, ``(heads, queries, keys)``
    knockouts: dict[int, list[list[tuple]]] = field(default_factory=dict)
    #: blocks whose output is replaced by their input, by layer: whether each sequence skips it
    skips: dict[int, list[bool]] = field(default_factory=dict)
    #: keep each block's output (reruns reuse them; a one-sequence pass only)
    record: bool = True
    #: build the autograd graph: captures (and logits) keep it, for gradients of a metric with respect to them
    grad: bool = False
    #: keyword arguments for the model's forward over the executor's own (a generation step's KV cache)
    forward: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.ids.shape[0]

    def span(self, i: int) -> slice:
        """Where sequence ``i``'s real tokens are in its padded row."""
        width = self.ids.shape[1]
        n = width if self.lengths is None else self.lengths[i]
        return slice(width - n, width) if self.left else slice(0, n)


@dataclass
class Result:
    """What a pass leaves for one sequence: the captures by hook name, and what reruns and lazy logits need."""

    cache: dict[str, torch.Tensor]
    block_outputs: list[object | None]
    final_hidden: torch.Tensor | None  # [pos, d_model], the unembedding's input (lazy logits)
    logits: torch.Tensor | None  # [pos, vocab] when computed in the pass
    past: object = None  # the model's KV cache after the pass, when the plan asked for one (``use_cache``)


class Reusable(Protocol):
    """What a rerun reuses of an earlier run (a :class:`repwidget.Run` is one)."""

    clean_prefix: int
    result: Result


def plan_pass(
    model: Model,
    ids: Sequence[int],
    interventions: tuple[Intervention, ...],
    capture: list[str],
    base: Reusable | None = None,
    **settings: Any,
) -> Plan:
    """Check ``interventions`` and the budget, build the edits, and choose the blocks a rerun can reuse
    (``settings``: other :class:`Plan` fields, e.g. ``record=False``)."""
    if base is not None:
        # reuse the base's blocks before the first edit, if it has every capture they need
        start = min(first_edited_layer(interventions, model.n_layers), base.clean_prefix)
        missing = [hook_names.parse(h, model.n_layers)[0] for h in capture if held(base, h, model.n_layers) is None]
        start = min([start, *missing])
        if start > 0:
            settings = {"start": start, "reuse": base.result.block_outputs, **settings}
    return plan_batch(model, [list(ids)], interventions, capture, lengths=None, **settings)  # one sequence: no padding


def plan_batch(
    model: Model,
    ids: list[list[int]],
    interventions: tuple[Intervention, ...] | list[tuple[Intervention, ...]],
    capture: list[str],
    left: bool = False,
    offset: int = 0,
    **settings: Any,
) -> Plan:
    """A plan for several sequences at once: every intervention checked and built for each sequence alone.

    ``interventions`` apply to every sequence, or (a list with one tuple per sequence) each to its own.
    ``offset``: the pass computes positions ``offset ..`` only (the rest in a KV cache; sequences of one length).
    ``settings``: other :class:`Plan` fields (``record``, ``start``, ``reuse``, ``forward``, ...), set as planned.
    """
    lengths = [len(x) for x in ids]
    sets = interventions if isinstance(interventions, list) else [interventions] * len(ids)
    if len(sets) != len(ids):
        raise ValueError(f"{len(sets)} sets of interventions for {len(ids)} sequences")
    checked: set[tuple[int, int]] = set()
    for n, ivs in zip(lengths, sets, strict=True):
        for iv in ivs:
            if (id(iv), n) not in checked:
                effect = iv.effect_type  # kinds an executor cannot run, refused before any pass
                if effect.capability is not None:
                    why = effect.refusal.format(backend=model.executor.name)
                    require(model.executor, effect.capability, f"{iv.label()}: {why}")
                iv.check(model, n)
                checked.add((id(iv), n))
    check_budget(model, capture, max(lengths), batch=len(ids))
    if model.reference is not None:
        model.reference.prepare([iv.hook for ivs in sets for iv in ivs if getattr(iv, "mode", "zero") != "zero"])
    width = max(lengths)
    pad = model.pad_id
    rows = [([pad] * (width - len(x)) + x) if left else (x + [pad] * (width - len(x))) for x in ids]
    if offset and (left or len(set(lengths)) > 1):
        raise ValueError("a pass from an offset takes sequences of one length, unpadded")
    rows = [x[offset:] for x in rows]
    plan = Plan(ids=torch.tensor(rows, device=model.device), capture=capture, lengths=lengths, left=left)
    built: dict[tuple[int, int], Any] = {}
    order = list(dict.fromkeys(iv for ivs in sets for iv in ivs))  # each distinct intervention once, in order
    for iv in order:
        effects = []  # this intervention's effect on each sequence (None: not in that sequence's set)
        for n, ivs in zip(lengths, sets, strict=True):
            if iv in ivs and (id(iv), n) not in built:
                built[(id(iv), n)] = iv.effect(model, n)
            effects.append(built[(id(iv), n)] if iv in ivs else None)
        _place(plan, iv, effects, offset)
    return replace(plan, **{"record": len(ids) == 1, **settings})


def _place(plan: Plan, iv: Intervention, effects: list, offset: int) -> None:
    """Put one intervention's effects into ``plan``: the one place the kinds of effect are told apart."""
    n = plan.ids.shape[1] + offset
    match next(e for e in effects if e is not None):
        case Bypass(layer=layer):  # replaces a block's output, not an activation
            rows = plan.skips.setdefault(layer, [False] * plan.batch)
            for i, effect in enumerate(effects):
                rows[i] = rows[i] or effect is not None
        case ScoreMask(layer=layer):  # acts on attention scores, not on an activation
            per_sequence = plan.knockouts.setdefault(layer, [[] for _ in effects])
            for i, effect in enumerate(effects):
                if effect is not None:
                    per_sequence[i].append(effect.spec)
        case _:  # an edit of the activation at the intervention's hook
            windowed = {id(e): window(iv, e, offset, n - offset, n) if offset else e for e in effects if e is not None}
            edits = [None if e is None else windowed[id(e)] for e in effects]
            plan.edits.setdefault(iv.hook, []).append(EditStep(iv.label(), edits))


def require(executor: Executor, capability: str, why: str) -> None:
    """Refuse what ``executor`` cannot do when the pass is planned, before it runs: ``why`` is the one line."""
    if capability not in executor.capabilities:
        raise UnsupportedOnBackendError(why)


@dataclass
class StepEdits:
    """Interventions' edits built once for a generation of up to ``n_tokens`` tokens; :meth:`plan` makes the plan
    of each step (the new tokens only, at ``offset``, with the KV cache ``past``)."""

    model: Model
    n_tokens: int
    edits: list[tuple[Intervention, Edit]]
    cache_kwarg: str = "past_key_values"  # the forward's name for its KV cache

    def plan(self, ids: Sequence[int], offset: int, past: object) -> Plan:
        plan = Plan(
            ids=torch.tensor([list(ids)], device=self.model.device),
            capture=[],
            record=False,
            forward={"use_cache": True, self.cache_kwarg: past},
        )
        for iv, edit in self.edits:
            windowed = window(iv, edit, offset, len(ids), self.n_tokens)
            if windowed is not None:
                plan.edits.setdefault(iv.hook, []).append(EditStep(iv.label(), [windowed]))
        return plan


def plan_steps(model: Model, interventions: tuple[Intervention, ...], n_tokens: int) -> StepEdits:
    """Check ``interventions`` for a sequence of ``n_tokens`` and build their edits once, for every step."""
    for iv in interventions:
        if iv.effect_type is ScoreMask:
            raise ValueError(f"{iv.label()}: knockouts do not apply to generation yet; ablate the head instead")
        iv.check(model, n_tokens)
    if model.reference is not None:
        model.reference.prepare([iv.hook for iv in interventions if getattr(iv, "mode", "zero") != "zero"])
    edits = [(iv, iv.edit(model, n_tokens)) for iv in interventions]
    return StepEdits(model, n_tokens, edits, model.cache_kwarg)


def window(iv: Intervention, edit: Edit, offset: int, n: int, n_tokens: int) -> Edit | None:
    """``edit`` (built for sequences of ``n_tokens``) applied to positions ``offset .. offset + n`` alone; None
    where it changes none of them. Edits are row-wise, so a position-dependent one is applied to those rows at
    their own positions in a buffer of ``n_tokens`` rows (the others are not read back)."""
    if not iv.by_position:
        return edit
    positions = getattr(iv, "positions", None)
    if positions is not None and not any(offset <= p < offset + n for p in positions):
        return None

    def shifted(x: torch.Tensor) -> torch.Tensor:
        full = x.new_zeros((x.shape[0], n_tokens, *x.shape[2:]))
        full[:, offset : offset + n] = x
        return edit(full)[:, offset : offset + n]

    return shifted


def first_edited_layer(interventions: tuple[Intervention, ...], n_layers: int) -> int:
    """The earliest block an intervention edits (``n_layers`` when none does)."""
    return min((iv.layer for iv in interventions), default=n_layers)


def stitch(plan: Plan, result: Result, base: Reusable | None, n_layers: int) -> Result:
    """A rerun's result with the reused blocks' captures and outputs taken from ``base``."""
    if not plan.start or base is None:
        return result
    layer_of = {h: hook_names.parse(h, n_layers)[0] for h in plan.capture}
    cache = {h: held(base, h, n_layers) if layer_of[h] < plan.start else result.cache[h] for h in plan.capture}
    outputs = [*base.result.block_outputs[: plan.start], *result.block_outputs[plan.start :]]
    return Result(cache, outputs, result.final_hidden, result.logits)


def held(base: Reusable, name: str, n_layers: int) -> torch.Tensor | None:
    """``base``'s capture at ``name``, or else the same tensor under another name (block ``l``'s input,
    ``hook_resid_pre``, is block ``l - 1``'s output, ``hook_resid_post``); None if it has neither."""
    cache = base.result.cache
    if name in cache:
        return cache[name]
    layer, template = hook_names.parse(name, n_layers)
    return cache.get(f"blocks.{layer - 1}.hook_resid_post") if template == "hook_resid_pre" and layer else None


def pass_bytes(model: Model, names: list[str], n: int, batch: int = 1) -> int:
    """What one pass over ``batch`` sequences of ``n`` tokens holds and allocates at its peak: the captures,
    the block outputs reruns reuse, logits computed in the pass, and the largest transient of one layer (its
    attention probabilities where the pass reads them, its MLP's activations)."""
    item = model.dtype.itemsize
    arch = model.arch
    held = sum(model.hook_width(h, n) for h in names) * n * item
    held += arch.n_layers * n * arch.d_model * item  # block outputs (kept for reruns)
    if not arch.plain_logits and arch.unembed is not None:
        held += n * model.vocab_size * 4
    patterns = any(h.endswith("attn.hook_pattern") for h in names)
    attention = arch.n_heads * n * n * item * 3 if patterns and not model.executor.interface else 0
    transient = max(attention, n * (2 * max(arch.d_mlp, arch.d_model) + 4 * arch.d_model) * 4)
    return batch * (held + transient)


def check_budget(model: Model, names: list[str], n: int, batch: int = 1) -> None:
    """Fail before allocating when a pass would take more than ``options.max_capture_bytes``."""
    total = pass_bytes(model, names, n, batch)
    if total > options.max_capture_bytes:
        raise CaptureBudgetError(
            f"capturing {len(names)} hooks over {batch} x {n} tokens needs about {size(total)}, over the "
            f"budget of {size(options.max_capture_bytes)}. Capture fewer hooks (capture="
            f"'blocks.3.hook_resid_post'), use a shorter text, or raise rw.options.max_capture_bytes."
        )


def batches(model: Model, ids: list[list[int]], names: list[str], batch_size: int | None, desc: str, progress=True):
    """Indices of the inputs in batches of similar lengths (less padding) that fit the budget, with a progress bar."""
    from tqdm.auto import tqdm

    if batch_size is not None and (type(batch_size) is not int or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r:.40}")
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    size = batch_size or batch_fitting(model, names, max(len(x) for x in ids))
    chosen = [order[i : i + size] for i in range(0, len(order), size)]
    return tqdm(chosen, desc=desc, disable=not progress or len(chosen) < 4, leave=False)


def batch_fitting(model: Model, names: list[str], n: int, most: int = 64) -> int:
    """The largest batch of ``n``-token sequences (at most ``most``) whose pass fits the budget."""
    one = max(1, pass_bytes(model, names, n))
    return max(1, min(most, options.max_capture_bytes // one))


#: on CPU, reruns batched past about this many rows (sequences x positions) run slower per row: their activations
#: leave the caches (bench/bench_patching.py: a head sweep took 34 forward-equivalents in batches of 2,048 rows,
#: 22 in batches of 512)
CPU_ROWS = 512


def rerun_batch_size(model: Model, names: list[str], n: int, rows: int) -> int:
    """A batch of reruns of an ``n``-token input computing ``rows`` positions each: what fits the budget, and on CPU
    at most :data:`CPU_ROWS` rows in all."""
    size = batch_fitting(model, names, n)
    return size if model.device.type != "cpu" else max(1, min(size, CPU_ROWS // max(1, rows)))


def size(n_bytes: float) -> str:
    """``1.5 GiB``: a byte count for people."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError
