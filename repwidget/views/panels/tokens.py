"""Tokens: the prompt; click selects a position. Its colours come from the neurons and features panels'
requests (``neuron``, ``feature``), from the attention pattern on hover, and, with interventions, from
``effects``: how each position's prediction changed between the clean and the intervened run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .. import panel
from ..panel import Panel, Request

#: an ``effects`` request covers at most this many positions (the view asks around the selection beyond)
MAX_EFFECTS = 1024
#: positions whose logits are read at once
CHUNK = 64


def effects(session, args: dict[str, Any]) -> dict[str, Any]:
    """For positions ``start..stop``: the clean run's top next token (``top``, ids; ``vocab``: their text), its
    probability in the clean run (``clean_p``) and in the current one (``p``), and the loss of the actual next
    token in both (``clean_loss``, ``loss``: NaN at the last position, which has no next token)."""
    start, stop = args["start"], args["stop"]
    clean, run, ids = session.clean_run, session.run, session.run.token_ids
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("top", "clean_p", "p", "clean_loss", "loss")}
    weightless = getattr(session.model, "weightless", False)
    if weightless:  # reduced where the model runs: five numbers a position come back, never a logits row
        got = session.model.compare_in_pass(clean, run if session.intervened else clean, range(start, stop), 1)
        for name in parts:
            parts[name].append(got[name])
    for a in () if weightless else range(start, stop, CHUNK):
        b = min(stop, a + CHUNK)
        clean_lp = clean.logits_at(range(a, b)).float().log_softmax(-1)
        lp = run.logits_at(range(a, b)).float().log_softmax(-1) if session.intervened else clean_lp
        top = clean_lp.argmax(-1)
        parts["top"].append(top)
        parts["clean_p"].append(clean_lp.gather(-1, top[:, None])[:, 0].exp())
        parts["p"].append(lp.gather(-1, top[:, None])[:, 0].exp())
        following = torch.tensor([ids[i + 1] if i + 1 < len(ids) else 0 for i in range(a, b)])
        last = torch.tensor([i + 1 >= len(ids) for i in range(a, b)])
        for name, logp in (("clean_loss", clean_lp), ("loss", lp)):
            loss = -logp.gather(-1, following[:, None])[:, 0]
            parts[name].append(loss.masked_fill(last, float("nan")))
    out: dict[str, Any] = {name: torch.cat(values) for name, values in parts.items()}
    unique = sorted(set(out["top"].tolist()))
    out["top"] = out["top"].to(torch.int32)
    out["start"] = start
    out["vocab"] = dict(zip(map(str, unique), session.model.to_str_tokens(unique), strict=True))
    return out


def effects_window(token: int, n: int) -> tuple[int, int]:
    """The positions an ``effects`` request covers: the whole prompt, or :data:`MAX_EFFECTS` around ``token``."""
    start = max(0, min(n - MAX_EFFECTS, token - MAX_EFFECTS // 2))
    return start, min(n, start + MAX_EFFECTS)


def _checked(content: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    if not 0 < args["stop"] - args["start"] <= MAX_EFFECTS:
        raise ValueError(
            f"effects request: start..stop must cover 1..{MAX_EFFECTS} positions, got {args['start']}..{args['stop']}"
        )
    return {}


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    if session.intervened and session.model.has_unembed:
        start, stop = effects_window(selection["token"], session.n_tokens)
        yield {"what": "effects", "start": start, "stop": stop}


PANEL = Panel(
    name="tokens",
    place="top",
    order=20,
    requests=(Request("effects", (("start", panel.positions), ("stop", panel.ends)), effects, frozenset(), _checked),),
    shape=lambda session: {"effects": session.model.has_unembed, "max_effects": MAX_EFFECTS},
    selected=_selected,
)
