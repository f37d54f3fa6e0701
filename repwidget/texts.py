"""Many texts for one job (training, dashboards, probes): every one tokenised and checked before any pass runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def token_ids(model: Any, texts: Iterable[Any]) -> list[list[int]]:
    """The token ids of each of ``texts`` (texts or id sequences), all checked up front.

    Tokenising is cheap next to a forward pass, so a bad text (empty, too long, not a text, an id out
    of range) fails at once, named by its index and its start, instead of after the work on the
    texts before it.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"expected a list of texts, got a single {type(texts).__name__}: pass [{preview(texts)}]")
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"expected a list of texts, got {type(texts).__name__}") from None
    ids = []
    for index, text in enumerate(items):
        try:
            ids.append(model.to_ids(text))
        except (TypeError, ValueError) as error:
            raise type(error)(f"text {index} ({preview(text)}): {error}") from None
    return ids


def preview(text: Any, n: int = 40) -> str:
    """The start of a text (or of the repr of anything else), quoted, for an error message."""
    shown = repr(text[:n] if isinstance(text, (str, bytes)) else text)
    if len(shown) > n + 3:
        shown = shown[:n] + "..."
    elif isinstance(text, (str, bytes)) and len(text) > n:
        shown += "..."
    return shown
