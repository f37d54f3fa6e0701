"""Neurons: the MLP neurons of a layer most active at the selected token, one neuron at every position, and a
neuron's top contexts over a corpus (``examples=``, see ``_examples``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ...interventions import Ablate, Intervention
from ...run import Run
from ...units import neurons
from .. import panel
from ..panel import Key, Option, Panel, Request
from ..protocol import index
from . import _examples

TOP = 12


def neuron_examples(session, args: dict[str, Any]) -> dict[str, Any]:
    """A neuron's top contexts over the corpus (:func:`_examples.contexts`: from the examples given when they hold
    it, else every neuron of the layer harvested from the session's texts in one pass; empty with neither)."""
    layer, index = args["layer"], args["index"]
    every = range(session.model.d_mlp)
    matches = _examples.is_neuron(layer, index)
    found = _examples.of_unit(session, matches, ("neurons", layer), lambda: neurons(layer, every))
    return {**_examples.contexts(found), "layer": layer, "index": index}


def top_neurons(session, args: dict[str, Any]) -> dict[str, Any]:
    """The :data:`TOP` MLP neurons of ``layer`` most active at ``position`` (indices and activations)."""
    layer, position = args["layer"], args["position"]
    acts = session.activation(f"blocks.{layer}.mlp.hook_post")[position].float()
    top = acts.topk(min(TOP, acts.numel()))
    return {"indices": top.indices.to(torch.int32), "values": top.values, "layer": layer, "position": position}


def _ablates(iv: Intervention, layer: int, index: int) -> bool:
    return isinstance(iv, Ablate) and iv.sae is None and iv.layer == layer and iv.neuron == index


def unablated(session, layer: int, index: int) -> tuple[Run, str]:
    """The run the neuron is shown in while it is ablated (its own activation would read the ablated value): the
    current interventions without this neuron's ablation, and how a caption names that run."""
    others = tuple(iv for iv in session.interventions if not _ablates(iv, layer, index))
    if not others:
        return session.clean_run, "in the clean run (its ablation is the only intervention)"
    named = "intervention" if len(others) == 1 else "interventions"
    label = f"without its ablation (the other {len(others)} {named} kept)"  # a run of its own
    key = f"unablated-{layer}.{index}"
    run = session.cached(key)
    if run is None:
        run = session.model.rerun(session.clean_run, others, capture=[f"blocks.{layer}.mlp.hook_post"])
        session.cache(key, run)
    return run, label


def neuron(session, args: dict[str, Any]) -> dict[str, Any]:
    """One MLP neuron's activation at every position, ``[pos]``; while it is ablated, also its activation in the
    run without that ablation (``clean``, the other interventions kept) and ``clean_label`` naming that run."""
    layer, index = args["layer"], args["index"]
    hook = f"blocks.{layer}.mlp.hook_post"
    out = {"values": session.activation(hook)[:, index].float(), "layer": layer, "index": index}
    if any(_ablates(iv, layer, index) for iv in session.interventions):
        run, out["clean_label"] = unablated(session, layer, index)
        out["clean"] = session.activation(hook, run)[:, index].float()
    return out


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield {"what": "neurons", "layer": selection["layer"], "position": selection["token"]}
    if selection.get("neuron") is not None:
        yield {"what": "neuron", "layer": selection["layer"], "index": selection["neuron"]}
        if _examples.available(session):
            yield {"what": "neuron_examples", "layer": selection["layer"], "index": selection["neuron"]}


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
    options={"examples": Option(None, _examples.DOC)},
    state=_examples.state,
    #: a neuron of the selected layer, or None
    selection={"neuron": Key(lambda s: None, _neuron)},
    requests=(
        Request("neurons", (("layer", panel.layers), ("position", panel.positions)), top_neurons),
        Request("neuron", (("layer", panel.layers), ("index", panel.neurons)), neuron),
        Request("neuron_examples", (("layer", panel.layers), ("index", panel.neurons)), neuron_examples),
    ),
    shape=lambda session: {"neuron_examples": _examples.available(session)},
    shown=lambda session: not session.model.arch.moe,  # a mixture of experts has no single layer of neurons
    selected=_selected,
    around=_around,
)
