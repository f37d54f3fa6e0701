"""Attribution: pick a target token (and a foil) by its text, or by clicking a prediction; the heads, layers,
neurons and SAE features ranked by their direct share of its logit (difference) in the run shown (the intervened
one when there are interventions), so a learner sees what to click. It sits beside the predictions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ...analyses import direct_logit_attribution
from .. import panel
from ..panel import Panel, Request
from ..protocol import index

TOP = 10
#: a vocabulary search lists at most this many tokens
WORDS = 12
#: the longest query a vocabulary search takes, in characters
QUERY = 64


@dataclass
class State:
    """The last target asked for: ``(target, foil, position)``, or None; the vocabulary as text (read once, for
    the search)."""

    picked: tuple[int, int | None, int] | None = None
    vocab: list[str] | None = None


def _query(content: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    query = content.get("query")
    if not isinstance(query, str) or not 0 < len(query.strip()) <= QUERY:
        raise ValueError(f"vocab_search request: query must be text of 1 to {QUERY} characters, got {query!r:.40}")
    return {"query": query.strip()}


def search(session, args: dict[str, Any]) -> dict[str, Any]:
    """The tokens whose text matches ``query`` (case-insensitive; the token's leading space aside), at most
    :data:`WORDS`: the token equal to it first, then those starting with it, then those containing it, shorter
    before longer; a query of digits also names the token with that id. ``ids`` and ``tokens`` (as read)."""
    own = session.state["attribution"]
    if own.vocab is None:
        own.vocab = session.model.to_str_tokens(range(session.model.vocab_size))
    query = args["query"].lower()
    ranked: list[tuple[int, int, int]] = []
    for i, token in enumerate(own.vocab):
        text = token.strip().lower()
        if query in text:
            ranked.append((0 if text == query else 1 if text.startswith(query) else 2, len(text), i))
    ids = [i for *_, i in sorted(ranked)]
    if query.isdigit() and int(query) < len(own.vocab):
        ids = [int(query), *(i for i in ids if i != int(query))]
    ids = ids[:WORDS]
    return {"ids": torch.tensor(ids, dtype=torch.int32), "tokens": [own.vocab[i] for i in ids], "query": args["query"]}


def _foil(content: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """``foil``: a token id, or absent / null for the target's logit alone."""
    foil = content.get("foil")
    return {"foil": None if foil is None else index(content, "foil", 10**12, "attribution")}


def attribution_of(session, args: dict[str, Any]):
    """The run's direct logit attribution for ``(position, target, foil)``, computed once per run."""
    foil = args.get("foil")
    if foil is not None and not 0 <= foil < session.model.vocab_size:
        raise ValueError(f"attribution request: foil {foil} is out of range 0..{session.model.vocab_size - 1}")
    key = f"attribution:{args['position']}:{args['target']}:{foil}"
    dla = session.cached(key)
    if dla is None:
        dla = direct_logit_attribution(session.run, args["target"], foil, args["position"])
        session.cache(key, dla)
    session.state["attribution"].picked = (args["target"], foil, args["position"])
    return dla


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """Each head's, layer's and the embeddings' share of the target's logit (difference), in logits."""
    dla = attribution_of(session, args)
    model = session.model
    return {
        "heads": dla.heads.float(),
        "attn": dla.attn.float(),
        "mlp": dla.mlp.float(),
        "embed": dla.embed,
        "bias": dla.bias,
        "total": dla.total,
        "capped": dla.capped,
        "target": dla.target,
        "foil": dla.foil,
        "target_token": model.to_str_tokens([dla.target])[0],
        "foil_token": model.to_str_tokens([dla.foil])[0] if dla.foil is not None else None,
        "position": dla.position,
        "run": "intervened" if session.intervened else "clean",
    }


def neurons(session, args: dict[str, Any]) -> dict[str, Any]:
    """The :data:`TOP` neurons of ``layer`` with the largest shares (either sign)."""
    shares = attribution_of(session, args).neurons(args["layer"])
    top = shares.abs().topk(min(TOP, shares.numel())).indices
    return {"indices": top.to(torch.int32), "values": shares[top].float(), "layer": args["layer"]}


def features(session, args: dict[str, Any]) -> dict[str, Any]:
    """The :data:`TOP` features of SAE ``sae`` with the largest direct shares at the position: activation times
    what the feature's decoder direction adds to the logit (difference) straight through the unembedding."""
    dla = attribution_of(session, args)
    sae = session.saes[args["sae"]]
    if "resid" not in sae.hook:
        raise ValueError(f"{sae.name} reads {sae.hook}, not the residual stream: its features have no direct share")
    acts = sae.encode(session.run[sae.hook][dla.position])
    shares = acts * dla.of(sae.decoder_vectors())
    top = shares.abs().topk(min(TOP, shares.numel())).indices
    return {"indices": top.to(torch.int32), "values": shares[top].float(), "sae": args["sae"]}


_TARGET = (("position", panel.positions), ("target", panel.vocab))


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    picked = session.state["attribution"].picked
    if picked is not None:
        target, foil, position = picked
        yield {"what": "attribution", "position": position, "target": target, "foil": foil}


def code(session) -> list[str]:
    """The attribution shown last, as ``rw.analyses.direct_logit_attribution`` reproduces it."""
    picked = session.state["attribution"].picked
    if picked is None:
        return []
    target, foil, position = picked
    return [f"dla = rw.analyses.direct_logit_attribution(run, {target}, foil={foil}, position={position})"]


PANEL = Panel(
    name="attribution",
    place="side",
    order=95,  # right below the predictions, where its target is clicked
    state=lambda session, options: State(),
    code=code,
    requests=(
        Request("attribution", _TARGET, answer, extra=_foil),
        Request("attribution_neurons", (*_TARGET, ("layer", panel.layers)), neurons, extra=_foil),
        Request("attribution_features", (*_TARGET, ("sae", panel.saes)), features, extra=_foil),
        Request("vocab_search", (), search, extra=_query),
    ),
    # direct logit attribution reads the unembedding's weights: not for a model whose weights are on NDIF only
    shown=lambda session: (
        session.model.has_unembed and session.model.arch.additive and not getattr(session.model, "weightless", False)
    ),
    selected=_selected,
)
