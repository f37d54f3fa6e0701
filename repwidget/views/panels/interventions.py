"""Interventions: the current list (each with the kernel's label), the ablation modes, and the ``set``
command every click sends."""

from __future__ import annotations

from typing import Any

from ...interventions import MODES, Intervention, from_json
from ..panel import Panel


def set_interventions(session, content: dict[str, Any]) -> None:
    """``{interventions: [...]}``: the new list. An item is ``{"ref": key}``, an intervention the session listed
    (its ``key``), or the JSON of a new one (fields left out take their defaults; an SAE is an index into the
    session's SAEs)."""
    items = content.get("interventions")
    if not isinstance(items, list):
        raise ValueError("a set message needs a list of interventions")
    if len(items) > 256:
        raise ValueError(f"a set message takes at most 256 interventions, got {len(items)}")
    session.apply(tuple(_item(session, item) for item in items))


def _item(session, item: Any) -> Intervention:
    if isinstance(item, dict) and "ref" in item:
        return session.known(item["ref"])
    if isinstance(item, dict):
        item = {k: v for k, v in item.items() if k not in ("label", "key")}
    return from_json(item, saes=session.saes)


def modes(session) -> list[dict[str, Any]]:
    """The ablation modes, each with whether it can run now and, if not, why and what to do."""
    ready = session.model.reference is not None
    what = "texts" if session.kind == "text" else "images"
    why = {"reason": f"needs reference {what}", "hint": f"model.set_reference({what})"}
    return [
        {"name": mode, "available": mode == "zero" or ready} | ({} if mode == "zero" or ready else why)
        for mode in MODES
    ]


PANEL = Panel(
    name="interventions",
    place="top",
    order=10,
    kinds=("text", "cnn", "vit"),
    commands={"set": set_interventions},
    shape=lambda session: {"modes": modes(session)},
)
