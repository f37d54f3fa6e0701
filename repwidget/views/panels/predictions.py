"""Predictions: the top next tokens at the selected position, clean and intervened side by side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .. import panel
from ..panel import Panel, Request
from ._projector_lasso import lassoed, lassoed_field

#: how many next tokens the view lists (fewer when the vocabulary is smaller)
TOP = 10


def compare(model, clean_logits: torch.Tensor, logits: torch.Tensor, position: int, k: int = TOP) -> dict[str, Any]:
    """Top-``k`` next tokens at ``position``, clean and intervened, and how each changed between them.

    ``ids``/``probs`` are ``[2, k]`` (row 0 clean, row 1 intervened); ``delta_prob`` and
    ``delta_logit`` are ``[2, k]``: for each listed token, intervened minus clean.
    """
    both = torch.stack([clean_logits.float(), logits.float()])
    return {**_listed(model, both.softmax(-1), both[1] - both[0], k), "position": position}


def _listed(model, probs: torch.Tensor, delta_logit: torch.Tensor, k: int) -> dict[str, Any]:
    """The top-``k`` of ``probs`` ``[2, vocab]`` (clean, intervened) in each row, with their changes."""
    top = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return {
        "ids": top.indices.to(torch.int32),
        "probs": top.values,
        "delta_prob": (probs[1] - probs[0])[top.indices],
        "delta_logit": delta_logit[top.indices],
        "tokens": [model.to_str_tokens(row) for row in top.indices.tolist()],
    }


def over_lasso(session, args: dict[str, Any]) -> dict[str, Any]:
    """The next-token probabilities averaged over the lassoed positions (``tokens``), clean and intervened, as
    :func:`compare` lists them (``delta_logit``: the change of the mean logit); ``over``: how many positions (a model
    run elsewhere, whose full logits do not come back: only ``over`` and a ``note``)."""
    tokens = lassoed(session, args)
    if getattr(session.model, "weightless", False):  # said in the view's caption, not as an error
        return {"over": len(tokens), "note": "no mean next-token probability (the model runs elsewhere)"}
    logits = [torch.stack([session.logits(run, p).float() for p in tokens]) for run in (session.clean_run, session.run)]
    probs = torch.stack([x.softmax(-1).mean(0) for x in logits])
    return {**_listed(session.model, probs, logits[1].mean(0) - logits[0].mean(0), TOP), "over": len(tokens)}


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    position = args["position"]
    if getattr(session.model, "weightless", False):  # computed where the model runs: only the top tokens come back
        got = session.model.compare_in_pass(session.clean_run, session.run, [position], TOP)
        out = {name: got[name][:, 0] for name in ("ids", "probs", "delta_prob", "delta_logit")}
        tokens = [session.model.to_str_tokens(row) for row in out["ids"].tolist()]
        return {**out, "tokens": tokens, "position": position}
    clean = session.logits(session.clean_run, position)
    return compare(session.model, clean, session.logits(session.run, position), position)


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield {"what": "predictions", "position": selection["token"]}
    if selection.get("tokens"):
        yield {"what": "predictions_over", "tokens": selection["tokens"]}


def _around(session, selection) -> Iterator[dict[str, Any]]:
    yield from ({"what": "predictions", "position": p} for p in range(session.n_tokens))


PANEL = Panel(
    name="predictions",
    place="side",
    order=90,
    then={"what": "predictions", "position": "token"},  # every command's reply carries the new predictions
    requests=(
        Request("predictions", (("position", panel.positions),), answer),
        Request("predictions_over", (), over_lasso, extra=lassoed_field),
    ),
    shown=lambda session: session.model.has_unembed,
    selected=_selected,
    around=_around,
)
