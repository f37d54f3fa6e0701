"""The projector's texts (``points=`` of ``rw.explore``) and how they are reduced to 2-D (``projection=``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: how the projector reduces token representations to 2-D
PROJECTIONS = ("pca", "umap")
UMAP_INSTALL = "pip install umap-learn"


@dataclass(frozen=True)
class Points:
    """The texts whose tokens the projector shows, and their labels (one per text) when given."""

    texts: list[Any]
    labels: list[str] | None
    projection: str = "pca"


def umap_installed() -> bool:
    """Whether umap-learn is installed (found without importing it, which takes seconds; a folder left behind
    by an uninstall, such as numba's cache, is not an installation)."""
    spec = importlib.util.find_spec("umap")
    return spec is not None and spec.origin not in (None, "namespace")


def points_of(examples: Iterable[Any] | None, projection: str = "pca") -> Points | None:
    """``points=`` of ``rw.explore``: texts (or token id lists), ``(text, label)`` pairs, or ``rw.demo.Example``;
    ``projection``: ``"pca"`` or ``"umap"`` (when umap-learn is installed)."""
    if projection not in PROJECTIONS:
        raise ValueError(f'projection must be "pca" or "umap", got {projection!r:.40}')
    if examples is None:
        if projection != "pca":
            raise ValueError("projection= is the projector's; give it texts with points=[...]")
        return None
    if projection == "umap" and not umap_installed():
        raise ImportError(f'projection="umap" needs the umap-learn package: {UMAP_INSTALL}')
    if isinstance(examples, (str, bytes)):
        raise TypeError("points must be a list of texts or (text, label) pairs, not one text")
    items = list(examples)
    if not items:
        raise ValueError("points is empty; give texts whose tokens the projector shows")
    plain = [isinstance(x, str) or (isinstance(x, list) and all(type(i) is int for i in x)) for x in items]
    if all(plain):
        return Points(items, None, projection)
    from ...probes.probes import _examples

    texts, labels = _examples(items, None)
    return Points(texts, labels, projection)
