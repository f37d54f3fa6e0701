"""The graph view's graph (``graph.py``, ``_graph_nodes.py``): the explorer's transcoders or given graph, the clean
run's graph computed once per (weights version, prompt), and the real-model intervention that removes a feature
node (a ``rw.Steer`` subtracting its write)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from ...graphs.graph import Graph
from ...interventions import Steer


@dataclass
class State:
    """The explorer's transcoders and/or precomputed graph; the graph of the prompt shown, keyed on the weights
    version and the token ids (one kept)."""

    transcoders: Any = None
    given: Graph | None = None
    key: tuple | None = None
    graph: Graph | None = None
    pruned: Any = field(default=None, repr=False)
    #: top examples of every feature of a layer, by (layer, weights version, transcoders), a few kept
    harvested: OrderedDict = field(default_factory=OrderedDict, repr=False)
    #: the node whose position and layer the selection last followed
    linked: int | None = None


def _offset(graph: Graph, ids: list[int]) -> int:
    """How many tokens the graph put before the prompt (a BOS circuit-tracer adds), or ValueError if it is not
    this prompt's graph."""
    offset = len(graph.ids) - len(ids)
    if offset < 0 or graph.ids[offset:].tolist() != list(ids):
        raise ValueError("graph= is the graph of another prompt; pass the prompt it was made of, or transcoders=")
    return offset


def graph_of(session) -> tuple[Graph, Any]:
    """The clean run's graph and its pruning, computed once per (weights version, prompt)."""
    own: State | None = session.state["graph"]
    if own is None:
        raise ValueError("this explorer has no graph; pass transcoders=ts (or graph=g) to rw.explore")
    ids = list(session.clean_run.token_ids)
    key = (session.model.weights_version(), tuple(ids))
    if own.key != key:
        graph = own.given
        if graph is not None and own.transcoders is not None:
            try:
                _offset(graph, ids)
            except ValueError:
                graph = None  # another prompt shown: the transcoders make its graph
        if graph is None:
            from ...graphs import attribution_graph

            graph = attribution_graph(session.model, ids, own.transcoders, progress=False)
        own.key, own.graph, own.pruned = key, graph, graph.prune()
    return own.graph, own.pruned


def n_nodes(session, _: dict[str, Any]) -> int:
    return graph_of(session)[0].adjacency.shape[0]


def _replacement(session, graph: Graph) -> Any:
    """The graph's replacement model (rebuilt from the explorer's transcoders for a loaded graph)."""
    if graph._replacement is None:
        transcoders = session.state["graph"].transcoders
        if transcoders is None:
            raise ValueError("this graph was loaded: pass transcoders= to rw.explore too, to read its features' writes")
        graph._replacement_model(session.model, transcoders)
    return graph._replacement


def feature_steers(session, node: int) -> tuple[Steer, ...]:
    """Feature node ``node``'s writes (activation x decoder row) subtracted at its position after its block, and
    after every later block it writes to for a cross-layer transcoder: the interventions
    :meth:`Graph.ablation_effect` measures in the real model, applied and removed together."""
    graph = graph_of(session)[0]
    if not 0 <= node < graph.n_features:
        raise ValueError(f"graph_ablate: node {node} is not a feature node (0..{graph.n_features - 1})")
    r = _replacement(session, graph)
    i = int(graph.selected_features[node])
    layer, pos, feature = graph.active_features[i].tolist()
    position = pos - _offset(graph, list(session.clean_run.token_ids))
    if position < 0:
        raise ValueError(f"graph_ablate: node {node} sits on the token the graph added before the prompt")
    name = f"graph L{layer}.{pos} f{feature}"
    writes = r.feature_writes(i)
    return tuple(
        Steer(
            layer=t,
            vector=w.tolist(),
            scale=-1.0,
            positions=(position,),
            name=name + (f" to L{t}" if t != layer else ""),
        )
        for t, w in writes
    )


def demeaned(logits: torch.Tensor, token: int) -> float:
    logits = logits.float()
    return float(logits[token] - logits.mean())


def logit_row(graph: Graph, logit: int = 0) -> int:
    """The adjacency row of logit node ``logit`` (0: the top one)."""
    return graph.n_features + (graph.n_layers + 1) * graph.n_pos + logit
