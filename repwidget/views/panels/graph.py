"""Graph: the attribution graph of the clean run's next token (``rw.attribution_graph``), pruned, drawn by layer (up)
and position (across). A click on a feature node selects it (``graph_node``: its layer, position, activation,
output tokens and top activating contexts; its position and layer become the shared ``token`` and ``layer``);
shift+click subtracts that feature's write from the *real* model after its block (a ``rw.Steer``, an entry of the
explorer's interventions, so every view reruns) and the caption shows, for the logit picked (``graph_logit``: a
click on a logit node), the effect the graph predicts beside the one measured in the run shown. Ctrl/cmd+click
groups feature nodes (``graph_group``, named ones in ``graph_groups``), ablated together (``_graph_nodes.py``).

Shown when the explorer gets ``transcoders=`` (the graph is computed once per prompt and weights version) or a
precomputed ``graph=`` of the same prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ...analyses.directions import logit_effects
from ...graphs.graph import Graph
from ...graphs.replacement import check_transcoders
from ..panel import Key, Option, Panel, Request
from ..protocol import index
from . import _graph_nodes as nodes
from ._graph_state import State, _offset, _replacement, feature_steers, graph_of, logit_row, n_nodes

#: the strongest edges sent (by |weight|) after pruning
MAX_EDGES = 300
#: node kinds as the front end numbers them
KINDS = ("feature", "error", "token", "logit")
#: output tokens shown for a selected feature
TOP_TOKENS = 5


def _state(session, options: dict[str, Any]) -> State | None:
    transcoders, given = options["transcoders"], options["graph"]
    if given is not None and not isinstance(given, Graph):
        raise TypeError(f"graph= must be an rw.Graph (from rw.attribution_graph), got {type(given).__name__}")
    if transcoders is not None:
        check_transcoders(session.model, transcoders)
    if transcoders is None and given is None:
        return None
    return State(transcoders, given)


def _check_prompt(session, ids: list[int]) -> None:
    own: State | None = session.state["graph"]
    if own is not None and own.transcoders is None:
        _offset(own.given, ids)


def kept_edges(graph: Graph, pruned: Any, limit: int = MAX_EDGES) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pruned graph's strongest ``limit`` edges by |weight|: ``(source, target, weight)`` node indices."""
    mask = pruned.edge_mask & (graph.adjacency != 0)
    target, source = mask.nonzero(as_tuple=True)
    weight = graph.adjacency[target, source]
    top = weight.abs().argsort(descending=True)[:limit]
    return source[top], target[top], weight[top]


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """The pruned graph: ``nodes`` ``[n, 5]`` (node index, kind, layer, position, feature), their influence and
    activation, the strongest edges (indices into the full graph), the tokens and the logit nodes' tokens."""
    graph, pruned = graph_of(session)
    kept = pruned.node_mask.nonzero().flatten()
    influence = graph.node_influence()
    table = [graph.node(int(i), influence) for i in kept]
    source, target, weight = kept_edges(graph, pruned)
    return {
        "nodes": torch.tensor(
            [[n.index, KINDS.index(n.kind), n.layer, n.position, n.feature] for n in table], dtype=torch.int32
        ).reshape(-1, 5),
        "influence": torch.tensor([n.influence for n in table], dtype=torch.float32),
        "activation": torch.tensor([n.activation or 0.0 for n in table], dtype=torch.float32),
        "edge_source": source.to(torch.int32),
        "edge_target": target.to(torch.int32),
        "edge_weight": weight.float(),
        "tokens": list(graph.tokens),
        "logit_tokens": session.model.to_str_tokens(graph.logit_ids.tolist()),
        "logit_probabilities": graph.logit_probabilities.float(),
        "n_layers": graph.n_layers,
        "offset": _offset(graph, list(session.clean_run.token_ids)),
    }


def ablate(session, content: dict[str, Any]) -> dict[str, Any]:
    """Toggle subtracting feature node ``node``'s write in the real model; selects the node."""
    node = index(content, "node", n_nodes(session, {}), "graph_ablate")
    steers, current = feature_steers(session, node), session.interventions
    applied = all(s in current for s in steers)
    session.apply(tuple(iv for iv in current if iv not in steers) if applied else (*current, *steers))
    return {"graph_node": node}


def node_info(session, args: dict[str, Any]) -> dict[str, Any]:
    """One node: its kind, layer, position, feature and activation; a feature's top output tokens (its decoder row
    through the unembedding) and, for logit node ``logit``, the graph's predicted effect of removing it (minus its
    edge) beside the effect measured in the run shown when it is ablated there."""
    graph, _ = graph_of(session)
    node, logit = graph.node(args["node"], graph.node_influence()), nodes.checked_logit(session, args, "graph_node")
    token = int(graph.logit_ids[logit])
    out: dict[str, Any] = {"node": node.index, "kind": node.kind, "layer": node.layer, "position": node.position,
                           "feature": node.feature, "influence": node.influence, "activation": node.activation,
                           "logit": logit, "target_token": session.model.to_str_tokens([token])[0]}  # fmt: skip
    if node.kind != "feature":
        return out
    has_writes = graph._replacement is not None or session.state["graph"].transcoders is not None
    r = _replacement(session, graph) if has_writes else None
    if r is not None:
        up, _ = logit_effects(
            session.model, r.decoder_rows(torch.tensor([int(graph.selected_features[node.index])]))[0]
        )
        out["top_tokens"] = [t for t, _ in up[:TOP_TOKENS]]
        out["top_effects"] = torch.tensor([v for _, v in up[:TOP_TOKENS]], dtype=torch.float32)
    out["predicted"] = -float(graph.adjacency[logit_row(graph, logit), node.index])
    out["predicted_total"] = nodes.total_effect(graph, [node.index], logit)
    ablated = r is not None and all(s in session.interventions for s in feature_steers(session, node.index))
    out["ablated"] = ablated
    if ablated:
        out["measured"] = nodes.demeaned_change(session, token)
        out["alone"] = len(session.interventions) == 1
    return out


def _graph_node(session, out: dict[str, Any], given: dict[str, Any]) -> int | None:
    if out.get("graph_node") is None:
        return None
    node = index(out, "graph_node", n_nodes(session, {}), "selection")
    nodes.link(session, out, node)
    return node


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield {"what": "graph"}
    logit = selection.get("graph_logit") or 0
    if selection.get("graph_node") is not None:
        yield {"what": "graph_node", "node": selection["graph_node"], "logit": logit}
        yield {"what": "graph_examples", "node": selection["graph_node"]}
    if selection.get("graph_group"):
        yield {"what": "graph_group", "nodes": list(selection["graph_group"]), "logit": logit}


def code(session) -> list[str]:
    own: State = session.state["graph"]
    return [] if own is None or own.transcoders is None else [
        "graph = rw.attribution_graph(model, run.token_ids, transcoders)"
    ]  # fmt: skip


PANEL = Panel(
    name="graph",
    order=55,
    options={
        "transcoders": Option(None, "``transcoders=ts`` (one per layer) shows the prompt's attribution graph."),
        "graph": Option(None, "``graph=g`` shows a precomputed ``rw.Graph`` of the same prompt."),
    },
    state=_state,
    check_prompt=_check_prompt,
    selection={
        "graph_node": Key(lambda s: None, _graph_node),
        "graph_logit": Key(lambda s: 0, nodes.check_logit),
        "graph_group": Key(lambda s: [], nodes.check_group),
        "graph_groups": Key(lambda s: {}, nodes.check_groups),
    },
    code=code,
    requests=(
        Request("graph", (), answer),
        Request("graph_node", (("node", n_nodes),), node_info, extra=nodes.logit_field),
        Request("graph_examples", (("node", n_nodes),), nodes.feature_examples),
        Request("graph_group", (), nodes.group_effect, extra=nodes.group_field),
    ),
    commands={"graph_ablate": ablate, "graph_ablate_group": nodes.ablate_group},
    shown=lambda session: session.state.get("graph") is not None,
    selected=_selected,
)
