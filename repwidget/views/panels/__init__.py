"""Every view's kernel side, one module each (``<name>.py`` with a module-level ``PANEL``), mirrored by
``js/src/views/<name>.ts``. The modules are found here, so adding a view edits no list: ``PANELS`` holds them in
the order the explorer lays them out (each panel's ``order``)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from ..panel import Panel


def discover(package: str = __name__, path: Iterable[str] = __path__) -> dict[str, Panel]:
    """The panels of the modules in ``package`` (at ``path``), by name, ordered by their ``order``; a module's
    ``PANEL`` must be named after the module, and no two panels may share a name or an option, nor two panels of
    the same kind of model (``Panel.kinds``) a selection key (a ViT's panel may declare ``head`` as the text
    attention panel does)."""
    found: list[Panel] = []
    for info in pkgutil.iter_modules(list(path)):
        if info.name.startswith("_"):
            continue
        panel = getattr(importlib.import_module(f"{package}.{info.name}"), "PANEL", None)
        if not isinstance(panel, Panel):
            raise TypeError(f"{package}.{info.name} has no PANEL = Panel(...)")
        if panel.name != info.name:
            raise ValueError(f"{package}.{info.name}: its panel is named {panel.name!r}, not after its module")
        found.append(panel)
    for what in ("options", "selection"):
        owner: dict[tuple[str, str], str] = {}
        for panel in found:
            for name in getattr(panel, what):
                for kind in panel.kinds if what == "selection" else ("any",):
                    if (kind, name) in owner:
                        first = owner[kind, name]
                        raise ValueError(f"panels {first} and {panel.name} both declare the {what} {name!r}")
                    owner[kind, name] = panel.name
    return {panel.name: panel for panel in sorted(found, key=lambda p: (p.order, p.name))}


PANELS: dict[str, Panel] = discover()

__all__ = ["PANELS", "discover"]
