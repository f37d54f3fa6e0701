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
from typing import TYPE_CHECKING, Any

from .. import __version__
from . import payloads, protocol

if TYPE_CHECKING:
    from .widget import RunWidget

#: how many positions the logit lens shows (js/src/views/lens.ts LENS_WIDTH)
LENS_WIDTH = 16
#: the traits the page needs (the others are the kernel's business)
STATE = ("views", "tokens", "token_ids", "shape", "selection", "generation", "intervention_list", "mode",
         "saes", "probes", "error", "warning")  # fmt: skip


def lens_window(token: int, n: int, width: int = LENS_WIDTH) -> tuple[int, int]:
    """The positions the logit lens shows around ``token`` (as the front end computes them)."""
    start = max(0, min(n - width, token - width // 2))
    return start, min(n, start + width)


def _selected(widget: RunWidget) -> Iterator[dict[str, Any]]:
    """The requests the views make for the current selection."""
    sel, views, n = widget.selection, widget.views, len(widget.run.token_ids)
    token, layer, head = sel["token"], sel["layer"], sel["head"]
    if "attention" in views:
        yield {"what": "overview"}
        yield {"what": "pattern", "layer": layer, "head": head}
    if "lens" in views:
        start, stop = lens_window(token, n)
        yield {"what": "lens", "start": start, "stop": stop}
    if "predictions" in views:
        yield {"what": "predictions", "position": token}
    if "neurons" in views:
        yield {"what": "neurons", "layer": layer, "position": token}
        if sel.get("neuron") is not None:
            yield {"what": "neuron", "layer": layer, "index": sel["neuron"]}
    if "features" in views:
        yield {"what": "features", "sae": sel.get("sae", 0), "position": token}
        if sel.get("feature") is not None:
            yield {"what": "feature", "sae": sel.get("sae", 0), "index": sel["feature"]}
            if widget.shape.get("dashboards"):
                yield {"what": "dashboard", "sae": sel.get("sae", 0), "index": sel["feature"]}
    if "probes" in views:
        for index in range(len(widget.probes)):
            yield {"what": "probe", "probe": index, "layer": layer}


def _around(widget: RunWidget) -> Iterator[dict[str, Any]]:
    """Requests for the rest of the page, cheapest and most clicked first. The logit lens (a
    vocabulary-wide product per layer and position) is saved for the tokens it shows."""
    views, shape = widget.views, widget.shape
    n, n_layers, n_heads = shape["n_tokens"], shape["n_layers"], shape["n_heads"]
    if "predictions" in views:
        yield from ({"what": "predictions", "position": p} for p in range(n))
    if "lens" in views:
        shown = range(*lens_window(widget.selection["token"], n))
        windows = dict.fromkeys(lens_window(p, n) for p in shown)
        yield from ({"what": "lens", "start": start, "stop": stop} for start, stop in windows)
    if "probes" in views:
        for index in range(len(widget.probes)):
            yield from ({"what": "probe", "probe": index, "layer": layer} for layer in range(n_layers))
    if "features" in views:
        for sae in range(len(widget.saes)):
            yield from ({"what": "features", "sae": sae, "position": p} for p in range(n))
    if "attention" in views:
        yield from ({"what": "pattern", "layer": la, "head": he} for la in range(n_layers) for he in range(n_heads))
    if "neurons" in views:
        yield from ({"what": "neurons", "layer": la, "position": p} for la in range(n_layers) for p in range(n))


class _Answers:
    """Answers to saved requests; predictions and the logit lens computed in batches, not one by one."""

    CHUNK = 64  # positions unembedded at once

    def __init__(self, widget: RunWidget) -> None:
        self.widget = widget
        self.logits: dict[int, Any] = {}  # the run's logits by position, computed a chunk at a time
        self.lens: dict[str, Any] | None = None

    def payload(self, what: str, args: dict[str, Any]) -> dict[str, Any]:
        widget, n = self.widget, len(self.widget.run.token_ids)
        if what == "predictions":
            position = args["position"]
            if position not in self.logits:
                chunk = range(position, min(n, position + self.CHUNK))
                clean, run = widget.clean_run.logits_at(chunk), widget.run.logits_at(chunk)
                for i, p in enumerate(chunk):
                    widget._clean_logits.setdefault(p, clean[i].float())
                    self.logits[p] = run[i]
            logits = self.logits.pop(position)
            return payloads.predictions(
                widget.clean_run, widget.run, position, clean_logits=widget._clean_logits, logits=logits
            )
        if what == "lens":
            token = widget.selection["token"]
            if self.lens is None:  # every window shown around the selected token, in one pass
                first, last = lens_window(token, n)
                start, stop = lens_window(first, n)[0], lens_window(last - 1, n)[1]
                self.lens = payloads.lens(widget.run, start, stop)
            full_stop = self.lens["start"] + self.lens["ids"].shape[1]
            if self.lens["start"] <= args["start"] and args["stop"] <= full_stop:
                return payloads.lens_slice(self.lens, args["start"], args["stop"])
        return widget._payload(what, args)

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        what, args = protocol.parse_get({"type": "get", "id": 0, **request}, self.widget._limits())
        return _saved(self.widget, request, what, self.payload(what, args))


def _saved(widget: RunWidget, request: dict[str, Any], what: str, data: dict[str, Any]) -> dict[str, Any]:
    content, buffers = protocol.pack(data)
    return {
        "request": request,
        "reply": {"type": "reply", "what": what, "gen": widget.generation, "data": content},
        "buffers": [base64.b64encode(bytes(b)).decode("ascii") for b in buffers],
    }


def snapshot(widget: RunWidget, max_bytes: int = 8_000_000) -> list[dict[str, Any]]:
    """The saved answers: the selection's always, the others while they fit in ``max_bytes``."""
    saved: dict[str, dict[str, Any]] = {}
    size = 0
    answer_to = _Answers(widget)
    for tier, requests in enumerate((_selected(widget), _around(widget))):
        for request in requests:
            key = json.dumps(request, sort_keys=True)
            if key in saved:
                continue
            if tier and size >= max_bytes:
                break
            answer = answer_to(request)
            cost = sum(len(b) for b in answer["buffers"]) + len(json.dumps(answer["reply"]))
            if tier and size + cost > max_bytes:
                continue  # a smaller answer further on may still fit
            saved[key] = answer
            size += cost
    return list(saved.values())


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


def save_html(widget: RunWidget, path: str | Path, title: str | None = None, max_bytes: int = 8_000_000) -> Path:
    """Write ``widget`` as one self-contained HTML file at ``path``; return the path."""
    from .widget import STATIC

    path = Path(path)
    code = (STATIC / "widget.js").read_text(encoding="utf-8")
    state = {name: getattr(widget, name) for name in STATE}
    data = {"code": code, "state": state, "replies": snapshot(widget, max_bytes)}
    listed = widget.run.interventions
    tokenizer, ids = widget.run.model.tokenizer, widget.run.token_ids
    prompt = tokenizer.decode(ids) if tokenizer is not None else f"{len(ids)} tokens"
    title = title or f"repwidget: {prompt[:60]}{'…' if len(prompt) > 60 else ''}"
    page = PAGE.format(
        version=__version__,
        title=html.escape(title),
        date=datetime.date.today().isoformat(),
        interventions=", ".join(f"<code>{html.escape(repr(iv))}</code>" for iv in listed) or "none",
        data=_script_json(data),
    )
    path.write_text(page, encoding="utf-8")
    return path
