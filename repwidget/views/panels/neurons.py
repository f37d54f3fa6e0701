"""Neurons: the MLP neurons of a layer most active at the selected token, and one neuron at every position."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .. import panel
from ..panel import Key, Panel, Request
from ..protocol import index

TOP = 12


def top_neurons(session, args: dict[str, Any]) -> dict[str, Any]:
    """The :data:`TOP` MLP neurons of ``layer`` most active at ``position`` (indices and activations)."""
    layer, position = args["layer"], args["position"]
    acts = session.activation(f"blocks.{layer}.mlp.hook_post")[position].float()
    top = acts.topk(min(TOP, acts.numel()))
    return {"indices": top.indices.to(torch.int32), "values": top.values, "layer": layer, "position": position}


def neuron(session, args: dict[str, Any]) -> dict[str, Any]:
    """One MLP neuron's activation at every position, ``[pos]``; with interventions, its clean activation too
    (``clean``: what the view shows while the neuron is ablated)."""
    layer, index = args["layer"], args["index"]
    hook = f"blocks.{layer}.mlp.hook_post"
    out = {"values": session.activation(hook)[:, index].float(), "layer": layer, "index": index}
    if session.intervened:
        out["clean"] = session.activation(hook, session.clean_run)[:, index].float()
    return out


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield {"what": "neurons", "layer": selection["layer"], "position": selection["token"]}
    if selection.get("neuron") is not None:
        yield {"what": "neuron", "layer": selection["layer"], "index": selection["neuron"]}


def _around(session, selection) -> Iterator[dict[str, Any]]:
    n = session.n_tokens
    yield from (
        {"what": "neurons", "layer": layer, "position": p} for layer in range(session.model.n_layers) for p in range(n)
    )


def _neuron(session, out, given) -> int | None:
    return None if out["neuron"] is None else index(out, "neuron", session.model.d_mlp, "selection")


PANEL = Panel(
    name="neurons",
    order=40,
    #: a neuron of the selected layer, or None
    selection={"neuron": Key(lambda s: None, _neuron)},
    requests=(
        Request("neurons", (("layer", panel.layers), ("position", panel.positions)), top_neurons),
        Request("neuron", (("layer", panel.layers), ("index", panel.neurons)), neuron),
    ),
    shown=lambda session: not session.model.arch.moe,  # a mixture of experts has no single layer of neurons
    selected=_selected,
    around=_around,
)
