"""Continuation: what the model writes after the prompt, clean and with the current interventions, streamed a few
tokens per request (greedy, at most :data:`MAX_NEW` tokens); a click on a generated token shows the prompt and that
continuation in every view, with that position selected."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from ...generation import Stream
from ..panel import Option, Panel, Request

#: tokens a continuation runs to (fewer where the model's context ends first)
MAX_NEW = 32
#: one request generates for about this long (at least one token), so the browser shows tokens as they come
STEP_SECONDS = 0.15
WHICH = ("clean", "intervened")


@dataclass
class State:
    """Whether the view is wanted (``continuation=True``; it generates text when shown), the continuations made by
    (prompt ids, interventions): (weights version, stream), and the prompt the explorer was opened on once a
    continuation is shown in every view (None until then)."""

    wanted: bool = False
    streams: OrderedDict[tuple, tuple[int, Any]] = field(default_factory=OrderedDict)
    opened: list[int] | None = None


def prompt_ids(session) -> list[int]:
    """The prompt the explorer was opened on (what continuations continue, even while one is shown)."""
    opened = session.state["continuation"].opened
    return list(opened) if opened is not None else session.clean_run.token_ids


def _which(session, args: dict[str, Any]) -> int:
    return len(WHICH)


def _flag(session, args: dict[str, Any]) -> int:
    return 2


def stream(session, which: str) -> Stream:
    """The session's continuation of its prompt, clean or with the current interventions (kept per set of
    interventions, the last eight; made again after the weights changed)."""
    ivs = () if which == "clean" else session.interventions
    streams = session.state["continuation"].streams
    prompt = prompt_ids(session)
    key = (tuple(prompt), ivs)
    version = session.model.weights_version()
    if key in streams and streams[key][0] == version:
        streams.move_to_end(key)
        return streams[key][1]
    limit = session.model.max_tokens
    room = MAX_NEW if limit is None else min(MAX_NEW, limit - len(prompt))
    if room < 1:
        raise ValueError("the prompt fills the model's context: there is no room to continue it")
    made = Stream(session.model, prompt, ivs, max_new_tokens=room, alternatives=0)
    streams[key] = (version, made)
    while len(streams) > 8:
        streams.popitem(last=False)
    return made


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """The continuation so far, after generating for about :data:`STEP_SECONDS` (``stop``: generate no more)."""
    which = WHICH[args["which"]]
    made = stream(session, which)
    if args["stop"]:
        if not made.done:
            made.done, made.generation.stopped = True, "stopped"
    else:
        start = time.perf_counter()
        while made.step() and time.perf_counter() - start < STEP_SECONDS:
            pass
    gen = made.generation
    return {
        "which": which,
        "ids": torch.tensor(gen.new_token_ids, dtype=torch.int32),
        "logprobs": torch.tensor(gen.logprobs, dtype=torch.float32),
        "tokens": gen.new_tokens,
        "start": len(gen.prompt_ids),
        "done": made.done,
        "stopped": gen.stopped if made.done else "",
        "labels": [iv.label() for iv in gen.interventions],
    }


def show(session, content: dict[str, Any]) -> dict[str, Any]:
    """``{which, position}``: show the prompt and that continuation in every view, ``position`` selected."""
    which = content.get("which")
    if which not in WHICH:
        raise ValueError(f"show_continuation: which must be one of {', '.join(WHICH)}")
    gen = stream(session, which).generation
    position = content.get("position")
    n = len(gen.token_ids)
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < n:
        raise ValueError(f"show_continuation: position must be an int in 0..{n - 1}")
    own = session.state["continuation"]
    if own.opened is None:
        own.opened = session.clean_run.token_ids
    session.show_prompt(gen.token_ids)
    return {"token": position, "tokens": []}  # the selection after it (a lasso's positions were the other text's)


CONTINUATION = (
    "``continuation=True`` adds the continuation view: what the model writes next, clean and intervened side by "
    "side (greedy, streamed, re-generated after each click); click a generated token to see it in every view."
)

PANEL = Panel(
    name="continuation",
    place="top",
    order=100,
    options={"continuation": Option(False, CONTINUATION)},
    state=lambda session, options: State(bool(options["continuation"])),
    requests=(Request("continuation", (("which", _which), ("stop", _flag)), answer),),
    commands={"show_continuation": show},
    shown=lambda session: (
        session.state["continuation"].wanted
        and session.model.has_unembed
        and session.model.arch.causal
        and not getattr(session.model, "weightless", False)
    ),  # generation is local (see Model.generate)
    shape=lambda session: {"continuation_tokens": MAX_NEW},
)
