"""SAE features: the features most active at the selected token, one feature at every position, and a
feature's top contexts: from the top examples given (``examples=``) when they hold it, else its dashboard over the
explorer's texts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ...sae.dashboard import output_tokens
from .. import panel
from ..panel import Key, Panel, Request
from ..protocol import index
from . import _examples
from ._projector_lasso import lassoed, lassoed_field

TOP = 12
#: how many top contexts of a dashboard the view shows
CONTEXTS = _examples.CONTEXTS


def top_features(session, args: dict[str, Any]) -> dict[str, Any]:
    """The :data:`TOP` features most active at ``position`` (indices and activations; zeros left out)."""
    sae = session.saes[args["sae"]]
    acts = sae.encode(session.run[sae.hook][args["position"]])
    top = acts.topk(min(TOP, acts.numel()))
    keep = top.values > 0
    return {"indices": top.indices[keep].to(torch.int32), "values": top.values[keep], "position": args["position"]}


def over_lasso(session, args: dict[str, Any]) -> dict[str, Any]:
    """The :data:`TOP` features of the largest mean activation over the lassoed positions (``tokens``); ``over``:
    how many positions."""
    sae, tokens = session.saes[args["sae"]], lassoed(session, args)
    acts = sae.encode(session.run[sae.hook][tokens]).float().mean(0)
    top = acts.topk(min(TOP, acts.numel()))
    keep = top.values > 0
    return {"indices": top.indices[keep].to(torch.int32), "values": top.values[keep], "over": len(tokens)}


def feature(session, args: dict[str, Any]) -> dict[str, Any]:
    """One feature's activation at every position, ``[pos]``; with interventions, its clean activation too
    (``clean``: what the view shows while the feature is ablated)."""
    sae, index = session.saes[args["sae"]], args["index"]
    out = {"values": sae.feature_activations(session.run[sae.hook], index).float(), "index": index}
    if session.intervened:
        out["clean"] = sae.feature_activations(session.clean_run[sae.hook], index).float()
    return out


def dashboard(session, args: dict[str, Any]) -> dict[str, Any]:
    """A feature's top contexts (tokens, activations, peak) and its output tokens: from the top examples given
    (``examples=``) when they hold the feature (``density`` then None: they do not count activity), else the
    feature's dashboard over the session's texts."""
    sae, index = session.saes[args["sae"]], args["index"]
    found = _examples.find(_examples.given(session), _examples.is_feature(sae, index))
    if found is not None or session.texts is None:
        boosted, suppressed = output_tokens(session.model, sae, index)
        shown = _examples.contexts(found)
        return {**shown, "boosted": [t for t, _ in boosted], "suppressed": [t for t, _ in suppressed],
                "density": None, "index": index}  # fmt: skip
    dash = session.dashboard(args["sae"], index)
    contexts = dash.contexts[:CONTEXTS]
    return {
        "tokens": [c.tokens for c in contexts],
        "peaks": [c.position for c in contexts],
        "values": torch.tensor([v for c in contexts for v in c.activations], dtype=torch.float32),
        "boosted": [t for t, _ in dash.boosted],
        "suppressed": [t for t, _ in dash.suppressed],
        "density": dash.density,
        "index": dash.feature,
    }


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    sae, token = selection.get("sae", 0), selection["token"]
    yield {"what": "features", "sae": sae, "position": token}
    if selection.get("tokens"):
        yield {"what": "features_over", "sae": sae, "tokens": selection["tokens"]}
    if selection.get("feature") is not None:
        yield {"what": "feature", "sae": sae, "index": selection["feature"]}
        if _examples.available(session):
            yield {"what": "dashboard", "sae": sae, "index": selection["feature"]}


def _around(session, selection) -> Iterator[dict[str, Any]]:
    for sae in range(len(session.saes)):
        yield from ({"what": "features", "sae": sae, "position": p} for p in range(session.n_tokens))


_SAE = ("sae", panel.saes)
_INDEX = ("index", panel.features)


def _feature(session, out, given) -> int | None:
    if out["feature"] is None:
        return None
    return index(out, "feature", session.saes[out["sae"]].d_sae if session.saes else 0, "selection")


PANEL = Panel(
    name="features",
    order=50,
    #: an SAE, and one of its features (or None)
    selection={
        "sae": Key(lambda s: 0, lambda s, out, given: index(out, "sae", max(1, len(s.saes)), "selection")),
        "feature": Key(lambda s: None, _feature),
    },
    requests=(
        Request("features", (_SAE, ("position", panel.positions)), top_features),
        Request("features_over", (_SAE,), over_lasso, extra=lassoed_field),
        Request("feature", (_SAE, _INDEX), feature),
        Request("dashboard", (_SAE, _INDEX), dashboard),
    ),
    shown=lambda session: bool(session.saes),
    hooks=lambda session: [sae.hook for sae in session.saes],
    shape=lambda session: {"dashboards": _examples.available(session)},
    selected=_selected,
    around=_around,
)
