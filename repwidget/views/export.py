"""A widget saved as one self-contained HTML file: the views, their state and the answers they need.

The page loads the same front end as the notebook (inlined, no CDN) over a model with no kernel
behind it: what the views ask for is answered from answers computed here. The selection's own
answers are always saved; then, while the file stays under ``max_bytes``, every head's pattern,
every position's predictions and logit lens, every layer's neurons, every SAE's features and every
probe layer, so that clicking around the saved page still shows data.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._version import __version__
from .assets import BUNDLE
from .panel import Selection
from .session import Session


def _requests(session: Session, selection: Selection) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(tier, request)``: every view's requests for the selection (tier 0), then the rest (tier 1)."""
    for panel in session.panels:
        yield from ((0, request) for request in panel.selected(session, selection))
    for panel in session.panels:
        yield from ((1, request) for request in panel.around(session, selection))


def saved_answer(session: Session, request: dict[str, Any]) -> dict[str, Any]:
    """One request and the session's reply to it, with the buffers as base64."""
    reply, buffers = session.reply(0, *session.get(request))
    del reply["id"]
    return {
        "request": request,
        "reply": reply,
        "buffers": [base64.b64encode(bytes(b)).decode("ascii") for b in buffers],
    }


def snapshot(session: Session, selection: Selection, max_bytes: int = 8_000_000) -> list[dict[str, Any]]:
    """The saved answers: the selection's always, the others while they fit in ``max_bytes``."""
    for panel in session.panels:
        panel.prepare(session, selection)
    saved: dict[str, dict[str, Any]] = {}
    size = 0
    for tier, request in _requests(session, selection):
        key = json.dumps(request, sort_keys=True)
        if key in saved:
            continue
        if tier and size >= max_bytes:
            break
        answer = saved_answer(session, request)
        cost = sum(len(b) for b in answer["buffers"]) + len(json.dumps(answer["reply"]))
        if tier and size + cost > max_bytes:
            continue  # a smaller answer further on may still fit
        saved[key] = answer
        size += cost
    return list(saved.values())


def unsaved(max_bytes: int) -> str:
    """What a saved page says when a click asks for something it does not hold: what it saved, how to save more."""
    more = f"while the file stayed under {max_bytes / 1e6:g} MB" if max_bytes >= 100_000 else "none (max_bytes=0)"
    return (
        f"The page holds the views as they were selected when saved, and other heads, positions and layers: {more}. "
        "To show this one, select it in the notebook and save again (ex.save_html(path)), or save more: "
        f"ex.save_html(path, max_bytes={2 * max(max_bytes, 4_000_000):_})."
    )


def _script_json(value: Any) -> str:
    """JSON that can sit inside a <script> element: with every ``<`` escaped, no ``</script>`` or
    ``<!--`` can end it early."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="repwidget {version}">
<title>{title}</title>
<style>
body {{ font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }}
.rw-static-banner {{ background: #f6f6f6; border: 1px solid #ddd; border-radius: 6px; padding: 6px 10px;
  margin-bottom: 10px; max-width: 1200px; }}
.rw-static-banner code {{ font-family: ui-monospace, monospace; font-size: 12px; }}
</style>
</head>
<body>
<div class="rw-static-banner" data-rw-static-banner>
<strong>{title}</strong>: a static snapshot saved by repwidget {version} on {date}.
Clicking selects; nothing re-runs. Interventions (fixed): {interventions}.
</div>
<div id="rw-view"></div>
<noscript>This page needs JavaScript to draw the views.</noscript>
<script type="application/json" id="rw-snapshot">{data}</script>
<script type="module">
const data = JSON.parse(document.getElementById("rw-snapshot").textContent);
const url = URL.createObjectURL(new Blob([data.code], {{ type: "text/javascript" }}));
const frontend = await import(url);
frontend.renderStatic(document.getElementById("rw-view"), data.state, data.replies);
document.body.dataset.rwReady = "";
</script>
</body>
</html>
"""


def save_html(
    session: Session,
    path: str | Path,
    selection: Selection | None = None,
    title: str | None = None,
    max_bytes: int = 8_000_000,
) -> Path:
    """Write the views of ``session`` as one self-contained HTML file at ``path``; return the path."""
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string (the page's title), got {type(title).__name__} {title!r:.40}")
    path = Path(path)
    selection = session.check_selection(selection if selection is not None else session.default_selection())
    code = BUNDLE.read_text(encoding="utf-8")
    state = {
        **session.traits(),
        "selection": session.selection_json(selection),
        "mode": "zero",
        "error": "",
        "unsaved": unsaved(max_bytes),
    }
    data = {"code": code, "state": state, "replies": snapshot(session, selection, max_bytes)}
    tokenizer, ids = getattr(session.model, "tokenizer", None), session.run.token_ids
    prompt = tokenizer.decode(ids) if tokenizer is not None else f"{len(ids)} tokens"
    if session.kind != "text":  # an image explorer's: the image's path, if it was one
        prompt = f"{session.run.top_classes(1)[0][1]!r} predicted for {session.text or 'an image'}"
    title = title or f"repwidget: {prompt[:60]}{'…' if len(prompt) > 60 else ''}"
    page = PAGE.format(
        version=__version__,
        title=html.escape(title),
        date=datetime.date.today().isoformat(),
        interventions=", ".join(f"<code>{html.escape(repr(iv))}</code>" for iv in session.interventions) or "none",
        data=_script_json(data),
    )
    path.write_text(page, encoding="utf-8")
    return path
