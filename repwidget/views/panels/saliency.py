"""Saliency over the image: the gradient or integrated gradients of a class's logit to the input pixels, as a signed
heat map over the image, with integrated gradients' completeness error in the caption (CNN and ViT alike)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...analyses.vision import METHODS
from ..panel import Key, Panel, Request
from ..protocol import index
from ._vit_payloads import IG_STEPS, saliency_overlay


def _classes(session, _: dict[str, Any]) -> int:
    return len(session.model.classes)


def _methods(session, _: dict[str, Any]) -> int:
    return len(METHODS)


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """The map of class ``target`` by method ``METHODS[method]`` for the current run (with its interventions)."""
    return saliency_overlay(session.run, args["target"], METHODS[args["method"]], IG_STEPS)


def _check_class(session, out, given) -> int:
    return index(out, "saliency_class", _classes(session, out), "selection")


def _check_method(session, out, given) -> int:
    return index(out, "saliency_method", len(METHODS), "selection")


def _target(session) -> int:
    return int(session.clean_run.logits.argmax())


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield {"what": "saliency", "target": selection["saliency_class"], "method": selection["saliency_method"]}


PANEL = Panel(
    name="saliency",
    place="main",
    order=50,
    kinds=("cnn", "vit"),
    selection={
        "saliency_class": Key(_target, _check_class),
        "saliency_method": Key(lambda s: 0, _check_method),
    },
    requests=(Request("saliency", (("target", _classes), ("method", _methods)), answer, frozenset({"map"})),),
    shape=lambda session: {"saliency_methods": list(METHODS), "class_names": list(session.model.classes)},
    code=lambda s: [f'rw.analyses.saliency(run, method="integrated_gradients", steps={IG_STEPS})  # the top class'],
    selected=_selected,
)
