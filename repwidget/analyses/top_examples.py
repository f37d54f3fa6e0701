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

from ..model.plan import CaptureBudgetError, batch_fitting, pass_bytes, size
from ..options import options
from ..texts import token_ids
from ..units import Reader, as_unit
from .top_examples_files import Example, TopExamples

if TYPE_CHECKING:
    from ..model.model import Model

__all__ = ["Example", "TopExamples", "harvest", "top_examples"]

_LOW = 1 << 32
_NONE = torch.iinfo(torch.int64).min  # below every real key: an empty slot


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
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int (how many examples per unit), got {k!r:.40}")
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
    keys = torch.full((n_units, k), _NONE, dtype=torch.int64, device=device)
    win_ids = torch.full((n_units, k, width), -1, dtype=torch.int64, device=device)
    win_values = torch.zeros((n_units, k, width), dtype=torch.float32, device=device)
    chunk: list[tuple[int, dict[str, torch.Tensor]]] = []
    n_tokens = 0

    def flush() -> None:
        nonlocal keys, win_ids, win_values, n_tokens
        keys, win_ids, win_values, n = _merge(reader, chunk, ids, offsets, keys, win_ids, win_values, context, per_text,
                                              above, observe)  # fmt: skip
        n_tokens += n
        chunk.clear()

    for index, cache in model.iter_capture(ids, reader.hooks, batch_size=size_, progress=progress):
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
    """One batch's candidates merged into the kept top ``k`` (and their windows); also how many tokens it read."""
    device = keys.device
    texts = [i for i, _ in chunk]
    lengths = torch.tensor([len(ids[i]) for i in texts], device=device)
    starts = torch.cumsum(lengths, 0) - lengths  # each text's first row in the batch
    cache = {h: torch.cat([c[h].reshape(len(c[h]), -1) for _, c in chunk]).to(device) for h in reader.hooks}
    values = reader.values(cache)  # [rows, units]
    ids_rows = torch.tensor([t for i in texts for t in ids[i]], device=device)
    text_of_row = torch.repeat_interleave(torch.arange(len(texts), device=device), lengths)
    pos_of_row = torch.arange(len(values), device=device) - starts[text_of_row]
    usable = pos_of_row > 0  # position 0 (the <bos> sink) is never a context
    values = torch.nan_to_num(values, nan=float("-inf"))
    if observe is not None:
        observe(values[usable])
    counted = values.masked_fill(~usable[:, None], float("-inf"))
    if per_text:  # each text's peak: its first position of the largest value
        padded = torch.full((len(texts), int(lengths.max()), values.shape[1]), float("-inf"), device=device)
        padded[text_of_row, pos_of_row] = counted
        best, at = padded.max(1)  # [texts, units]; max gives the first of equal values
        cand_values, cand_text = best.T, torch.arange(len(texts), device=device)[None].expand(len(best.T), -1)
        cand_pos = at.T
    else:
        cand_values, cand_text = counted.T, text_of_row[None].expand(values.shape[1], -1)
        cand_pos = pos_of_row[None].expand(values.shape[1], -1)
    corpus_text = torch.tensor(texts, device=device)[cand_text]
    order = offsets.to(device)[corpus_text] + cand_pos
    valid = torch.isfinite(cand_values) if above is None else cand_values > above
    cand_keys = torch.where(valid, _keys(cand_values, order), _NONE)
    merged = torch.cat([keys, cand_keys], 1)
    top = merged.topk(keys.shape[1], dim=1)
    new = top.indices >= keys.shape[1]
    c = (top.indices - keys.shape[1]).clamp_min(0)
    old = top.indices.clamp_max(keys.shape[1] - 1)
    width = win_ids.shape[2]
    text, pos = cand_text.gather(1, c), cand_pos.gather(1, c)  # [units, k]: the batch's text and position
    first = pos - context[0] if context is not None else torch.zeros_like(pos)
    at = first[..., None] + torch.arange(width, device=device)  # [units, k, width]: text positions of the window
    inside = (at >= 0) & (at < lengths[text][..., None])
    rows = (starts[text][..., None] + at).clamp(0, len(values) - 1)
    got_values = values.T.contiguous().gather(1, rows.reshape(len(rows), -1)).reshape(rows.shape)
    got_values = torch.where(inside, got_values.clamp(min=-3.0e38), 0.0)
    got_ids = torch.where(inside, ids_rows[rows], -1)
    keep_ids = win_ids.gather(1, old[..., None].expand(-1, -1, width))
    keep_values = win_values.gather(1, old[..., None].expand(-1, -1, width))
    win_ids = torch.where(new[..., None], got_ids, keep_ids)
    win_values = torch.where(new[..., None], got_values, keep_values)
    return top.values, win_ids, win_values, int(usable.sum())


def _result(model, reader, ids, offsets, keys, win_ids, win_values, context, per_text, n_tokens) -> TopExamples:
    keys, win_ids, win_values = keys.cpu(), win_ids.cpu(), win_values.cpu()
    found = keys != _NONE
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
