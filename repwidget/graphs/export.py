"""A graph as circuit-tracer's graph JSON (``circuit_tracer.utils.create_graph_files``: the file its frontend and
Neuronpedia read): ``metadata``, ``qParams``, ``nodes`` (only those the pruning keeps and an edge uses, plus every
token and logit) and ``links`` (source, target, weight), node ids as circuit-tracer writes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Graph


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


def _node_json(graph: Graph, index: int, cumulative: float, tokenizer) -> dict:
    node = graph.node(index)
    common = {"run_idx": 0, "reverse_ctx_idx": 0, "token_prob": 0.0, "is_target_logit": False, "clerp": ""}
    if node.kind == "feature":
        return {**common, "node_id": f"{node.layer}_{node.feature}_{node.position}",
                "feature": _cantor(node.layer, node.feature), "layer": str(node.layer), "ctx_idx": node.position,
                "feature_type": "cross layer transcoder", "jsNodeId": f"{node.layer}_{node.feature}-0",
                "influence": cumulative, "activation": node.activation}  # fmt: skip
    if node.kind == "error":
        return {**common, "node_id": f"0_{node.layer}_{node.position}", "feature": -1, "layer": str(node.layer),
                "ctx_idx": node.position, "feature_type": "mlp reconstruction error",
                "jsNodeId": f"{node.layer}_{node.position}-0", "influence": cumulative, "activation": None}  # fmt: skip
    if node.kind == "token":
        return {**common, "node_id": f"E_{node.feature}_{node.position}", "feature": node.position, "layer": "E",
                "ctx_idx": node.position, "feature_type": "embedding", "jsNodeId": f"E_{node.feature}-{node.position}",
                "influence": cumulative, "activation": None}  # fmt: skip
    k = index - (len(graph.adjacency) - graph.n_logits)
    p = float(graph.logit_probabilities[k])
    token = tokenizer.decode([node.feature]) if tokenizer is not None else str(node.feature)
    layer = str(graph.n_layers + 1)
    return {**common, "node_id": f"{layer}_{node.feature}_{node.position}", "feature": node.feature, "layer": layer,
            "ctx_idx": node.position, "feature_type": "logit", "token_prob": p, "is_target_logit": k == 0,
            "jsNodeId": f"L_{node.feature}-{node.position}", "clerp": f'Output "{token}" (p={p:.3f})',
            "influence": None, "activation": None}  # fmt: skip


def circuit_tracer_json(graph: Graph, slug: str, tokenizer=None) -> dict:
    """The graph JSON (see the module), pruned with the graph's own thresholds."""
    nodes_mask, edge_mask, cumulative = graph.prune()
    kept = nodes_mask.nonzero(as_tuple=True)[0].tolist()
    nodes = {i: _node_json(graph, i, float(cumulative[i]), tokenizer) for i in kept}
    targets, sources = edge_mask.nonzero(as_tuple=True)
    links = [
        {"source": nodes[s]["node_id"], "target": nodes[t]["node_id"], "weight": float(graph.adjacency[t, s])}
        for t, s in zip(targets.tolist(), sources.tolist(), strict=True)
        if s in nodes and t in nodes
    ]
    used = {x for link in links for x in (link["source"], link["target"])}
    listed = [n for n in nodes.values() if n["node_id"] in used or n["feature_type"] in ("embedding", "logit")]
    metadata = {
        "slug": slug,
        "scan": graph.scan,
        "transcoder_list": [],
        "prompt_tokens": list(graph.tokens),
        "prompt": graph.prompt,
        "node_threshold": graph.node_threshold,
        "schema_version": 1,
    }
    qparams = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": qparams, "nodes": listed, "links": links}
