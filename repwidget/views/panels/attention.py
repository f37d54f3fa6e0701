"""Attention: every head as a thumbnail with its scores, one head's pattern (whole, pooled, or a window), and its
top contexts over a corpus by its output norm (``examples=`` or ``texts=``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ...model.attention import SCORES, Pooled, summary_stride
from ...units import Head
from .. import panel
from ..panel import Key, Panel, Request
from ..protocol import index
from . import _examples

#: thumbnails in the attention grid are at most this many pixels a side
THUMB = 24
#: a pattern is sent whole up to this many tokens a side; longer ones as an overview plus zoomed windows
MAX_SIDE = 512


def pooled(matrix: torch.Tensor, side: int) -> torch.Tensor:
    """Shrink ``[..., q, k]`` to at most ``side`` x ``side`` by max pooling (sharp attention stays visible)."""
    q, k = matrix.shape[-2:]
    if q <= side and k <= side:
        return matrix
    lead = matrix.shape[:-2]
    flat = matrix.reshape(-1, 1, q, k).float()
    out = F.adaptive_max_pool2d(flat, (min(q, side), min(k, side)))
    return out.reshape(*lead, *out.shape[-2:])


def overview(session, args: dict[str, Any]) -> dict[str, Any]:
    """Every head as a thumbnail (uint8, 0-255 = attention 0-1) and the head scores ``[score, layer, head]``:
    computed during the clean pass, and for a rerun's later layers by running them again a block of rows at a time."""
    thumbs, scores = session.run.summary(THUMB)
    return {
        "thumbs": (thumbs.float().clamp(0, 1) * 255).round().to(torch.uint8),
        "scores": torch.stack([scores[name] for name in SCORES]).float(),
        "score_names": list(SCORES),
        "stride": summary_stride(session.n_tokens),  # > 1: a long prompt's overview reads every stride-th block
    }


def pattern(session, args: dict[str, Any]) -> dict[str, Any]:
    """One head's pattern: whole if it fits :data:`MAX_SIDE`, else pooled, or a full-resolution ``window``.

    ``window`` is ``(q0, q1, k0, k1)`` (half-open) and at most ``MAX_SIDE`` a side. The answer says
    which rows and columns it covers and the pooling factor, so the front end can label it.
    """
    return head_pattern(session.run, args["layer"], args["head"], args.get("window"))


def head_pattern(run, layer: int, head: int, window: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
    n = len(run.token_ids)
    q0, q1, k0, k1 = window if window is not None else (0, n, 0, n)
    if not (0 <= q0 < q1 <= n and 0 <= k0 < k1 <= n):
        raise ValueError(f"window {window} is outside the {n} x {n} pattern")
    if window is not None and (q1 - q0 > MAX_SIDE or k1 - k0 > MAX_SIDE):
        raise ValueError(f"a window is at most {MAX_SIDE} tokens a side, got {q1 - q0} x {k1 - k0}")
    name = f"blocks.{layer}.attn.hook_pattern"
    if name in run.result.cache:  # captured: cut it
        shown = pooled(run[name][head, q0:q1, k0:k1], MAX_SIDE)
    else:  # the layer run again, this head's rows pooled as they are computed
        sink = Pooled(MAX_SIDE, slice(head, head + 1), (q0, q1), (k0, k1))
        run.model.replay(run, layer, {layer: sink})
        shown = sink.result[0]
    pooled_view = list(shown.shape) != [q1 - q0, k1 - k0]
    return {"pattern": shown.float(), "window": [q0, q1, k0, k1], "pooled": pooled_view}


def head_examples(session, args: dict[str, Any]) -> dict[str, Any]:
    """A head's top contexts by its output norm (:func:`_examples.contexts`: from the examples given when they hold
    it, else every head of the layer harvested from the session's texts in one pass; empty with neither)."""
    layer, head = args["layer"], args["head"]
    found = _examples.of_unit(
        session,
        _examples.is_head(layer, head),
        ("heads", layer),
        lambda: [Head(layer, h) for h in range(session.model.n_heads)],
    )
    return {**_examples.contexts(found), "layer": layer, "head": head}


def _window(content: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    window = content.get("window")
    if window is None:
        return {}
    if not (isinstance(window, list) and len(window) == 4 and all(type(v) is int for v in window)):
        raise ValueError(f"pattern request: window must be [q0, q1, k0, k1] ints, got {window!r:.80}")
    return {"window": tuple(window)}


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield {"what": "overview"}
    yield {"what": "pattern", "layer": selection["head_layer"], "head": selection["head"]}
    if _examples.available(session):
        yield {"what": "head_examples", "layer": selection["head_layer"], "head": selection["head"]}


def _around(session, selection) -> Iterator[dict[str, Any]]:
    model = session.model
    yield from (
        {"what": "pattern", "layer": layer, "head": head}
        for layer in range(model.n_layers)
        for head in range(model.n_heads)
    )


def _head_layer(session, out, given) -> int:
    if "head_layer" not in given and "layer" in given:
        out["head_layer"] = out["layer"]  # a selection from before heads had their own layer
    return index(out, "head_layer", session.model.n_layers, "selection")


PANEL = Panel(
    name="attention",
    order=30,
    #: the head shown: ``head_layer``.``head``, chosen apart from the shared ``layer``
    selection={
        "head_layer": Key(lambda s: 0, _head_layer),
        "head": Key(lambda s: 0, lambda s, out, given: index(out, "head", s.model.n_heads, "selection")),
    },
    requests=(
        Request("overview", (), overview),
        Request("pattern", (("layer", panel.layers), ("head", panel.heads)), pattern, frozenset({"pattern"}), _window),
        Request("head_examples", (("layer", panel.layers), ("head", panel.heads)), head_examples),
    ),
    summary=THUMB,
    shape=lambda session: {"max_side": MAX_SIDE, "head_examples": _examples.available(session)},
    selected=_selected,
    around=_around,
)
