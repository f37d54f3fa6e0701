"""Static pictures (altair, rendered offline by Jupyter's own Vega renderer) of runs and analyses."""

from __future__ import annotations

import altair as alt
import torch

from .run import Run


def head_grid(scores: torch.Tensor, title: str = "head score") -> alt.Chart:
    """A layer x head heatmap of a ``[layer, head]`` score tensor."""
    layers, heads = scores.shape
    data = alt.Data(
        values=[{"layer": i, "head": h, "score": float(scores[i, h])} for i in range(layers) for h in range(heads)]
    )
    return (
        alt.Chart(data, title=title)
        .mark_rect()
        .encode(
            x=alt.X("head:O"),
            y=alt.Y("layer:O"),
            color=alt.Color("score:Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
            tooltip=["layer:O", "head:O", alt.Tooltip("score:Q", format=".2f")],
        )
        .properties(width=40 * heads, height=40 * layers)
    )


def pattern(run: Run, layer: int, head: int) -> alt.Chart:
    """One head's attention pattern, queries down and keys across, labelled with the tokens."""
    probs = run[f"blocks.{layer}.attn.hook_pattern"][head].float().cpu()
    tokens = [f"{i}: {t}" for i, t in enumerate(run.tokens)]
    n = len(tokens)
    data = alt.Data(
        values=[{"query": tokens[q], "key": tokens[k], "p": float(probs[q, k])} for q in range(n) for k in range(n)]
    )
    size = min(16, max(6, 480 // max(n, 1)))
    return (
        alt.Chart(data, title=f"attention pattern, layer {layer} head {head}")
        .mark_rect()
        .encode(
            x=alt.X("key:N", sort=tokens, title="key"),
            y=alt.Y("query:N", sort=tokens, title="query"),
            color=alt.Color("p:Q", scale=alt.Scale(scheme="greys", domain=[0, 1])),
            tooltip=["query:N", "key:N", alt.Tooltip("p:Q", format=".3f")],
        )
        .properties(width=size * n, height=size * n)
    )
