"""What a view is on the kernel side: a :class:`Panel`, declared once per view in ``views/panels/<name>.py``
(the front end's half is ``js/src/views/<name>.ts``).

A panel declares everything of its view: where it sits and in which order, the options ``rw.explore`` takes for
it and the state they make, the keys it adds to the shared selection, the requests its view makes and how each is
answered, the commands it sends, the hooks its answers read, what it adds to the ``shape`` the front end gets and
to ``ex.code()``, and which requests a saved page (``save_html``, ``embed``) must answer: ``selected`` (always
saved) and ``around`` (while they fit). ``views/panels/__init__.py`` finds every panel module by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .protocol import Bound, Request

if TYPE_CHECKING:
    from .session import Session

Selection = dict[str, Any]
#: a command from the front end: it changes the session's run (the message is checked inside); it may return a
#: selection for the widget to make afterwards (e.g. the position of a generated token clicked)
Command = Callable[["Session", dict[str, Any]], "Selection | None"]
#: where a view sits: across the top, in the main column, or in the side column beside it
PLACES = ("top", "main", "side")
#: the kinds of model a view can serve: a language model, a CNN image classifier, a vision transformer
KINDS = ("text", "cnn", "vit")


@dataclass(frozen=True)
class Option:
    """A keyword of ``rw.explore`` (and ``Session.of``) that a panel takes: its default and one line on it for
    the ``rw.explore`` docstring and for the error naming the options."""

    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class Key:
    """A key a panel adds to the shared selection: its default (from the session) and its check.

    ``check(session, out, given)`` returns the key's checked value; ``out`` holds the selection so far (defaults
    filled in, the keys before this one checked), ``given`` what the caller passed."""

    default: Callable[[Session], Any]
    check: Callable[[Session, Selection, Selection], Any]
    #: the checked value as it travels to the front end, when not as it is (``check`` reads either form back)
    to_json: Callable[[Session, Any], Any] | None = None


def _nothing(*_: Any) -> Iterator[dict[str, Any]]:
    yield from ()


@dataclass(frozen=True)
class Panel:
    """The kernel side of one view."""

    name: str
    #: where the view goes in the explorer (one of :data:`PLACES`), sent to the front end in ``shape["places"]``
    place: str = "main"
    #: the views are laid out (and their panels found) in this order, smallest first
    order: int = 1000
    #: the kinds of model (:data:`KINDS`) whose sessions have this view: a session takes the state, selection keys,
    #: requests and views of its model's kind's panels only (the image explorer's panels say ``("cnn", "vit")``)
    kinds: tuple[str, ...] = ("text",)
    #: the keywords of ``rw.explore`` this view takes, by name
    options: dict[str, Option] = field(default_factory=dict)
    #: the view's state (``session.state[name]``), made from its options (each given or its default), which it
    #: checks; made for every session, before its runs, whether the view shows or not
    state: Callable[[Session, dict[str, Any]], Any] = lambda session, options: None
    #: refuses (raises ValueError) a prompt the view's state does not fit (``ids``: the prompt's token ids), when the
    #: session opens and before it shows another prompt
    check_prompt: Callable[[Session, list[int]], None] = lambda session, ids: None
    #: the keys the view adds to the shared selection, in the order they are checked
    selection: dict[str, Key] = field(default_factory=dict)
    #: the lines the view adds to ``ex.code()`` (after the run's), e.g. the analysis it shows
    code: Callable[[Session], list[str]] = lambda session: []
    #: a request answered with every command (fresh data with no second round trip): ``{"what": request, field:
    #: selection key, ...}``, sent to the front end in ``shape["then"]``
    then: dict[str, str] | None = None
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

    def __post_init__(self) -> None:
        if self.place not in PLACES:
            raise ValueError(f"panel {self.name}: place must be one of {', '.join(PLACES)}, got {self.place!r}")
        if not self.kinds or any(kind not in KINDS for kind in self.kinds):
            raise ValueError(f"panel {self.name}: kinds must be some of {', '.join(KINDS)}, got {self.kinds!r}")


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


def vocab(session: Session, _: dict[str, Any]) -> int:
    """Token ids: 0..vocab_size - 1."""
    return session.model.vocab_size


def features(session: Session, args: dict[str, Any]) -> int:
    """Features of the SAE chosen by the ``sae`` field (parsed before)."""
    return session.saes[args["sae"]].d_sae


__all__ = ["KINDS", "PLACES", "Bound", "Command", "Key", "Option", "Panel", "Request", "Selection"]
