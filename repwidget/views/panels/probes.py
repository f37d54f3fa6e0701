"""Probes: accuracy by layer, each token's class probabilities at the selected layer, the SAE features
nearest the probe's direction, the direction's top contexts over a corpus (``examples=`` or ``texts=``), and two
commands: steer along the direction, or project it out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ... import analyses
from ...hook_names import hook_for, same_activation
from ...interventions import Steer
from ...units import Direction
from .. import panel
from ..panel import Panel, Request
from ..protocol import index
from . import _examples
from ._projector_lasso import lassoed, lassoed_field

#: how many SAE features nearest the probe's direction the view lists, per SAE
NEAREST = 5


def probe(session, args: dict[str, Any]) -> dict[str, Any]:
    """Probe ``probe``'s held-out accuracy by layer and, at ``layer``, each token's probability of each class,
    and for each SAE reading the same activation, the features whose decoder directions are closest to the
    probe's direction: ``near_sae``, ``near_features`` and ``near_cosines``; ``toward``: the class steering
    defaults to (:func:`toward`)."""
    probes, layer = session.probes[args["probe"]], args["layer"]
    out: dict[str, Any] = {"accuracy": torch.tensor(probes.accuracy), "layer": layer, "classes": probes.classes}
    if layer not in probes.layers:
        return out
    out["probs"] = probes.logits(session.run[hook_for(probes.site, layer)], layer).softmax(-1).float()
    out["toward"] = toward(probes.classes, out["probs"][-1])
    direction = probes.direction(layer)
    near_sae, near_features, near_cosines = [], [], []
    for i, sae in enumerate(session.saes):
        if same_activation(sae.hook, probes.site, layer):
            indices, cosines = analyses.nearest(sae.decoder_vectors(), direction, NEAREST)
            near_sae += [i] * len(indices)
            near_features += indices.tolist()
            near_cosines += cosines.tolist()
    out.update(near_sae=near_sae, near_features=near_features, near_cosines=torch.tensor(near_cosines))
    return out


def toward(classes: list[str], last: torch.Tensor) -> str:
    """The class steering defaults to: the likeliest one the probe does *not* read at the prompt's last token
    (``last``: its class probabilities), so that steering shows a change."""
    return classes[int(last.topk(min(2, len(classes))).indices[-1])]


def over_lasso(session, args: dict[str, Any]) -> dict[str, Any]:
    """Probe ``probe``'s class probabilities at ``layer`` averaged over the lassoed positions (``tokens``):
    ``mean`` ``[classes]`` (absent where the layer was not probed); ``over``: how many positions."""
    probes, layer, tokens = session.probes[args["probe"]], args["layer"], lassoed(session, args)
    out: dict[str, Any] = {"layer": layer, "classes": probes.classes, "over": len(tokens)}
    if layer in probes.layers:
        acts = session.run[hook_for(probes.site, layer)][tokens]
        out["mean"] = probes.logits(acts, layer).softmax(-1).float().mean(0)
    return out


def probe_examples(session, args: dict[str, Any]) -> dict[str, Any]:
    """The top contexts of probe ``probe``'s direction at ``layer`` (``Direction.of_probe``, toward its default
    class): from the examples given when they hold that direction, else every probed layer's direction harvested
    from the session's texts in one pass; empty with neither, or where the layer was not probed."""
    number, layer = args["probe"], args["layer"]
    probes = session.probes[number]
    found = None
    if layer in probes.layers:
        direction = Direction.of_probe(probes, layer)
        found = _examples.of_unit(
            session,
            _examples.is_direction(direction.hook_name, direction.vector),
            ("probe", number),
            lambda: [Direction.of_probe(probes, probed) for probed in probes.layers],
        )
    return {**_examples.contexts(found), "probe": number, "layer": layer}


def steer_probe(session, content: dict[str, Any]) -> None:
    """Steer along a probe's direction (``{probe, layer, toward, strength}``), replacing an earlier vector
    steer at that layer."""
    what = "steer_probe"
    number = index(content, "probe", panel.probes(session, {}), what)
    layer = index(content, "layer", session.model.n_layers, what)
    classes = session.probes[number].classes
    toward = content.get("toward")
    if toward not in classes:
        raise ValueError(f"steer_probe: toward must be one of {classes}, got {toward!r:.40}")
    strength = content.get("strength")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not -100 <= strength <= 100:
        raise ValueError(f"steer_probe: strength must be a number in -100..100, got {strength!r:.40}")
    steer = session.probes[number].steering(layer, toward, float(strength))
    kept = [
        iv for iv in session.interventions if not (isinstance(iv, Steer) and iv.sae is None and iv.layer == steer.layer)
    ]
    session.apply((*kept, steer))


def project_probe(session, content: dict[str, Any]) -> None:
    """Toggle projecting a probe's direction out of the residual stream (``{probe, layer}``)."""
    number = index(content, "probe", panel.probes(session, {}), "project_probe")
    layer = index(content, "layer", session.model.n_layers, "project_probe")
    projection = session.probes[number].projection(layer)
    current = session.interventions
    if projection in current:
        session.apply(tuple(iv for iv in current if iv != projection))
    else:
        session.apply((*current, projection))


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield from ({"what": "probe", "probe": i, "layer": selection["layer"]} for i in range(len(session.probes)))
    if selection.get("tokens"):
        over = {"what": "probe_over", "layer": selection["layer"], "tokens": selection["tokens"]}
        yield from ({**over, "probe": i} for i in range(len(session.probes)))
    if _examples.available(session):
        layer = selection["layer"]
        yield from ({"what": "probe_examples", "probe": i, "layer": layer} for i in range(len(session.probes)))


def _around(session, selection) -> Iterator[dict[str, Any]]:
    for i in range(len(session.probes)):
        yield from ({"what": "probe", "probe": i, "layer": layer} for layer in range(session.model.n_layers))


_PROBE_LAYER = (("probe", panel.probes), ("layer", panel.layers))

PANEL = Panel(
    name="probes",
    order=60,
    requests=(
        Request("probe", _PROBE_LAYER, probe, frozenset({"probs"})),
        Request("probe_over", _PROBE_LAYER, over_lasso, extra=lassoed_field),
        Request("probe_examples", _PROBE_LAYER, probe_examples),
    ),
    commands={"steer_probe": steer_probe, "project_probe": project_probe},
    shown=lambda session: bool(session.probes),
    hooks=lambda session: [hook_for(p.site, layer) for p in session.probes for layer in p.layers],
    shape=lambda session: {"probe_examples": _examples.available(session)},
    selected=_selected,
    around=_around,
)
