"""Top examples: the contexts of a corpus that most activate each of many units (neurons, heads, SAE features,
directions), harvested in padded batches within ``rw.options.max_capture_bytes``, every unit in the same passes.

One k-heap for all units at once: each candidate (a text's peak, or every token) gets one int64 key, its value's
order-preserving bits above its place in the corpus (text, then position) reversed, so ``topk`` of the keys is the
top ``k`` by value with ties broken toward the earlier text and position, exactly what sorting a brute-force scan
by ``(-value, text, position)`` gives. The SAE feature dashboards read their contexts from this harvest too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..model import readings
from ..model.plan import CaptureBudgetError, batch_fitting, pass_bytes, size
from ..options import options
from ..texts import token_ids
from ..units import Reader, as_unit
from .top_examples_files import Example, TopExamples

if TYPE_CHECKING:
    from ..model.model import Model

__all__ = ["Example", "TopExamples", "harvest", "top_examples"]

_LOW = 1 << 32
_NONE = torch.iinfo(torch.int64).min  # no candidate: below every key
_EMPTY = _NONE + (1 << 24)  # empty slots hold _NONE + 1 + slot (distinct, below every real key)


def top_examples(
    model: Model,
    texts: Sequence[Any],
    units: Any,
    k: int = 20,
    context: tuple[int, int] | None = (8, 4),
    per_text: bool = True,
    batch_size: int | None = None,
    progress: bool = True,
) -> TopExamples:
    """The ``k`` contexts of ``texts`` that most activate each of ``units`` (one unit, e.g. ``rw.units.Neuron(2, 7)``,
    or a list: every neuron of a layer is ``rw.units.neurons(2, range(model.d_mlp))``), read in the same padded
    batches with progress; position 0 (the ``<bos>`` sink) is never a context.

    ``per_text``: each text counts once, at its peak (the first position of its largest value); ``False``: every
    token is a candidate. ``context=(before, after)``: the tokens kept around each peak (``None``: the whole text).
    Ties go to the earlier text, then the earlier position. Memory: one batch of passes and ``k`` windows per unit,
    within ``rw.options.max_capture_bytes`` (``batch_size`` defaults to what fits)."""
    single = not isinstance(units, (list, tuple)) or (bool(units) and isinstance(units[0], str))
    return harvest(model, texts, [units] if single else list(units), k, context, per_text, batch_size, progress)


def _check(k: Any, context: Any) -> tuple[int, int] | None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100_000:
        raise ValueError(f"k must be an int in 1..100000 (how many examples per unit), got {k!r:.40}")
    if context is None:
        return None
    ok = isinstance(context, (tuple, list)) and len(context) == 2
    if not ok or not all(type(c) is int and c >= 0 for c in context):
        raise ValueError(f"context must be (tokens before, tokens after), two ints >= 0, or None, got {context!r:.40}")
    return int(context[0]), int(context[1])


def harvest(
    model: Model,
    texts: Sequence[Any],
    units: list[Any],
    k: int = 20,
    context: tuple[int, int] | None = (8, 4),
    per_text: bool = True,
    batch_size: int | None = None,
    progress: bool = True,
    above: float | None = None,
    observe: Callable[[torch.Tensor], None] | None = None,
) -> TopExamples:
    """:func:`top_examples` of a list of units; ``above``: only values over it count (an SAE feature's zeros are not
    contexts); ``observe``: called with each batch's ``[tokens, units]`` values (position 0 left out)."""
    context = _check(k, context)
    reader = Reader(model, [as_unit(u) for u in units])
    ids = token_ids(model, texts)  # every text checked before the first pass
    if not ids:
        raise ValueError("no texts: give at least one text to find top examples in")
    lengths = torch.tensor([len(x) for x in ids])
    offsets = torch.cumsum(lengths, 0) - lengths  # where each text starts in the corpus
    if int(lengths.sum()) >= _LOW:
        raise ValueError(f"a harvest takes fewer than {_LOW} tokens in all; split the texts")
    width = int(lengths.max()) if context is None else context[0] + 1 + context[1]
    n_units = len(reader.units)
    size_ = _batch(model, reader, int(lengths.max()), n_units * k * width * 16, batch_size)
    device = model.device
    keys = (_NONE + 1 + torch.arange(k, device=device)).repeat(n_units, 1)
    win_ids = torch.full((n_units, k, width), -1, dtype=torch.int64, device=device)
    win_values = torch.zeros((n_units, k, width), dtype=torch.float32, device=device)
    chunk: list[tuple[int, dict[str, torch.Tensor]]] = []
    n_tokens = 0

    def flush() -> None:
        nonlocal n_tokens
        n_tokens += _merge(reader, chunk, ids, offsets, keys, win_ids, win_values, context, per_text, above, observe)
        chunk.clear()

    hooks = model.expand(reader.hooks)
    for index, cache in readings.captures(model, ids, hooks, size_, progress):  # ids checked above, once
        chunk.append((index, cache))
        if len(chunk) == size_:
            flush()
    if chunk:
        flush()
    return _result(model, reader, ids, offsets, keys, win_ids, win_values, context, per_text, n_tokens)


def _batch(model: Model, reader: Reader, longest: int, state: int, batch_size: int | None) -> int:
    """The batch size that fits the budget with the harvest's own tensors (the values and keys of a batch, the kept
    windows); a one-line :class:`CaptureBudgetError` when not even one text fits."""
    per_token = reader.bytes_per_token + 12 * len(reader.units)  # values, keys
    one = pass_bytes(model, reader.hooks, longest) + longest * per_token
    if state + one > options.max_capture_bytes:
        raise CaptureBudgetError(
            f"top examples of {len(reader.units)} units (k and context windows: {size(state)}) over texts of up to "
            f"{longest} tokens need about {size(state + one)}, over the budget of {size(options.max_capture_bytes)}; "
            "read fewer units at once, a smaller k or context, or raise rw.options.max_capture_bytes"
        )
    fits = max(1, min(batch_fitting(model, reader.hooks, longest), (options.max_capture_bytes - state) // one))
    return fits if batch_size is None else _given(batch_size, fits)


def _given(batch_size: Any, fits: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r:.40}")
    if batch_size > fits:
        raise CaptureBudgetError(
            f"batch_size {batch_size} needs more than rw.options.max_capture_bytes ({size(options.max_capture_bytes)}) "
            f"for these units; at most {fits} fits (or leave batch_size out)"
        )
    return batch_size


def _keys(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """int64 keys whose order is ``(value, -order)``: the value's order-preserving bits above ``order`` reversed."""
    bits = (values.float() + 0.0).view(torch.int32).to(torch.int64)  # + 0.0: -0.0 is 0.0
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return ordered * _LOW + (_LOW - 1 - order)


def _decode(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, corpus order)`` of keys made by :func:`_keys`."""
    high = keys >> 32
    bits = torch.where(high < 0, high ^ 0x7FFFFFFF, high).to(torch.int32)
    return bits.view(torch.float32), _LOW - 1 - (keys & (_LOW - 1))


def _merge(reader, chunk, ids, offsets, keys, win_ids, win_values, context, per_text, above, observe):
    """One batch's candidates merged into the kept top ``k`` (and their windows, written in place; the slots are
    unordered: an entry keeps its slot until a better one takes it); also how many tokens the batch read."""
    device, k = keys.device, keys.shape[1]
    texts = torch.tensor([i for i, _ in chunk], device=device)
    lengths = torch.tensor([len(ids[i]) for i, _ in chunk], device=device)
    starts = torch.cumsum(lengths, 0) - lengths  # each text's first row in the batch
    cache = {h: torch.cat([c[h].reshape(len(c[h]), -1) for _, c in chunk]).to(device) for h in reader.hooks}
    values = torch.nan_to_num(reader.values(cache), nan=float("-inf"))  # [rows, units]
    text_of_row = torch.repeat_interleave(torch.arange(len(texts), device=device), lengths)
    pos_of_row = torch.arange(len(values), device=device) - starts[text_of_row]
    usable = pos_of_row > 0  # position 0 (the <bos> sink) is never a context
    if observe is not None:
        observe(values[usable])
    lowest = keys.min(1).values
    floor = torch.where(lowest > _EMPTY, _decode(lowest)[0], float("-inf"))  # what a value must reach to enter
    valid = usable[:, None] & (values >= floor) & (torch.isfinite(values) if above is None else values > above)
    row, unit = valid.nonzero(as_tuple=True)  # few once the kept values are high
    if not len(row):
        return int(usable.sum())
    order = offsets.to(device)[texts][text_of_row] + pos_of_row  # each row's place in the corpus
    found = _keys(values[row, unit], order[row])
    n_units = values.shape[1]
    where = (text_of_row[row] if per_text else row) * n_units + unit
    size_ = (len(texts) if per_text else len(values)) * n_units
    # per text: its peak, the largest key of its rows (the largest value, then the first position)
    cand = torch.full((size_,), _NONE, device=device).scatter_reduce_(0, where, found, "amax").view(-1, n_units).T
    kth = torch.cat([keys, cand], 1).topk(k, dim=1).values[:, -1:]
    freed_unit, freed_slot = (keys < kth).nonzero(as_tuple=True)  # row-major: both sorted by unit, the same
    new_unit, new_c = (cand >= kth).nonzero(as_tuple=True)  # number per unit (keys are unique above _NONE)
    if not len(new_unit):
        return int(usable.sum())
    new = cand[new_unit, new_c]
    keys[freed_unit, freed_slot] = new
    corpus = _decode(new)[1]
    text = torch.searchsorted(offsets.to(device), corpus, right=True) - 1
    by_text = texts.argsort()
    local = by_text[torch.searchsorted(texts[by_text], text)]  # the text's index in this batch
    pos = corpus - offsets.to(device)[text]
    width = win_ids.shape[2]
    first = pos - context[0] if context is not None else torch.zeros_like(pos)
    at = first[:, None] + torch.arange(width, device=device)  # [new, width]: text positions of each window
    inside = (at >= 0) & (at < lengths[local][:, None])
    rows = (starts[local][:, None] + at).clamp(0, len(values) - 1)
    ids_rows = torch.tensor([t for i, _ in chunk for t in ids[i]], device=device)
    got = values[rows, new_unit[:, None]].clamp(min=-3.0e38)
    win_values[freed_unit, freed_slot] = torch.where(inside, got, 0.0)
    win_ids[freed_unit, freed_slot] = torch.where(inside, ids_rows[rows], -1)
    return int(usable.sum())


def _result(model, reader, ids, offsets, keys, win_ids, win_values, context, per_text, n_tokens) -> TopExamples:
    keys, slots = keys.cpu().sort(1, descending=True)  # best first
    width = win_ids.shape[2]
    win_ids = win_ids.cpu().gather(1, slots[..., None].expand(-1, -1, width))
    win_values = win_values.cpu().gather(1, slots[..., None].expand(-1, -1, width))
    found = keys > _EMPTY
    values, order = _decode(keys)
    text = (torch.searchsorted(offsets, order, right=True) - 1).clamp_min(0)
    position = order - offsets[text]
    first = position - context[0] if context is not None else torch.zeros_like(position)
    used = sorted({int(t) for t in win_ids[win_ids >= 0].unique().tolist()})
    tokens = dict(zip(used, model.to_str_tokens(used), strict=True)) if used else {}
    return TopExamples(
        units=list(reader.units),
        values=torch.where(found, values, 0.0),
        text_index=torch.where(found, text, -1),
        position=torch.where(found, position, -1),
        window_start=torch.where(found, first, 0),
        window_ids=torch.where(found[..., None], win_ids, -1),
        window_values=torch.where(found[..., None], win_values, 0.0),
        tokens=tokens,
        context=context,
        per_text=per_text,
        n_texts=len(ids),
        n_tokens=n_tokens,
    )
