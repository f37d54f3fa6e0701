"""Top contexts of the selected unit for every view that selects one (neurons, SAE features, attention heads, probe
directions): from the ``rw.TopExamples`` given to ``rw.explore(examples=...)`` when they hold the unit, else
harvested from the explorer's ``texts=`` (every unit of that kind in one layer, or every probed layer of a probe, in
one batched pass), or none. One option, one place."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ...analyses.top_examples import TopExamples, top_examples
from ...units import Direction, Feature, Head, Neuron

#: how many top contexts of a unit a view shows
CONTEXTS = 5
#: harvests kept per session (each for one group of units and one weights version)
KEPT = 4
DOC = (
    "``examples=rw.top_examples(model, texts, units)`` (a ``rw.TopExamples``) shows the top contexts of the selected "
    "unit of any kind it holds: a neuron (``rw.units.neurons(layer, range(model.d_mlp))``), an SAE feature "
    "(``rw.units.features(sae)``, instead of the features view's own search of ``texts=``), a head "
    "(``rw.units.Head(layer, h)``, by its output norm) or a probe's direction (``rw.units.Direction.of_probe``); "
    "units it does not hold are harvested from ``texts=`` when given."
)


@dataclass
class Examples:
    """The top examples given (``examples=``), and those harvested from the session's texts, by (what, weights
    version), the last :data:`KEPT` kept."""

    given: TopExamples | None = None
    harvested: OrderedDict[tuple, TopExamples] = field(default_factory=OrderedDict)


def state(session, options: dict[str, Any]) -> Examples:
    """The neurons panel's state (it takes the option): the examples given, checked."""
    given = options["examples"]
    if given is not None and not isinstance(given, TopExamples):
        raise TypeError(f"examples must be a rw.TopExamples (from rw.top_examples), got {type(given).__name__}")
    return Examples(given)


def kept(session) -> Examples:
    return session.state["neurons"]


def given(session) -> TopExamples | None:
    """The top examples given to the explorer, or None."""
    return kept(session).given


def available(session) -> bool:
    """Whether a view can show top contexts at all: examples given, or texts to harvest from."""
    return given(session) is not None or session.texts is not None


def find(examples: TopExamples | None, matches: Callable[[Any], bool]) -> tuple[TopExamples, int] | None:
    """The first unit of ``examples`` that ``matches`` and its row, or None."""
    if examples is None:
        return None
    return next(((examples, j) for j, unit in enumerate(examples.units) if matches(unit)), None)


def harvested(session, key: tuple, units: Callable[[], list[Any]]) -> TopExamples | None:
    """The top examples of ``units()`` over the session's texts (harvested once per ``key`` and weights version), or
    None without texts."""
    if session.texts is None:
        return None
    store = kept(session)
    key = (*key, session.model.weights_version())
    if key not in store.harvested:
        store.harvested[key] = top_examples(session.model, session.texts, units(), k=CONTEXTS, progress=False)
        while len(store.harvested) > KEPT:
            store.harvested.popitem(last=False)
    return store.harvested[key]


def of_unit(session, matches: Callable[[Any], bool], key: tuple, units: Callable[[], list[Any]]):
    """The examples holding the unit ``matches`` picks and its row: the given ones first, else a harvest of
    ``units()`` (which holds it) from the session's texts; None with neither."""
    found = find(given(session), matches)
    if found is None:
        found = find(harvested(session, key, units), matches)
    return found


def contexts(found: tuple[TopExamples, int] | None) -> dict[str, Any]:
    """The top :data:`CONTEXTS` contexts of a unit as a reply's fields: each window's ``tokens``, the unit's
    ``values`` on them (flat), the ``peaks``' indices, the ``texts`` they are from and the unit's ``label`` (empty
    where ``found`` is None)."""
    shown = found[0].examples(found[1])[:CONTEXTS] if found is not None else []
    return {
        "tokens": [e.tokens for e in shown],
        "peaks": [e.peak for e in shown],
        "values": torch.tensor([v for e in shown for v in e.values], dtype=torch.float32),
        "texts": [e.text_index for e in shown],
        "label": found[0].labels[found[1]] if found is not None else "",
    }


def is_neuron(layer: int, index: int) -> Callable[[Any], bool]:
    return lambda unit: isinstance(unit, Neuron) and unit.layer == layer and unit.index == index


def is_feature(sae: Any, index: int) -> Callable[[Any], bool]:
    """An SAE feature, its SAE matched by identity or by name and hook (a loaded copy of the same SAE)."""

    def matches(unit: Any) -> bool:
        if not isinstance(unit, Feature) or unit.index != index:
            return False
        return unit.sae is sae or (unit.sae.name == sae.name and unit.sae.hook == sae.hook)

    return matches


def is_head(layer: int, head: int) -> Callable[[Any], bool]:
    """A head scored by its output norm (the score the attention view's head is shown by)."""
    return lambda unit: isinstance(unit, Head) and (unit.layer, unit.head, unit.score) == (layer, head, "out_norm")


def is_direction(hook: str, vector: torch.Tensor) -> Callable[[Any], bool]:
    """A direction at ``hook`` along ``vector`` (same up to scale: cosine above 0.9999)."""

    def matches(unit: Any) -> bool:
        if not isinstance(unit, Direction) or unit.hook_name != hook or len(unit.vector) != len(vector):
            return False
        cosine = torch.nn.functional.cosine_similarity(unit.vector.double(), vector.double().cpu(), dim=0)
        return bool(cosine > 0.9999)

    return matches
