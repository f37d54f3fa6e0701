"""Neurons: the MLP neurons of a layer most active at the selected token, one neuron at every position, and a
neuron's top contexts over a corpus (``examples=``: a ``rw.TopExamples``, or harvested from ``texts=``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ...analyses.top_examples import TopExamples, top_examples
from ...interventions import Ablate, Intervention
from ...run import Run
from ...units import Neuron, neurons
from .. import panel
from ..panel import Key, Option, Panel, Request
from ..protocol import index

TOP = 12
#: how many top contexts of a neuron the view shows
CONTEXTS = 5
EXAMPLES = (
    "``examples=rw.top_examples(model, texts, rw.units.neurons(layer, range(model.d_mlp)))`` (a ``rw.TopExamples``) "
    "shows a selected neuron's top contexts; with ``texts=`` alone they are harvested from those texts, a layer at "
    "a time."
)


@dataclass
class Examples:
    """The top examples given (``examples=``), and those harvested from the session's texts by (layer, weights
    version), the last four layers kept."""

    given: TopExamples | None = None
    harvested: OrderedDict[tuple[int, int], TopExamples] = field(default_factory=OrderedDict)


def state(session, options: dict[str, Any]) -> Examples:
    given = options["examples"]
    if given is not None and not isinstance(given, TopExamples):
        raise TypeError(f"examples must be a rw.TopExamples (from rw.top_examples), got {type(given).__name__}")
    return Examples(given)


def examples_of(session, layer: int, index: int) -> tuple[TopExamples, int] | None:
    """The top examples holding neuron ``index`` of ``layer`` and its row there: the given ones if they hold it, else
    every neuron of the layer harvested from the session's texts (one pass), or None with neither."""
    kept: Examples = session.state["neurons"]
    if kept.given is not None and Neuron(layer, index) in kept.given:
        return kept.given, kept.given.index(Neuron(layer, index))
    if session.texts is None:
        return None
    key = (layer, session.model.weights_version())
    if key not in kept.harvested:
        units = neurons(layer, range(session.model.d_mlp))
        kept.harvested[key] = top_examples(session.model, session.texts, units, k=CONTEXTS, progress=False)
        while len(kept.harvested) > 4:
            kept.harvested.popitem(last=False)
    return kept.harvested[key], index


def neuron_examples(session, args: dict[str, Any]) -> dict[str, Any]:
    """A neuron's top :data:`CONTEXTS` contexts over the corpus: each window's tokens, the neuron's value on each,
    the peak's index in it, and the text it is from (empty where no examples hold the neuron)."""
    layer, index = args["layer"], args["index"]
    found = examples_of(session, layer, index)
    shown = found[0].examples(found[1])[:CONTEXTS] if found is not None else []
    return {
        "tokens": [e.tokens for e in shown],
        "peaks": [e.peak for e in shown],
        "values": torch.tensor([v for e in shown for v in e.values], dtype=torch.float32),
        "texts": [e.text_index for e in shown],
        "layer": layer,
        "index": index,
    }


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
        if _has_examples(session):
            yield {"what": "neuron_examples", "layer": selection["layer"], "index": selection["neuron"]}


def _has_examples(session) -> bool:
    return session.state["neurons"].given is not None or session.texts is not None


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
    options={"examples": Option(None, EXAMPLES)},
    state=state,
    #: a neuron of the selected layer, or None
    selection={"neuron": Key(lambda s: None, _neuron)},
    requests=(
        Request("neurons", (("layer", panel.layers), ("position", panel.positions)), top_neurons),
        Request("neuron", (("layer", panel.layers), ("index", panel.neurons)), neuron),
        Request("neuron_examples", (("layer", panel.layers), ("index", panel.neurons)), neuron_examples),
    ),
    shape=lambda session: {"neuron_examples": _has_examples(session)},
    shown=lambda session: not session.model.arch.moe,  # a mixture of experts has no single layer of neurons
    selected=_selected,
    around=_around,
)
