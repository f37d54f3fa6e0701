"""Patching: with a corrupted prompt beside the clean one (``rw.explore(model, clean, corrupted=...)``), which
sites carry the difference: each site of the corrupted run patched into the clean run (what the explorer shows),
as heatmaps with the metric named; a click on a cell selects it, shift+click applies that patch."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from ... import patching
from ...interventions import Patch
from ..panel import Option, Panel, Request, vocab
from ..protocol import index

VIEW_SITES = (  # the sweeps this view offers, in the order of js/src/views/patching.ts
    "resid_pre",
    "attn_out",
    "mlp_out",
    "heads",
)
#: sweeps kept per explorer (each holds ``[layer, position]`` values and its cells' patches)
KEPT = 8


@dataclass
class State:
    """The corrupted prompt's ids (``corrupted=``, or None: no patching view), the sweeps shown by (site, method,
    target, foil, clean prompt, weights version; the last :data:`KEPT`), and the last one (which ``ex.code()``
    writes)."""

    corrupted: list[int] | None = None
    sweeps: OrderedDict[tuple, Any] = field(default_factory=OrderedDict)
    swept: tuple | None = None


def state(session, options: dict[str, Any]) -> State:
    corrupted = options["corrupted"]
    return State(None if corrupted is None else session.model.to_ids(corrupted))


def check_prompt(session, ids: list[int]) -> None:
    corrupted = session.state["patching"].corrupted
    if corrupted is not None and len(corrupted) != len(ids):
        raise ValueError(
            f"the corrupted prompt has {len(corrupted)} tokens and the one shown {len(ids)}: "
            "patching needs prompts of the same length (so this explorer shows no continuation)"
        )


def _sites(session, args: dict[str, Any]) -> int:
    if session.state["patching"].corrupted is None:
        raise ValueError("this explorer has no corrupted prompt; pass corrupted=... to rw.explore")
    return len(VIEW_SITES)


def _methods(session, args: dict[str, Any]) -> int:
    return len(patching.METHODS)


def sweep_of(session, args: dict[str, Any]) -> patching.Sweep:
    """The sweep of ``site`` by ``method`` for the metric logit(target) - logit(foil) at the last position
    (computed once per prompt and weights version: it does not depend on the interventions)."""
    site, method = VIEW_SITES[args["site"]], patching.METHODS[args["method"]]
    clean = session.clean_run.token_ids
    key = (site, method, args["target"], args["foil"], tuple(clean), session.model.weights_version())
    own = session.state["patching"]
    if key not in own.sweeps:
        metric = patching.logit_diff(session.model, args["target"], args["foil"])
        own.sweeps[key] = patching.sweep(session.model, clean, own.corrupted, metric, site, method, direction="noise")
        while len(own.sweeps) > KEPT:
            own.sweeps.popitem(last=False)
    own.sweeps.move_to_end(key)
    own.swept = key[:4]
    return own.sweeps[key]


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    result = sweep_of(session, args)
    model = session.model
    return {
        "values": result.values.float(),
        "axes": list(result.axes),
        "metric": result.metric,
        "clean": result.clean,
        "corrupted": result.corrupted,
        "site": result.site,
        "method": result.method,
        "target_token": model.to_str_tokens([args["target"]])[0],
        "foil_token": model.to_str_tokens([args["foil"]])[0],
    }


def defaults(session, args: dict[str, Any]) -> dict[str, Any]:
    """The metric a sweep starts with: the clean run's top prediction at the last position against the corrupted
    run's (or its second choice when they agree)."""
    own = session.state["patching"]
    if own.corrupted is None:
        raise ValueError("this explorer has no corrupted prompt; pass corrupted=... to rw.explore")
    clean = session.logits(session.clean_run, session.n_tokens - 1)
    corrupted = session.model.run(own.corrupted, capture=[]).logits_at(-1)
    target = int(clean.argmax())
    ranked = corrupted.float().topk(2).indices.tolist()
    foil = ranked[0] if ranked[0] != target else ranked[1]
    tokens = session.model.to_str_tokens([target, foil])
    return {"target": target, "foil": foil, "target_token": tokens[0], "foil_token": tokens[1]}


def apply_patch(session, content: dict[str, Any]) -> None:
    """``{site, method, target, foil, cell: [layer, position or head]}``: toggle that cell's patch."""
    what = "apply_patch"
    args = {
        "site": index(content, "site", len(VIEW_SITES), what),
        "method": index(content, "method", len(patching.METHODS), what),
        "target": index(content, "target", session.model.vocab_size, what),
        "foil": index(content, "foil", session.model.vocab_size, what),
    }
    cell = content.get("cell")
    if not (isinstance(cell, list) and len(cell) == 2 and all(type(c) is int for c in cell)):
        raise ValueError(f"{what}: cell must be [layer, index], got {cell!r:.60}")
    patch: Patch = sweep_of(session, args).patch(*cell) if tuple(cell) in sweep_of(session, args).patches else None
    if patch is None:
        raise ValueError(f"{what}: no cell {cell} in this sweep")
    current = session.interventions
    session.apply(tuple(iv for iv in current if iv != patch) if patch in current else (*current, patch))


def code(session) -> list[str]:
    """The sweep shown last, as ``rw.patching.sweep`` reproduces it."""
    own = session.state["patching"]
    if own.swept is None:
        return []
    site, method, target, foil = own.swept
    return [
        f"sweep = rw.patching.sweep(model, run.token_ids, {own.corrupted!r}, "
        f"rw.patching.logit_diff(model, {target}, {foil}), site={site!r}, method={method!r}, "
        'direction="noise")'
    ]


CORRUPTED = (
    '``corrupted="..."`` (a prompt of the same length) adds the patching view: which sites of the corrupted run, '
    "patched into this one, change its prediction; shift+click a cell to apply that patch."
)

PANEL = Panel(
    name="patching",
    order=120,
    options={"corrupted": Option(None, CORRUPTED)},
    state=state,
    check_prompt=check_prompt,
    code=code,
    requests=(
        Request("sweep", (("site", _sites), ("method", _methods), ("target", vocab), ("foil", vocab)), answer),
        Request("sweep_defaults", (), defaults),
    ),
    commands={"apply_patch": apply_patch},
    shown=lambda session: session.state["patching"].corrupted is not None and session.model.has_unembed,
)

__all__ = ["PANEL", "VIEW_SITES", "torch"]
