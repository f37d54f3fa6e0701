"""The tables built from the panels (``views/panels/``): every view, request, command, option of ``rw.explore``
and selection key, each from the panel that declares it."""

from __future__ import annotations

from . import protocol
from .panel import Command, Key, Panel
from .panels import PANELS

#: every view the front end knows, in the order the explorer lays them out
VIEWS = tuple(PANELS)
#: what a request may ask for, from any view
REQUESTS: dict[str, protocol.Request] = {r.what: r for p in PANELS.values() for r in p.requests}
#: commands that change the run, from any view
COMMANDS: dict[str, Command] = {name: c for p in PANELS.values() for name, c in p.commands.items()}
#: every keyword of ``rw.explore`` a view takes, and the panel that takes it
OPTIONS: dict[str, Panel] = {name: p for p in PANELS.values() for name in p.options}
#: the selection's keys every view shares: the position and the layer (neurons, logit lens, probes, projector; it
#: opens on the probes' best layer when there are probes)
SHARED_KEYS: dict[str, Key] = {
    "token": Key(lambda s: s.n_tokens - 1, lambda s, out, given: protocol.index(out, "token", s.n_tokens, "selection")),
    "layer": Key(
        lambda s: s.probes[0].best_layer if s.probes else 0,
        lambda s, out, given: protocol.index(out, "layer", s.model.n_layers, "selection"),
    ),
}
#: the selection's keys, shared and each panel's (e.g. the attention head, a neuron, an SAE's feature, the
#: projector's lasso), in the order they are checked; a session checks its own kind's (:func:`keys_of`)
KEYS: dict[str, Key] = {**SHARED_KEYS, **{name: key for p in PANELS.values() for name, key in p.selection.items()}}
SELECTION_KEYS = tuple(KEYS)


def panels_of(kind: str) -> dict[str, Panel]:
    """The panels serving models of ``kind`` (``"text"``, ``"cnn"``, ``"vit"``: each panel's ``kinds``), in order."""
    return {name: p for name, p in PANELS.items() if kind in p.kinds}


def keys_of(kind: str) -> dict[str, Key]:
    """The selection's keys of a session of ``kind``: the shared ones, then those of its kind's panels."""
    return {**SHARED_KEYS, **{name: key for p in panels_of(kind).values() for name, key in p.selection.items()}}


def options_doc() -> str:
    """The views' options of ``rw.explore``, one paragraph each (from the panels that take them)."""
    return "\n".join(p.options[name].doc for name, p in OPTIONS.items() if p.options[name].doc)


def options_list() -> str:
    """Every view's options, named with their views, for an error about an unknown one."""
    return "; ".join(f"{p.name}: {', '.join(p.options)}" for p in PANELS.values() if p.options)
