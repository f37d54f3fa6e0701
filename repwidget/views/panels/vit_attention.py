"""ViT attention over the image: the selected head's attention from the selected query (CLS or a patch) as a heat
grid over the input image, and every head's entropy from that query for the layer x head picker. A click on a patch
makes it the query; shift+click on a head ablates it, on a patch ablates that position (the front end's list)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import panel
from ..panel import Key, Panel, Request
from ..protocol import index
from ._vit_payloads import attention_on_image, head_sharpness, patch_grid


def _tokens(session, _: dict[str, Any]) -> int:
    return patch_grid(session.model).tokens


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """``grid`` ``[rows, cols]`` and ``prefix`` of head ``layer.head`` from ``query`` in the current run."""
    return attention_on_image(session.run, args["layer"], args["head"], args["query"])


def heads(session, args: dict[str, Any]) -> dict[str, Any]:
    """``entropy`` ``[layer, head]`` in nats of every head's attention from ``query`` (low: sharp)."""
    return {"entropy": head_sharpness(session.run, args["query"]), "query": args["query"]}


def _shape(session) -> dict[str, Any]:
    grid = patch_grid(session.model)
    return {"patch_grid": {"prefix": grid.prefix, "rows": grid.rows, "cols": grid.cols}}


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    query = selection["query"]
    yield {"what": "vit_heads", "query": query}
    yield {"what": "vit_attention", "layer": selection["layer"], "head": selection["vit_head"], "query": query}


def _around(session, selection) -> Iterator[dict[str, Any]]:
    query = selection["query"]
    for layer in range(session.model.n_layers):
        for head in range(session.model.n_heads):
            yield {"what": "vit_attention", "layer": layer, "head": head, "query": query}


PANEL = Panel(
    name="vit_attention",
    place="main",
    order=45,
    kinds=("vit",),
    selection={
        "vit_head": Key(lambda s: 0, lambda s, out, given: index(out, "vit_head", s.model.n_heads, "selection")),
        "query": Key(lambda s: 0, lambda s, out, given: index(out, "query", _tokens(s, out), "selection")),
    },
    requests=(
        Request("vit_attention", (("layer", panel.layers), ("head", panel.heads), ("query", _tokens)), answer),
        Request("vit_heads", (("query", _tokens),), heads),
    ),
    shape=_shape,
    code=lambda s: ['run["blocks.0.attn.hook_pattern"][:, 0]  # [head, key]: from CLS to CLS, then the patches by row'],
    selected=_selected,
    around=_around,
)
