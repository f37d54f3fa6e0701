"""The demo model's known circuits as paths of its attribution graphs, with the shipped transcoders
(``rw.demo.transcoders()``, JumpReLU, 512 features a layer). Attention is frozen in the graph, so a head is never a
node: a head's part in a path is the part of an edge that flows through the head's output (``head_parts``), and what
made its pattern is its QK attribution (``rw.graphs.qk_attribution``).

What "appears" means here, per prompt:

- Induction (``... A B ... A`` -> ``B``): the top path from a token to the top logit (``Graph.top_path``, the
  largest term of the influence sum) starts at ``B``'s earlier position ``p`` (whose previous token is ``A``, the
  last token); the induction head 1.0 carries the largest part of that path's cross-position edge of all 16 heads'
  outputs at the last position (at least 40% of the edge); and in its QK attribution at the last query, the key it
  attends to most is ``p``, the previous-token head 0.0's output at ``p`` makes the largest key-side part of any
  earlier head, and the top key-side node is the token at ``p - 1``: the same word as the query.
- IOI (``when A and B went ... , B gave a key to`` -> ``A``): the top token path to the indirect object's logit starts
  at the indirect object's first mention, and the name movers' layer (layer 1, whose heads attend from the last
  token to the names) at the last position carries at least 90% of its cross-position edge, summed over its heads.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

import repwidget as rw
from repwidget.graphs import Graph, Node

INDUCTION, PREVIOUS, NAME_MOVER_LAYER = (1, 0), (0, 0), 1
N_PROMPTS = 8


@pytest.fixture(scope="module")
def shipped():
    return rw.demo.transcoders()


def head_parts(model, graph: Graph, source: Node, target: Node) -> torch.Tensor:
    """``[layer, head]``: the part of the edge ``source -> target`` that flows through each head's output at the
    target's position. The replacement model is linear in its sources, so it is exact: with ``g`` the gradient of the
    target at the head's output ``z``, the part is ``d(g . z) / d(source) x source``."""
    r = graph._replacement
    names = tuple(f"blocks.{layer}.attn.hook_z" for layer in range(model.n_layers))
    result = r.run(grad=True, extra=names)
    zs = [result.extra[name] for name in names]
    if target.kind == "logit":
        w_u = model.unembedding().float()
        value = result.final[-1].float() @ (w_u[target.feature] - w_u.mean(0)).to(result.final.device)
    else:
        i = int(graph.selected_features[target.index])
        value = result.x_in[target.layer][target.position].float() @ r.encoder_rows(torch.tensor([i]))[0]
    grads = torch.autograd.grad(value, zs, retain_graph=True, materialize_grads=True)
    if source.kind == "token":
        at, vector = result.resid_pre, r.tokens[source.position]
    elif source.kind == "feature":
        i = int(graph.selected_features[source.index])
        at, vector = result.mlp_out[source.layer], r.decoder_rows(torch.tensor([i]))[0] * r.activations[i]
    else:
        at, vector = result.mlp_out[source.layer], r.errors[source.layer][source.position]
    n_heads, q = model.arch.n_heads, target.position
    parts = torch.zeros(model.n_layers, n_heads)
    for layer, (z, g) in enumerate(zip(zs, grads, strict=True)):
        for head in range(n_heads):
            through = (g[q].reshape(n_heads, -1)[head].detach() * z[q].reshape(n_heads, -1)[head]).sum()
            if not through.requires_grad:
                continue
            (d,) = torch.autograd.grad(through, [at], retain_graph=True, materialize_grads=True)
            parts[layer, head] = float(d.reshape(-1, d.shape[-1])[source.position] @ vector.to(d.device))
    return parts


def crossing(path: list[Node]) -> tuple[Node, Node]:
    """The path's edge from an earlier position to the last one."""
    return next((a, b) for a, b in pairwise(path) if a.position != b.position)


def test_the_induction_circuit_is_the_top_path(demo, shipped):
    for example in rw.demo.tasks.dataset("induction", N_PROMPTS):
        graph = rw.attribution_graph(demo, example.text, shipped, max_feature_nodes=30, progress=False)
        tokens, last = graph.tokens, graph.n_pos - 1
        assert demo.to_str_tokens([int(graph.logit_ids[0])])[0] == example.target, example.text
        path = graph.top_path(0, start=("token",))
        p = path[0].position
        assert tokens[p] == example.target and p < last and tokens[p - 1] == tokens[last], (example.text, path)
        source, target = crossing(path)
        edge = float(graph.adjacency[target.index, source.index])
        parts = head_parts(demo, graph, source, target)
        assert divmod(int(parts.argmax()), parts.shape[1]) == INDUCTION and float(parts[INDUCTION]) > 0.4 * edge

        qk = rw.graphs.qk_attribution(demo, example.text, shipped, *INDUCTION, query=-1, keys=1, progress=False)
        key = qk.keys[0]
        assert key.position == p, (example.text, key)
        assert divmod(int(key.key_heads.argmax()), key.key_heads.shape[1]) == PREVIOUS
        top = key.key_side[0]
        assert (top.kind, top.position) == ("token", p - 1) and tokens[p - 1] == tokens[qk.query]


def test_the_name_movers_carry_the_top_path_to_the_indirect_object(demo, shipped):
    for example in rw.demo.tasks.dataset("ioi", N_PROMPTS):
        graph = rw.attribution_graph(demo, example.text, shipped, max_feature_nodes=30, progress=False)
        assert demo.to_str_tokens([int(graph.logit_ids[0])])[0] == example.target, example.text
        path = graph.top_path(0, start=("token",))
        first = next(i for i, t in enumerate(graph.tokens) if t.strip() == example.target)
        assert path[0].position == first and path[-1].kind == "logit", (example.text, path)
        source, target = crossing(path)
        edge = float(graph.adjacency[target.index, source.index])
        parts = head_parts(demo, graph, source, target)
        assert float(parts[NAME_MOVER_LAYER].sum()) > 0.9 * edge > 0, (example.text, parts)
        assert int(parts.argmax()) // parts.shape[1] == NAME_MOVER_LAYER


def test_top_path_is_the_largest_term_of_the_influence(demo, shipped):
    """On a small graph, brute force: every path from a token to the top logit enumerated, its product of
    normalised weights; ``top_path`` is the largest; a bad ``start`` is a one-line error."""
    from repwidget.graphs.graph import _normalized

    text = rw.demo.tasks.dataset("induction", 1)[0].text
    graph = rw.attribution_graph(demo, text, shipped, max_feature_nodes=6, progress=False)
    a = _normalized(graph.adjacency)
    target = len(a) - graph.n_logits
    first_token = graph.n_features + graph.n_layers * graph.n_pos

    def best_from(node: int) -> float:
        if node == target:
            return 1.0
        nexts = (a[:, node] > 0).nonzero(as_tuple=True)[0].tolist()
        return max((float(a[t, node]) * best_from(t) for t in nexts), default=0.0)

    brute = max(range(first_token, first_token + graph.n_pos), key=best_from)
    path = graph.top_path(0, start=("token",))
    assert path[0].index == brute and path[-1].index == target
    product = torch.tensor([float(a[b.index, s.index]) for s, b in pairwise(path)]).prod()
    assert float(product) == pytest.approx(best_from(brute), rel=1e-5)
    with pytest.raises(ValueError, match="start must name"):
        graph.top_path(0, start=("feature",))
