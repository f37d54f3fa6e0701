"""Attention probabilities without holding them whole.

repwidget registers a transformers attention implementation, ``"repwidget"``. In a pass that uses it, an
attention layer with no :class:`Sink` runs as the model was loaded (SDPA by default); a layer with a sink
runs the model's *own* eager attention function a block of query rows at a time, so that each block of
probabilities is handed to the sink (which reduces it: thumbnails, head scores, one head's pattern) and
dropped. The layer's output is that eager computation's, so the probabilities are exactly the ones used.
Memory: one block of rows (:data:`CHUNK_BYTES`), never ``heads x n x n``.
"""

from __future__ import annotations

import contextvars
import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NAME = "repwidget"
#: the probabilities of one block of query rows take at most this many bytes (several copies are live)
CHUNK_BYTES = 32 << 20
#: up to this many tokens an overview (:class:`Summary`) reads every query row; past it, a long prompt's overview
#: is coarser instead of slower: it reads evenly spaced blocks of rows, about this many in all
EXACT_SUMMARY_ROWS = 2048

#: the current pass's layers by attention module, and the implementation the model was loaded with
_ACTIVE: contextvars.ContextVar[tuple[dict[nn.Module, Layer], str] | None] = contextvars.ContextVar(
    "repwidget_attention", default=None
)


@dataclass
class Layer:
    """What a pass does at one attention layer: feed its probabilities to ``sink``, and/or block the scores
    ``knock`` lists for each sequence of the batch (``(heads, queries, keys)`` in the sequence's own
    positions; ``offsets`` where each sequence starts in its padded row)."""

    sink: Sink | None = None
    knock: list[list[tuple[slice, list[int], list[int]]]] | None = None
    offsets: list[int] = field(default_factory=list)
    applied: bool = False


class Sink:
    """Takes the probabilities of one attention layer, a block of query rows at a time."""

    #: whether the sink has seen every row
    filled = False
    #: 1: every query row; k > 1: every k-th block of rows is enough (the layer's output then comes from the
    #: attention the model was loaded with, and only those blocks run eagerly)
    stride = 1

    def take(self, start: int, probs: torch.Tensor, n_keys: int | None = None) -> None:
        """``probs`` ``[batch, heads, rows, width]`` are the rows ``start .. start + rows`` of the layer's pattern
        over its first ``width`` keys; the other keys, up to ``n_keys`` (``width`` when not given), have
        probability 0 (a causal block of rows never sees the keys after its last row)."""
        raise NotImplementedError

    def finish(self, n_queries: int) -> None:
        self.filled = True

    def queries_keys(self, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The query and key the layer's probabilities are computed from: these by default; a sink that freezes
        the pattern (the replacement model's, ``graphs/freeze.py``) returns those of the pass it recorded."""
        return query, key


class Sinks(Sink):
    """Several sinks fed the same rows."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def take(self, start: int, probs: torch.Tensor, n_keys: int | None = None) -> None:
        for sink in self.sinks:
            sink.take(start, probs, n_keys)

    def finish(self, n_queries: int) -> None:
        for sink in self.sinks:
            sink.finish(n_queries)
        self.filled = True


class Full(Sink):
    """The whole pattern ``[batch, heads, q, k]`` (what a user asks for when capturing ``attn.hook_pattern``)."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []
        self.pattern: torch.Tensor | None = None

    def take(self, start: int, probs: torch.Tensor, n_keys: int | None = None) -> None:
        n_keys = n_keys or probs.shape[-1]
        self.parts.append(probs if probs.shape[-1] == n_keys else F.pad(probs, (0, n_keys - probs.shape[-1])))

    def finish(self, n_queries: int) -> None:
        self.pattern = self.parts[0] if len(self.parts) == 1 else torch.cat(self.parts, dim=2)
        self.parts = []
        self.filled = True


def bins(n: int, side: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges adaptive max pooling of ``n`` values into ``side`` bins takes."""
    return [(math.floor(i * n / side), math.ceil((i + 1) * n / side)) for i in range(side)]


class Pooled(Sink):
    """Heads ``heads`` (all by default) of rows ``rows`` and columns ``cols``, max-pooled to at most ``side`` a
    side (exactly ``F.adaptive_max_pool2d``), of the first sequence in the batch."""

    def __init__(self, side: int, heads: slice = slice(None), rows=None, cols=None) -> None:
        self.side, self.heads, self.rows, self.cols = side, heads, rows, cols
        self.result: torch.Tensor | None = None

    def take(self, start: int, probs: torch.Tensor, n_keys: int | None = None) -> None:
        p = probs[0, self.heads]  # [heads, rows, width]
        n_keys = n_keys or probs.shape[-1]
        q0, q1 = self.rows or (0, None)
        k0, k1 = self.cols or (0, n_keys)
        q1 = q1 if q1 is not None else n_keys
        lo, hi = max(start, q0), min(start + p.shape[1], q1)
        if lo >= hi:
            return
        block = p[:, lo - start : hi - start, k0 : max(k0, min(k1, p.shape[-1]))].float()
        n_rows, n_cols = q1 - q0, k1 - k0
        rows_side, cols_side = min(n_rows, self.side), min(n_cols, self.side)
        if self.result is None:
            self.result = torch.full((p.shape[0], rows_side, cols_side), -math.inf)
        cols = _pool_columns(block, n_cols, cols_side)
        for i, (b0, b1) in enumerate(bins(n_rows, rows_side)):
            a, z = max(b0, lo - q0), min(b1, hi - q0)
            if a < z:
                part = cols[:, a - (lo - q0) : z - (lo - q0)].amax(1)
                self.result[:, i] = torch.maximum(self.result[:, i], part.cpu())


def _pool_columns(block: torch.Tensor, n_cols: int, side: int) -> torch.Tensor:
    """``block`` ``[heads, rows, have]`` (columns past ``have`` up to ``n_cols`` are 0) max-pooled over columns
    to ``side`` bins, as ``F.adaptive_max_pool1d`` pools ``n_cols`` columns; only the bins the block reaches
    are computed (a bin at a time: faster than adaptive pooling of the padded block)."""
    heads, rows, have = block.shape
    if side == n_cols:
        return F.pad(block, (0, n_cols - have))
    pooled = block.new_zeros(heads, rows, side)
    for i, (start, end) in enumerate(bins(n_cols, side)):
        if start >= have:
            break
        pooled[..., i] = block[..., start : min(end, have)].amax(-1)
    return pooled


SCORES = ("previous_token", "induction", "duplicate_token", "first_token")


@functools.lru_cache(maxsize=4)
def repeats(token_ids: tuple[int, ...]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The ``(queries, keys)`` pairs, sorted by query, that the duplicate-token score (``k < q`` holds ``q``'s
    token) and the induction score (``k - 1 < q`` holds ``q``'s token, ``k < q``) read. Found once per prompt
    (every layer's :class:`Scores` shares them), a block of query rows at a time."""
    ids = torch.tensor(token_ids)
    n, parts = len(token_ids), []
    for start in range(0, n, 1024):
        q = torch.arange(start, min(n, start + 1024))
        same = (ids[q][:, None] == ids[None, :]) & (torch.arange(n)[None, :] < q[:, None])
        r, k = same.nonzero(as_tuple=True)
        parts.append((q[r], k))
    q, k = (torch.cat(x) for x in zip(*parts, strict=True)) if parts else (torch.zeros(0, dtype=torch.long),) * 2
    after = k + 1 < q
    return {"duplicate_token": (q, k), "induction": (q[after], k[after] + 1)}


class Scores(Sink):
    """Head scores ``[heads]`` of the first sequence: previous-token, induction, duplicate-token, first-token
    (defined in :func:`repwidget.analyses.head_scores`), accumulated a block of rows at a time."""

    def __init__(self, token_ids: list[int]) -> None:
        self.pairs = repeats(tuple(token_ids))
        self.sums: dict[str, torch.Tensor] = {}
        #: the query rows each score averages over, among the rows taken (all of them unless sampled)
        self.counts = dict.fromkeys(SCORES, 0)

    def take(self, start: int, probs: torch.Tensor, n_keys: int | None = None) -> None:
        p = probs[0]  # [heads, rows, width]: every key a query row can see
        rows = p.shape[1]
        q = torch.arange(max(start, 1), start + rows, device=p.device)
        add = {
            "previous_token": p[:, q - start, q - 1].double().sum(-1).cpu(),
            "first_token": p[..., 0].double().sum(1).cpu(),
        }
        self.counts["previous_token"] += len(q)
        self.counts["first_token"] += rows
        for name, (queries, keys) in self.pairs.items():
            lo, hi = (int(torch.searchsorted(queries, x)) for x in (start, start + rows))
            r, k = (queries[lo:hi] - start).to(p.device), keys[lo:hi].to(p.device)
            add[name] = p[:, r, k].double().sum(-1).cpu()
            self.counts[name] += len(torch.unique_consecutive(queries[lo:hi]))
        for name, value in add.items():
            self.sums[name] = self.sums.get(name, 0) + value

    def result(self, n: int | None = None) -> dict[str, torch.Tensor]:
        heads = next(iter(self.sums.values())).shape[0]
        zero = torch.zeros(heads)
        count = self.counts
        return {name: (self.sums[name] / count[name]).float() if count[name] else zero for name in SCORES}


class Summary(Sinks):
    """A layer's attention in brief: every head's pattern max-pooled to at most ``side`` a side, and its scores.
    Past :data:`EXACT_SUMMARY_ROWS` tokens both are read from evenly spaced blocks of query rows (``stride``):
    a coarser overview of a long prompt at a bounded cost, never a whole pattern."""

    def __init__(self, side: int, token_ids: list[int]) -> None:
        self.pooled, self.scores = Pooled(side), Scores(token_ids)
        super().__init__(self.pooled, self.scores)
        self.n = len(token_ids)
        self.stride = summary_stride(self.n)

    def result(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``([heads, s, s] thumbnails, {score name: [heads]})``."""
        return self.pooled.result, self.scores.result(self.n)


def summary_stride(n: int) -> int:
    """Every how many blocks of query rows an overview of ``n`` tokens reads (1: every row)."""
    return max(1, math.ceil(n / EXACT_SUMMARY_ROWS))


def chunk_rows(heads: int, keys: int) -> int:
    """Query rows per block so that a block's probabilities (and the copies around them) fit CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // max(1, heads * keys * 16))


def row_blocks(n_q: int, step: int, stride: int = 1) -> list[tuple[int, int]]:
    """The ``[start, stop)`` blocks of query rows a sink is fed: all rows in blocks of ``step``, or, with
    ``stride > 1``, every ``stride``-th block of rows small enough that a sampled block falls in every 96th
    of the rows (so every row bin of a thumbnail up to 96 a side sees some)."""
    if stride > 1:
        step = max(1, min(step, n_q // (96 * stride)))
    return [(start, min(n_q, start + step)) for start in range(0, n_q, step * stride)]


def feed(sink: Sink, probs: torch.Tensor) -> None:
    """Give ``sink`` a whole pattern ``[batch, heads, q, k]`` (the rows it reads, as a pass would) and finish it."""
    n_q = probs.shape[2]
    for start, stop in row_blocks(n_q, n_q, sink.stride):
        sink.take(start, probs[:, :, start:stop], probs.shape[3])
    sink.finish(n_q)


def register() -> None:
    """Make ``"repwidget"`` a transformers attention implementation (and mask function). Idempotent."""
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, _mask)


def active() -> tuple[dict[nn.Module, Layer], str] | None:
    """The current pass's layers by attention module and the implementation the model was loaded with."""
    return _ACTIVE.get()


def activate(value: tuple[dict[nn.Module, Layer], str] | None) -> None:
    """Set what :func:`active` returns (a pass sets it, and sets the previous value back when it ends)."""
    _ACTIVE.set(value)


def _loaded() -> str:
    active = _ACTIVE.get()
    return active[1] if active is not None else "sdpa"


def _mask(*args: Any, **kwargs: Any):
    """Masks as the implementation the model was loaded with makes them."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    return ALL_MASK_ATTENTION_FUNCTIONS[_loaded()](*args, **kwargs)


def eager_function(module: nn.Module) -> Callable | None:
    """The model's own eager attention (``eager_attention_forward`` in its modeling file), if it has one."""
    return getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)


def _attention(module: nn.Module, query, key, value, attention_mask, *args: Any, **kwargs: Any):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    active = _ACTIVE.get()
    table, loaded = active if active is not None else ({}, "sdpa")
    layer = table.get(module)
    eager = eager_function(module)
    if layer is None or eager is None:
        function = eager if loaded == "eager" and eager is not None else ALL_ATTENTION_FUNCTIONS[loaded]
        return function(module, query, key, value, attention_mask, *args, **kwargs)
    if layer.sink is not None:
        query, key = layer.sink.queries_keys(query, key)
    n_q, n_k = query.shape[2], key.shape[2]
    step = chunk_rows(query.shape[1] * query.shape[0], n_k)
    stride = layer.sink.stride if layer.sink is not None and not layer.knock else 1
    if stride > 1:  # the output from the attention the model was loaded with; some blocks of rows run eagerly
        function = eager if loaded == "eager" else ALL_ATTENTION_FUNCTIONS[loaded]
        whole = function(module, query, key, value, attention_mask, *args, **kwargs)[0]
    is_causal = kwargs.pop("is_causal", None)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = attention_mask is None and n_q > 1 and bool(causal)
    outputs = []
    for start, stop in row_blocks(n_q, step, stride):
        # a causal block of rows sees no key after its last row: those columns are left out (all exactly 0)
        width = stop + n_k - n_q if causal else n_k
        mask = _rows(attention_mask, start, stop, n_q, width, causal, query.dtype, query.device)
        if layer.knock:
            mask = _knocked(mask, layer, start, stop, query, width)
        keys, values = (key, value) if width == n_k else (key[:, :, :width], value[:, :, :width])
        out, probs = eager(module, query[:, :, start:stop], keys, values, mask, *args, **kwargs)
        if layer.sink is not None:
            layer.sink.take(start, probs, n_k)
        outputs.append(out)
        del probs
    if layer.sink is not None:
        layer.sink.finish(n_q)
    layer.applied = True
    return (whole if stride > 1 else torch.cat(outputs, dim=1)), None


def _knocked(mask: torch.Tensor | None, layer: Layer, start: int, stop: int, query: torch.Tensor, n_k: int):
    """Rows ``start..stop`` of the additive mask with the knocked-out scores of each sequence set to -inf."""
    b, h = query.shape[0], query.shape[1]
    base = mask if mask is not None else torch.zeros((), dtype=query.dtype, device=query.device)
    out = base.expand(b, h, stop - start, n_k).clone()
    low = torch.finfo(query.dtype).min
    for i, specs in enumerate(layer.knock):
        offset = layer.offsets[i] if layer.offsets else 0
        for heads, queries, keys in specs:
            rows = [offset + p - start for p in queries if start <= offset + p < stop]
            if rows:
                sub = out[i, heads]  # a view: [heads, rows, keys]
                seen = [offset + p for p in keys if offset + p < n_k]  # a causal block never sees later keys
                if seen:
                    sub[:, torch.tensor(rows)[:, None], torch.tensor(seen)[None, :]] = low
    return out


def _rows(mask, start: int, stop: int, n_q: int, n_k: int, causal: bool, dtype, device):
    """Rows ``start..stop`` of the mask as an additive float mask (what eager attention takes); with no mask
    and ``causal``, over the first ``n_k`` keys, those the rows can see."""
    low = torch.finfo(dtype).min
    if mask is None:
        if not causal:
            return None
        q = torch.arange(start, stop, device=device)[:, None] + (n_k - stop)
        allowed = torch.arange(n_k, device=device)[None, :] <= q
        return torch.where(allowed, 0.0, low).to(dtype)[None, None]
    rows = mask[..., start:stop, :]
    if rows.dtype == torch.bool:
        return torch.where(rows, 0.0, low).to(dtype)
    return rows
