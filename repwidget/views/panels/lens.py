"""Logit lens: for positions around the selected token, the top next token after every layer (and, with
interventions, the clean run's, so the view can show what changed). Given ``tuned_lens=``, a toggle reads the same
positions through the tuned lens instead (the selection's ``lens_kind``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ... import analyses
from .. import panel
from ..panel import Key, Option, Panel, Request
from ..protocol import short

#: how many positions the lens shows at once (the front end reads it from ``shape``)
LENS_WIDTH = 16
#: the lenses the view reads through: the selection's ``lens_kind`` and the request's ``lens``
KINDS = ("logit", "tuned")
TUNED_LENS = (
    "``tuned_lens=rw.TunedLens.load(path, model)`` (or ``rw.TunedLens.train(model, texts)``) adds a logit / tuned "
    "toggle to the logit lens view: the same positions read through the tuned lens's translators."
)


def tuned_of(session, options: dict[str, Any]):
    """The explorer's tuned lens (``tuned_lens=``), checked to be one for its model, or None."""
    lens = options["tuned_lens"]
    if lens is None:
        return None
    from ...analyses.tuned_lens import TunedLens

    if not isinstance(lens, TunedLens):
        raise TypeError(
            f"tuned_lens must be a rw.TunedLens (rw.TunedLens.load(path, model)), got {type(lens).__name__}"
        )
    if getattr(session.model, "weightless", False):
        raise ValueError("tuned_lens needs the model's weights here (its final norm and unembedding read it)")
    lens.check_fits(session.model)
    return lens


def _lens_kind(session, out: dict[str, Any], given: dict[str, Any]) -> str:
    kind = given.get("lens_kind", "logit")
    if kind not in KINDS:
        raise ValueError(f"selection: lens_kind must be one of {', '.join(KINDS)}, got {short(kind, 40)}")
    if kind == "tuned" and session.state["lens"] is None:
        raise ValueError("selection: lens_kind 'tuned' needs a tuned lens: pass tuned_lens=... to rw.explore")
    return kind


def lens_window(token: int, n: int, width: int = LENS_WIDTH) -> tuple[int, int]:
    """The positions the logit lens shows around ``token``."""
    start = max(0, min(n - width, token - width // 2))
    return start, min(n, start + width)


def lens_of(run, start: int, stop: int, tuned=None) -> dict[str, Any]:
    """Logit lens (through ``tuned``, a tuned lens, if given) over positions ``start..stop``: top token ids
    ``[layer, pos]``, their probabilities and texts."""
    result = analyses.logit_lens(run, range(start, stop), k=1, lens=tuned)
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
    """The lens (``lens``: logit or tuned) of the current run over ``start..stop``; with interventions, the clean
    run's too (``clean_ids``, ``clean_probs``), so the view can show what changed."""
    start, stop, kind = args["start"], args["stop"], args["lens"]
    out = {**_window(session, kind, session.run, start, stop), "lens": kind}
    if not session.intervened:
        return out
    clean = session.of_clean(
        ("lens", kind, start, stop), lambda: _window(session, f"{kind}-clean", session.clean_run, start, stop)
    )
    return {
        **out,
        "clean_ids": clean["ids"],
        "clean_probs": clean["probs"],
        "vocab": {**clean["vocab"], **out["vocab"]},
    }


def _window(session, name: str, run, start: int, stop: int) -> dict[str, Any]:
    full = session.cached(f"lens-{name}")  # a wider lens computed for a saved page
    if full is not None and full["start"] <= start and stop <= full["start"] + full["ids"].shape[1]:
        return lens_slice(full, start, stop)
    return lens_of(run, start, stop, session.state["lens"] if name.startswith("tuned") else None)


def _stop_after_start(content: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The optional ``lens`` field (``logit``, the default, or ``tuned``), after checking that stop > start."""
    if args["stop"] <= args["start"]:
        raise ValueError(f"lens request: stop {args['stop']} must be after start {args['start']}")
    kind = content.get("lens", "logit")
    if kind not in KINDS:
        raise ValueError(f"lens request: lens must be one of {', '.join(KINDS)}, got {short(kind, 40)}")
    return {"lens": kind}


def _answer(session, args: dict[str, Any]) -> dict[str, Any]:
    if args["lens"] == "tuned" and session.state["lens"] is None:
        raise ValueError("lens request: this explorer has no tuned lens; pass tuned_lens=... to rw.explore")
    return answer(session, args)


def _shown_windows(session, selection) -> list[tuple[int, int]]:
    n = session.n_tokens
    return list(dict.fromkeys(lens_window(p, n) for p in range(*lens_window(selection["token"], n))))


def _kinds(session, selection) -> list[str]:
    """The lenses a saved page carries: the selected one first, the other one too when there is a tuned lens."""
    chosen = selection.get("lens_kind", "logit")
    return [chosen, *(k for k in KINDS if k != chosen)] if session.state["lens"] is not None else ["logit"]


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    start, stop = lens_window(selection["token"], session.n_tokens)
    yield from ({"what": "lens", "start": start, "stop": stop, "lens": kind} for kind in _kinds(session, selection))


def _around(session, selection) -> Iterator[dict[str, Any]]:
    """The windows shown when any token the lens shows is selected (a vocabulary-wide product per layer and
    position: saved only around the selection), of each lens."""
    for kind in _kinds(session, selection):
        for start, stop in _shown_windows(session, selection):
            yield {"what": "lens", "start": start, "stop": stop, "lens": kind}


def _prepare(session, selection) -> None:
    windows = _shown_windows(session, selection)
    start, stop = min(w[0] for w in windows), max(w[1] for w in windows)
    for kind in _kinds(session, selection):
        tuned = session.state["lens"] if kind == "tuned" else None
        session.cache(f"lens-{kind}", lens_of(session.run, start, stop, tuned))
        if session.intervened:
            session.cache(f"lens-{kind}-clean", lens_of(session.clean_run, start, stop, tuned))


_RANGE = (("start", panel.positions), ("stop", panel.ends))
PANEL = Panel(
    name="lens",
    place="side",
    order=80,
    options={"tuned_lens": Option(None, TUNED_LENS)},
    state=tuned_of,
    #: which lens the view reads through: "logit", or "tuned" (with ``tuned_lens=``)
    selection={"lens_kind": Key(lambda s: "logit", _lens_kind)},
    requests=(
        Request(
            "lens",
            _RANGE,
            _answer,
            frozenset({"probs", "clean_probs"}),
            _stop_after_start,
        ),
    ),
    shown=lambda session: session.model.has_unembed,
    hooks=lambda session: (
        []  # the executor reads the logit lens where the model runs: no residual stream is brought back per click
        if session.model.lens_in_pass and session.state["lens"] is None
        else [f"blocks.{layer}.hook_resid_post" for layer in range(session.model.n_layers)]
    ),
    shape=lambda session: {"lens_width": LENS_WIDTH, "tuned_lens": session.state["lens"] is not None},
    selected=_selected,
    around=_around,
    prepare=_prepare,
)
