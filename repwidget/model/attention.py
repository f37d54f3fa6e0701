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

    def take(self, start: int, probs: torch.Tensor) -> None:
        """``probs`` ``[batch, heads, rows, keys]`` are the rows ``start .. start + rows`` of the layer's pattern."""
        raise NotImplementedError

    def finish(self, n_queries: int) -> None:
        self.filled = True


class Sinks(Sink):
    """Several sinks fed the same rows."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def take(self, start: int, probs: torch.Tensor) -> None:
        for sink in self.sinks:
            sink.take(start, probs)

    def finish(self, n_queries: int) -> None:
        for sink in self.sinks:
            sink.finish(n_queries)
        self.filled = True


class Full(Sink):
    """The whole pattern ``[batch, heads, q, k]`` (what a user asks for when capturing ``attn.hook_pattern``)."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []
        self.pattern: torch.Tensor | None = None

    def take(self, start: int, probs: torch.Tensor) -> None:
        self.parts.append(probs)

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

    def take(self, start: int, probs: torch.Tensor) -> None:
        p = probs[0, self.heads]  # [heads, rows, keys]
        q0, q1 = self.rows or (0, None)
        k0, k1 = self.cols or (0, probs.shape[-1])
        q1 = q1 if q1 is not None else probs.shape[-1]
        lo, hi = max(start, q0), min(start + p.shape[1], q1)
        if lo >= hi:
            return
        block = p[:, lo - start : hi - start, k0:k1].float()
        n_rows, n_cols = q1 - q0, k1 - k0
        rows_side, cols_side = min(n_rows, self.side), min(n_cols, self.side)
        if self.result is None:
            self.result = torch.full((p.shape[0], rows_side, cols_side), -math.inf)
        cols = block if cols_side == n_cols else F.adaptive_max_pool1d(block.reshape(-1, 1, n_cols), cols_side)
        cols = cols.reshape(p.shape[0], hi - lo, cols_side)
        for i, (b0, b1) in enumerate(bins(n_rows, rows_side)):
            a, z = max(b0, lo - q0), min(b1, hi - q0)
            if a < z:
                part = cols[:, a - (lo - q0) : z - (lo - q0)].amax(1)
                self.result[:, i] = torch.maximum(self.result[:, i], part.cpu())


SCORES = ("previous_token", "induction", "duplicate_token", "first_token")


class Scores(Sink):
    """Head scores ``[heads]`` of the first sequence: previous-token, induction, duplicate-token, first-token
    (defined in :func:`repwidget.analyses.head_scores`), accumulated a block of rows at a time."""

    def __init__(self, token_ids: list[int]) -> None:
        self.ids = torch.tensor(token_ids)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts = {"induction": 0, "duplicate_token": 0}

    def take(self, start: int, probs: torch.Tensor) -> None:
        p = probs[0].double().cpu()  # [heads, rows, n]
        rows, n = p.shape[1], p.shape[2]
        q = torch.arange(start, start + rows)
        ids = self.ids[:n]
        earlier = torch.arange(n)[None, :] < q[:, None]
        same = (ids[q][:, None] == ids[None, :]) & earlier  # [rows, n]: an earlier occurrence of q's token
        after = torch.zeros_like(same)
        after[:, 1:] = same[:, :-1]  # k-1 is an earlier occurrence of q's token
        after &= earlier
        add = {
            "previous_token": p[:, q >= 1, :].gather(-1, (q[q >= 1] - 1).expand(p.shape[0], -1)[..., None]).sum((1, 2)),
            "first_token": p[..., 0].sum(1),
        }
        for name, mask in (("induction", after), ("duplicate_token", same)):
            queries = mask.any(-1)
            add[name] = (p * mask).sum(-1)[:, queries].sum(-1)
            self.counts[name] += int(queries.sum())
        for name, value in add.items():
            self.sums[name] = self.sums.get(name, 0) + value

    def result(self, n: int) -> dict[str, torch.Tensor]:
        heads = next(iter(self.sums.values())).shape[0]
        zero = torch.zeros(heads)
        count = {"previous_token": max(n - 1, 0), "first_token": n, **self.counts}
        return {name: (self.sums[name] / count[name]).float() if count[name] else zero for name in SCORES}


class Summary(Sinks):
    """A layer's attention in brief: every head's pattern max-pooled to at most ``side`` a side, and its scores."""

    def __init__(self, side: int, token_ids: list[int]) -> None:
        self.pooled, self.scores = Pooled(side), Scores(token_ids)
        super().__init__(self.pooled, self.scores)
        self.n = len(token_ids)

    def result(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``([heads, s, s] thumbnails, {score name: [heads]})``."""
        return self.pooled.result, self.scores.result(self.n)


def chunk_rows(heads: int, keys: int) -> int:
    """Query rows per block so that a block's probabilities (and the copies around them) fit CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // max(1, heads * keys * 16))


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
    n_q, n_k = query.shape[2], key.shape[2]
    step = chunk_rows(query.shape[1] * query.shape[0], n_k)
    is_causal = kwargs.pop("is_causal", None)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = attention_mask is None and n_q > 1 and bool(causal)
    outputs = []
    for start in range(0, n_q, step):
        stop = min(n_q, start + step)
        mask = _rows(attention_mask, start, stop, n_q, n_k, causal, query.dtype, query.device)
        if layer.knock:
            mask = _knocked(mask, layer, start, stop, query, n_k)
        out, probs = eager(module, query[:, :, start:stop], key, value, mask, *args, **kwargs)
        if layer.sink is not None:
            layer.sink.take(start, probs)
        outputs.append(out)
        del probs
    if layer.sink is not None:
        layer.sink.finish(n_q)
    layer.applied = True
    return torch.cat(outputs, dim=1), None


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
                sub[:, torch.tensor(rows)[:, None], torch.tensor([offset + p for p in keys])[None, :]] = low
    return out


def _rows(mask, start: int, stop: int, n_q: int, n_k: int, causal: bool, dtype, device):
    """Rows ``start..stop`` of the mask as an additive float mask (what eager attention takes)."""
    low = torch.finfo(dtype).min
    if mask is None:
        if not causal:
            return None
        q = torch.arange(start, stop, device=device)[:, None] + (n_k - n_q)
        allowed = torch.arange(n_k, device=device)[None, :] <= q
        return torch.where(allowed, 0.0, low).to(dtype)[None, None]
    rows = mask[..., start:stop, :]
    if rows.dtype == torch.bool:
        return torch.where(rows, 0.0, low).to(dtype)
    return rows
