"""What a view is on the kernel side: a :class:`Panel`, declared once per view in ``views/panels/<name>.py``
(the front end's half is ``js/src/views/<name>.ts``).

A panel declares the requests its view makes and how each is answered, the commands it sends, the hooks
its answers read, what it adds to the ``shape`` the front end gets, and which requests a saved page
(``save_html``, ``embed``) must answer: ``selected`` (always saved) and ``around`` (while they fit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .protocol import Bound, Request

if TYPE_CHECKING:
    from .session import Session

Selection = dict[str, Any]
#: a command from the front end: it changes the session's run; the message is checked inside
Command = Callable[["Session", dict[str, Any]], None]


def _nothing(*_: Any) -> Iterator[dict[str, Any]]:
    yield from ()


@dataclass(frozen=True)
class Panel:
    """The kernel side of one view."""

    name: str
    requests: tuple[Request, ...] = ()
    commands: dict[str, Command] = field(default_factory=dict)
    #: whether the view can show for this session (e.g. the features view needs SAEs)
    shown: Callable[[Session], bool] = lambda session: True
    #: the hooks its answers read, captured in every run the view shows
    hooks: Callable[[Session], list[str]] = lambda session: []
    #: the side of the attention summary (thumbnails, head scores) its answers read, reduced in the clean pass
    summary: int | None = None
    #: what it adds to the ``shape`` trait (sizes and settings the front end needs)
    shape: Callable[[Session], dict[str, Any]] = lambda session: {}
    #: requests the view makes for ``selection``: a saved page always answers them
    selected: Callable[[Session, Selection], Iterator[dict[str, Any]]] = _nothing
    #: requests for the rest of the view (other heads, positions...), cheapest first: saved while they fit
    around: Callable[[Session, Selection], Iterator[dict[str, Any]]] = _nothing
    #: called before a saved page answers many requests (compute shared work once)
    prepare: Callable[[Session, Selection], None] = lambda session, selection: None


# -- bounds of request fields -------------------------------------------------------------
def layers(session: Session, _: dict[str, Any]) -> int:
    return session.model.n_layers


def heads(session: Session, _: dict[str, Any]) -> int:
    return session.model.n_heads


def positions(session: Session, _: dict[str, Any]) -> int:
    return session.n_tokens


def ends(session: Session, _: dict[str, Any]) -> int:
    """An exclusive end position: 1..n_tokens."""
    return session.n_tokens + 1


def saes(session: Session, _: dict[str, Any]) -> int:
    if not session.saes:
        raise ValueError("this view has no SAEs; pass saes=[sae] to rw.explore")
    return len(session.saes)


def probes(session: Session, _: dict[str, Any]) -> int:
    if not session.probes:
        raise ValueError("this view has no probes; pass probes=[p] to rw.explore")
    return len(session.probes)


def neurons(session: Session, _: dict[str, Any]) -> int:
    return session.model.d_mlp


def features(session: Session, args: dict[str, Any]) -> int:
    """Features of the SAE chosen by the ``sae`` field (parsed before)."""
    return session.saes[args["sae"]].d_sae


__all__ = ["Bound", "Command", "Panel", "Request", "Selection"]
