"""Logit lens: for positions around the selected token, the top next token after every layer (and, with
interventions, the clean run's, so the view can show what changed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ... import analyses
from .. import panel
from ..panel import Panel, Request

#: how many positions the lens shows at once (the front end reads it from ``shape``)
LENS_WIDTH = 16


def lens_window(token: int, n: int, width: int = LENS_WIDTH) -> tuple[int, int]:
    """The positions the logit lens shows around ``token``."""
    start = max(0, min(n - width, token - width // 2))
    return start, min(n, start + width)


def lens_of(run, start: int, stop: int) -> dict[str, Any]:
    """Logit lens over positions ``start..stop``: top token ids ``[layer, pos]``, their probabilities and texts."""
    result = analyses.logit_lens(run, range(start, stop), k=1)
    ids = result.ids[..., 0]
    unique = sorted(set(ids.flatten().tolist()))
    return {
        "ids": ids.to(torch.int32),
        "probs": result.probs[..., 0].float(),
        "start": start,
        "vocab": dict(zip(map(str, unique), run.model.to_str_tokens(unique), strict=True)),
    }


def lens_slice(full: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """The :func:`lens_of` answer for ``start..stop`` cut out of one over a range that contains it."""
    cols = slice(start - full["start"], stop - full["start"])
    ids = full["ids"][:, cols]
    return {
        "ids": ids,
        "probs": full["probs"][:, cols],
        "start": start,
        "vocab": {key: full["vocab"][key] for key in map(str, sorted(set(ids.flatten().tolist())))},
    }


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """The lens of the current run over ``start..stop``; with interventions, the clean run's too (``clean_ids``,
    ``clean_probs``), so the view can show what changed."""
    start, stop = args["start"], args["stop"]
    out = _window(session, "lens", session.run, start, stop)
    if not session.intervened:
        return out
    clean = session.of_clean(
        ("lens", start, stop), lambda: _window(session, "lens-clean", session.clean_run, start, stop)
    )
    return {
        **out,
        "clean_ids": clean["ids"],
        "clean_probs": clean["probs"],
        "vocab": {**clean["vocab"], **out["vocab"]},
    }


def _window(session, name: str, run, start: int, stop: int) -> dict[str, Any]:
    full = session.cached(name)  # a wider lens computed for a saved page
    if full is not None and full["start"] <= start and stop <= full["start"] + full["ids"].shape[1]:
        return lens_slice(full, start, stop)
    return lens_of(run, start, stop)


def _stop_after_start(content: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    if args["stop"] <= args["start"]:
        raise ValueError(f"lens request: stop {args['stop']} must be after start {args['start']}")
    return {}


def _shown_windows(session, selection) -> list[tuple[int, int]]:
    n = session.n_tokens
    return list(dict.fromkeys(lens_window(p, n) for p in range(*lens_window(selection["token"], n))))


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    start, stop = lens_window(selection["token"], session.n_tokens)
    yield {"what": "lens", "start": start, "stop": stop}


def _around(session, selection) -> Iterator[dict[str, Any]]:
    """The windows shown when any token the lens shows is selected (a vocabulary-wide product per layer and
    position: saved only around the selection)."""
    yield from ({"what": "lens", "start": start, "stop": stop} for start, stop in _shown_windows(session, selection))


def _prepare(session, selection) -> None:
    windows = _shown_windows(session, selection)
    start, stop = min(w[0] for w in windows), max(w[1] for w in windows)
    session.cache("lens", lens_of(session.run, start, stop))
    if session.intervened:
        session.cache("lens-clean", lens_of(session.clean_run, start, stop))


_RANGE = (("start", panel.positions), ("stop", panel.ends))
PANEL = Panel(
    name="lens",
    place="side",
    order=80,
    requests=(
        Request(
            "lens",
            _RANGE,
            answer,
            frozenset({"probs", "clean_probs"}),
            _stop_after_start,
        ),
    ),
    shown=lambda session: session.model.has_unembed,
    hooks=lambda session: (
        []  # the executor reads the lens where the model runs: no residual stream is brought back per click
        if session.model.lens_in_pass
        else [f"blocks.{layer}.hook_resid_post" for layer in range(session.model.n_layers)]
    ),
    shape=lambda session: {"lens_width": LENS_WIDTH},
    selected=_selected,
    around=_around,
    prepare=_prepare,
)
