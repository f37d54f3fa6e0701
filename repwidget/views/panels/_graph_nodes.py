"""The graph view's nodes beyond one click (see ``graph.py``): a feature node's top activating contexts (its
transcoder feature harvested over the explorer's ``texts=``, or the model's reference texts, a layer at a time per
weights version), the logit picked (``graph_logit``), supernodes (``graph_group``: feature nodes ablated together;
``graph_groups``: named groups), and the link from a node to the shared ``token`` and ``layer``."""

from __future__ import annotations

from typing import Any

import torch

from ...analyses.top_examples import top_examples
from ...units import transcoder_features
from ..protocol import index
from ._graph_state import _offset, _replacement, demeaned, feature_steers, graph_of, logit_row

#: how many top contexts of a feature node the view shows
CONTEXTS = 5
#: harvested layers kept (each: every feature of one layer)
KEPT_LAYERS = 4
#: the most feature nodes in one group, and named groups in a selection
MAX_GROUP = 64
MAX_GROUPS = 20


def example_texts(session) -> tuple[Any, str] | None:
    """The texts a feature's top contexts come from, and how the caption names them: ``texts=``, else the model's
    reference texts (the demo model ships some), else None."""
    if session.texts is not None:
        return session.texts, "texts="
    reference = getattr(session.model, "reference", None)
    ids = getattr(reference, "_ids", None)
    return (ids, "the model's reference texts") if ids else None


def feature_examples(session, args: dict[str, Any]) -> dict[str, Any]:
    """Feature node ``node``'s top :data:`CONTEXTS` contexts over :func:`example_texts`, harvested lazily (every
    feature of its layer in one set of passes, kept per layer and weights version): each window's tokens, the
    feature's activation on each, the peak's index in it and the text it is from; empty without texts or
    transcoders (``missing`` says which to pass)."""
    graph, _ = graph_of(session)
    node = graph.node(args["node"])
    out: dict[str, Any] = {"node": node.index, "layer": node.layer, "feature": node.feature, "source": ""}
    own, found = session.state["graph"], example_texts(session)
    shown = []
    if node.kind == "feature" and (own.transcoders is None or found is None):
        out["missing"] = "transcoders=" if own.transcoders is None else "texts="
    if node.kind == "feature" and own.transcoders is not None and found is not None:
        texts, out["source"] = found
        key = (node.layer, session.model.weights_version(), id(own.transcoders))
        if key not in own.harvested:
            units = transcoder_features(own.transcoders, node.layer)
            own.harvested[key] = top_examples(session.model, texts, units, k=CONTEXTS, progress=False)
            while len(own.harvested) > KEPT_LAYERS:
                own.harvested.popitem(last=False)
        shown = own.harvested[key].examples(node.feature)[:CONTEXTS]
    out.update(
        tokens=[e.tokens for e in shown],
        peaks=[e.peak for e in shown],
        values=torch.tensor([v for e in shown for v in e.values], dtype=torch.float32),
        texts=[e.text_index for e in shown],
    )
    return out


def n_logits(session, _: dict[str, Any]) -> int:
    return graph_of(session)[0].n_logits


def checked_nodes(session, value: Any, what: str) -> list[int]:
    """``value`` as a list of distinct feature nodes of the graph shown, in the order given; ValueError else."""
    if not isinstance(value, (list, tuple)) or len(value) > MAX_GROUP:
        raise ValueError(f"{what} must be a list of at most {MAX_GROUP} feature nodes, got {str(value)[:60]}")
    if not value:
        return []
    n_features = graph_of(session)[0].n_features
    nodes = [index({"node": v}, "node", n_features, what) for v in value]
    if len(set(nodes)) != len(nodes):
        raise ValueError(f"{what} lists a node twice: {nodes}")
    return nodes


def logit_field(content: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    """A request's optional ``logit`` (the logit node its effects are read on; 0, the top one, when absent),
    checked by the answer, which knows the graph."""
    return {"logit": content.get("logit", 0)}


def group_field(content: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The ``nodes`` and ``logit`` of a ``graph_group`` request (checked by the answer)."""
    return {"nodes": content.get("nodes"), **logit_field(content, args)}


def checked_logit(session, args: dict[str, Any], what: str) -> int:
    return index(args, "logit", n_logits(session, args), what)


def demeaned_change(session, token: int) -> float:
    """The current run's demeaned logit of ``token`` at the last position minus the clean run's."""
    return demeaned(session.run.logits_at(-1), token) - demeaned(session.clean_run.logits_at(-1), token)


def total_effect(graph: Any, nodes: list[int], logit: int) -> float:
    """Feature nodes ``nodes`` removed, the change of logit node ``logit``'s demeaned logit through every path of the
    graph: the other feature nodes' activations follow their changed pre-activations (edges per unit of the source's
    activation, the active set kept: the replacement model linearised), error and token nodes stay. Edges between
    features go up the layers, so one matrix-vector product per layer spanned reaches every path (no solve: 0.6 s at
    one thread for 5,000 feature nodes over 30 layers on this loaded machine, 0.3 ms on the demo)."""
    n_f = graph.n_features
    acts = graph.activations[graph.selected_features].float()
    features = graph.adjacency[:n_f, :n_f].float()  # a view when float32: rows targets, columns sources
    group = torch.zeros(n_f, dtype=torch.bool)
    group[nodes] = True
    removed = torch.where(group, -acts, torch.zeros_like(acts))
    change = removed
    layers = graph.active_features[graph.selected_features, 0]
    for _ in range(int(layers.max() - layers.min()) if n_f else 0):
        change = torch.where(group, removed, features @ (change / acts))
    return float(graph.adjacency[logit_row(graph, logit), :n_f].float() @ (change / acts))


def group_effect(session, args: dict[str, Any]) -> dict[str, Any]:
    """Feature nodes ``nodes`` removed together, the change of logit node ``logit``'s demeaned logit: as the graph
    predicts it (``predicted``: minus the sum of the nodes' edges into the logit, their direct effects;
    ``predicted_total``: through every path, :func:`total_effect`), in the replacement model (``replacement``: their
    activations zeroed together, attention, norms and every other node frozen; linear, so equal to ``predicted``),
    and, when all their Steers are applied, ``measured`` in the run shown (``alone``: no other intervention)."""
    graph, _ = graph_of(session)
    nodes = checked_nodes(session, args["nodes"], "graph_group: nodes")
    logit = checked_logit(session, args, "graph_group")
    token = int(graph.logit_ids[logit])
    out: dict[str, Any] = {"nodes": nodes, "logit": logit, "target_token": session.model.to_str_tokens([token])[0]}
    out["predicted"] = -float(graph.adjacency[logit_row(graph, logit), nodes].sum()) if nodes else 0.0
    out["predicted_total"] = total_effect(graph, nodes, logit) if nodes else 0.0
    if not nodes or (session.state["graph"].transcoders is None and graph._replacement is None):
        return out
    r = _replacement(session, graph)
    values = r.activations.clone()
    values[graph.selected_features[nodes]] = 0
    with torch.no_grad():
        clean, removed = r.clean_logits()[-1].detach().float(), r.logits_of(r.run(values))[-1].detach().float()
    out["replacement"] = float((removed[token] - removed.mean()) - (clean[token] - clean.mean()))
    steers = [s for n in nodes for s in feature_steers(session, n)]
    out["ablated"] = all(s in session.interventions for s in steers)
    if out["ablated"]:
        out["measured"] = demeaned_change(session, token)
        out["alone"] = len(session.interventions) == len(steers)
    return out


def ablate_group(session, content: dict[str, Any]) -> dict[str, Any]:
    """Toggle the group's Steers together: all applied when any is missing, else all removed; selects the group."""
    nodes = checked_nodes(session, content.get("nodes"), "graph_ablate_group: nodes")
    if not nodes:
        raise ValueError("graph_ablate_group: nodes is empty; ctrl+click (cmd+click) feature nodes to group them")
    steers = [s for n in nodes for s in feature_steers(session, n)]
    current = session.interventions
    if all(s in current for s in steers):
        session.apply(tuple(iv for iv in current if iv not in steers))
    else:
        session.apply((*current, *(s for s in steers if s not in current)))
    return {"graph_group": nodes}


def check_logit(session, out: dict[str, Any], _: dict[str, Any]) -> int:
    return 0 if out.get("graph_logit") in (None, 0) else index(out, "graph_logit", n_logits(session, {}), "selection")


def check_group(session, out: dict[str, Any], _: dict[str, Any]) -> list[int]:
    return checked_nodes(session, out.get("graph_group") or [], "selection: graph_group")


def check_groups(session, out: dict[str, Any], _: dict[str, Any]) -> dict[str, list[int]]:
    groups = out.get("graph_groups") or {}
    if not isinstance(groups, dict) or len(groups) > MAX_GROUPS:
        raise ValueError(f"selection: graph_groups must be a dict of at most {MAX_GROUPS} named node lists")
    for name in groups:
        if not isinstance(name, str) or not 0 < len(name) <= 40:
            raise ValueError(f"selection: a group's name is a string of 1..40 characters, got {str(name)[:50]!r}")
    return {name: checked_nodes(session, nodes, f"selection: graph_groups[{name!r}]") for name, nodes in groups.items()}


def link(session, out: dict[str, Any], node: int | None) -> None:
    """When the selected node changes, select its position (``token``, when it is in the prompt) and its layer
    (features and error nodes) in ``out``, so the views of the shared selection follow."""
    own = session.state.get("graph")
    if own is None or node is None or node == own.linked:
        return
    own.linked = node
    graph, _ = graph_of(session)
    described = graph.node(node)
    position = described.position - _offset(graph, list(session.clean_run.token_ids))
    if described.kind != "logit" and 0 <= position < session.n_tokens:
        out["token"] = position
    if described.kind in ("feature", "error"):
        out["layer"] = described.layer
