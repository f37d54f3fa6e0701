"""A session's answer to each message from the front end: a request's reply, or a command run (once per view and
sequence number) and acknowledged."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import protocol
from .catalog import COMMANDS

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

#: front-end views whose sequence numbers are remembered (the oldest is forgotten beyond)
MAX_VIEWS = 64

Message = tuple[dict[str, Any], list[memoryview]]


def handle(session: Session, content: Any) -> list[Message]:
    """The kernel's answer to one message from the front end. Never raises: a bad message gets an error
    reply (quoting at most a short prefix of what was wrong) and changes nothing."""
    request_id = protocol.message_id(content)
    try:
        if not isinstance(content, dict) or request_id is None:
            raise ValueError(f"a message must be a dict with an int or short string id, got {protocol.short(content)}")
        kind = content.get("type")
        if kind == "get":
            if session.model.weights_version() != session.clean_run.weights_version:
                session.apply(session.run.interventions)  # weights changed since the runs: both made again, views
                # told (a command's own apply does the same)
            return [session.reply(request_id, *session.get(content))]
        if kind not in COMMANDS:
            raise ValueError(f"unknown message type {protocol.short(kind, 40)}")
        if not session.editable:
            raise ValueError("this view does not take interventions; use rw.explore(model, text)")
        return _command(session, request_id, kind, content)
    except Exception as error:  # shown in the widget; the kernel and the current run are untouched
        log.debug("repwidget message failed", exc_info=True)
        session.error = protocol.cut(str(error), 2 * protocol.QUOTE)
        session.error_from = "get" if isinstance(content, dict) and content.get("type") == "get" else "command"
        return [({"type": "error", "id": request_id, "message": session.error}, [])]


def _command(session: Session, request_id: Any, kind: str, content: dict[str, Any]) -> list[Message]:
    """Run a command unless the same view already sent a newer one; then answer ``applied`` (with
    ``superseded`` when it was not run) and, if the message asks (``then``), the request that follows."""
    view, seq = content.get("view", ""), content.get("seq")
    if not isinstance(view, str) or len(view) > 64 or (seq is not None and type(seq) is not int):
        raise ValueError("a command's view must be a short string and its seq an int")
    superseded = seq is not None and seq <= session._seqs.get(view, -1)
    if not superseded:
        session.select_after = COMMANDS[kind](session, content)
        if seq is not None:
            session._seqs[view] = seq
            session._seqs.move_to_end(view)
            while len(session._seqs) > MAX_VIEWS:
                session._seqs.popitem(last=False)
    out: list[Message] = [
        ({"type": "applied", "id": request_id, "gen": session.generation, "superseded": superseded}, [])
    ]
    then = content.get("then")
    if then is not None:
        if not isinstance(then, dict):
            raise ValueError(f"then must be a request, got {protocol.short(then, 80)}")
        out.append(session.reply(request_id, *session.get(then)))
    return out
