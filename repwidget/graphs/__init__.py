"""Attribution graphs: a prompt's replacement model (transcoders for the MLPs, attention and norms frozen) and the
direct effects between its features, error nodes, tokens and logits (the method of circuit-tracer)."""

from .attribute import GraphBudgetError, attribution_graph, estimate_bytes
from .graph import Graph, Node, PruneResult
from .qk import QKAttribution, QKKey, QKNode, qk_attribution
from .replacement import ReplacementModel

__all__ = [
    "Graph",
    "GraphBudgetError",
    "Node",
    "PruneResult",
    "QKAttribution",
    "QKKey",
    "QKNode",
    "ReplacementModel",
    "attribution_graph",
    "estimate_bytes",
    "qk_attribution",
]
