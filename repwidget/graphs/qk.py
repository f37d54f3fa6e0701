"""QK attribution: which nodes of a prompt's replacement model make one head's attention scores (circuit-tracer#53).

The score of query position ``q`` and key ``k`` is ``s(q, k) = scale * Q . K`` with ``Q`` and ``K`` the head's query
and key vectors as the model's own attention computes them (projections, biases, rotary embedding: read from the
attention interface, ``model/attention.py``, through the replacement model's pass, ``replacement.py``). With the
norms frozen, ``Q`` and ``K`` are affine in the nodes (feature activations, error vectors, token embeddings), so
``Q = Q0 + sum_n Q_n`` and ``K = K0 + sum_m K_m`` (``Q0``, ``K0``: what no node writes, the biases) and the score
is bilinear. Each node gets a *query-side* contribution ``scale * Q_n . K`` (the key held at its value) and a
*key-side* one ``scale * Q . K_m`` (the query held); summed, they count the node-by-node part
``cross = scale * (Q - Q0) . (K - K0)`` twice, so

    score = sum(query side) + sum(key side) + bias - cross,   bias = scale * Q0 . K0.

Each side is one backward pass of the held-out product. Alongside, each earlier head's output at the query (key)
position gets its query-side (key-side) contribution the same way: the path of, say, a previous-token head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from .freeze import FrozenPattern, _is_norm
from .replacement import ReplacementModel

if TYPE_CHECKING:
    from ..model.model import Model
    from ..model.tokens import TokensLike


class QKNode(NamedTuple):
    """A node's contribution to a score: ``kind`` ``"feature"``, ``"error"`` or ``"token"``; ``layer`` (-1 for a
    token), ``position``, ``feature`` (the feature index, the token id of a token, -1 for an error)."""

    kind: str
    layer: int
    position: int
    feature: int
    contribution: float


@dataclass
class QKKey:
    """One key's score and its parts: ``score == query_total + key_total + bias - cross`` (see the module).

    ``query_side`` / ``key_side``: the ``top`` nodes by absolute contribution through the query / the key;
    ``query_heads`` / ``key_heads`` ``[layer, head]`` (the layers before the head's): each earlier head's output
    at the query / key position, through the query / key (a path, not a node: it overlaps the nodes' sums)."""

    position: int
    token: str
    probability: float
    score: float
    query_side: list[QKNode]
    key_side: list[QKNode]
    query_total: float
    key_total: float
    bias: float
    cross: float
    query_heads: torch.Tensor
    key_heads: torch.Tensor


@dataclass
class QKAttribution:
    """The QK attribution of head ``layer.head`` at ``query`` (a position of ``tokens``, the replacement model's
    tokens: a BOS first). ``nodes`` are (kind, layer, position, feature) and ``query_contributions`` /
    ``key_contributions`` ``[len(keys), len(nodes)]`` every node's contribution, of which each key's lists are the
    top."""

    layer: int
    head: int
    query: int
    tokens: list[str]
    token_ids: list[int]
    keys: list[QKKey]
    nodes: list[tuple[str, int, int, int]]
    query_contributions: torch.Tensor
    key_contributions: torch.Tensor

    def __repr__(self) -> str:
        lines = [f"QKAttribution(head {self.layer}.{self.head}, query {self.query} {self.tokens[self.query]!r})"]
        for key in self.keys:
            lines.append(
                f"  key {key.position} {key.token!r}: p={key.probability:.3f} score={key.score:.3f} = query side "
                f"{key.query_total:.3f} + key side {key.key_total:.3f} + bias {key.bias:.3f} - cross {key.cross:.3f}"
            )
        return "\n".join(lines)


class _LiveQK(FrozenPattern):
    """The head's layer's sink: the pattern stays frozen, and the live query and key (in the autograd graph) are
    kept."""

    def __init__(self, frozen: FrozenPattern) -> None:
        self.recorded = frozen.recorded
        self.live: tuple[torch.Tensor, torch.Tensor] | None = None

    def queries_keys(self, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.live = (query, key)
        return super().queries_keys(query, key)


def qk_attribution(
    model: Model,
    text: TokensLike,
    transcoders: Any,
    layer: int,
    head: int,
    query: int = -1,
    top: int = 20,
    keys: int | Sequence[int] = 3,
    progress: bool = True,
) -> QKAttribution:
    """Which nodes (features, error nodes, token embeddings) make head ``layer.head``'s attention scores at position
    ``query`` of ``text`` (with a BOS first, as the replacement model's tokens), for the ``keys`` keys it attends to
    most (or these key positions), under ``transcoders`` (one per layer). ``top``: nodes listed per side and key."""
    from tqdm.auto import tqdm

    _check(model, layer, head, top)
    replacement = ReplacementModel(model, text, transcoders)
    n_pos = len(replacement.ids)
    if not -n_pos <= query < n_pos:
        raise ValueError(f"query must be a position of the {n_pos} tokens (BOS first), or negative; got {query}")
    query %= n_pos
    module = model.hf.get_submodule(f"{model.arch.blocks}.{layer}.{model.arch.attn}")
    scale = float(getattr(module, "scaling", None) or model.arch.d_head**-0.5)
    kv_head = head // (model.arch.n_heads // model.arch.n_kv_heads)
    frozen = replacement.patterns[layer]
    recorded_q, recorded_k = frozen.recorded
    real_scores = scale * recorded_k[0, kv_head, : query + 1].float() @ recorded_q[0, head, query].float()
    probs = torch.softmax(real_scores, -1)
    positions = _keys(keys, probs, query)

    sink = _LiveQK(frozen)
    replacement.patterns[layer] = sink
    z_names = tuple(f"blocks.{earlier}.attn.hook_z" for earlier in range(layer))
    sources = [replacement.activations.clone(), replacement.errors.clone(), replacement.tokens.clone()]
    try:
        with torch.no_grad():  # Q0, K0: nothing written by any node
            replacement.run(*(torch.zeros_like(x) for x in sources))
            q0, k0 = (x[0].float() for x in sink.live)
        for x in sources:
            x.requires_grad_()
        result = replacement.run(*sources, grad=True, extra=z_names)
        live_q, live_k = (x[0].float() for x in sink.live)
        q0, k0 = q0.detach(), k0.detach()
    finally:
        replacement.patterns[layer] = frozen
    zs = [result.extra[name] for name in z_names]
    q_vec, q_bias = live_q[head, query], q0[head, query]
    n_before = int((replacement.features[:, 0] < layer).sum())  # features are sorted by layer
    nodes = _nodes(replacement, layer)
    out_keys, rows = [], {"query": [], "key": []}
    for position in tqdm(positions, desc="QK attribution", disable=not progress):
        k_vec, k_bias = live_k[kv_head, position], k0[kv_head, position]
        parts = {}
        for side, product, at in (
            ("query", q_vec @ k_vec.detach(), query),
            ("key", q_vec.detach() @ k_vec, position),
        ):
            grads = torch.autograd.grad(scale * product, [*sources, *zs], retain_graph=True, allow_unused=True)
            acts, errors, tokens = (
                torch.zeros_like(s) if g is None else g * s for g, s in zip(grads[:3], sources, strict=True)
            )
            row = torch.cat([acts[:n_before], errors[:layer].sum(-1).flatten(), tokens.sum(-1)])
            rows[side].append(row.detach().float().cpu())
            parts[side] = _heads(grads[3:], zs, at, model.arch.n_heads)
        q_value, k_value = q_vec.detach(), k_vec.detach()
        q_total = float(scale * (q_value - q_bias) @ k_value)
        k_total = float(scale * q_value @ (k_value - k_bias))
        out_keys.append(
            QKKey(
                position=position,
                token=model.to_str_tokens([replacement.ids[position]])[0],
                probability=float(probs[position]),
                score=float(real_scores[position]),
                query_side=_top(nodes, rows["query"][-1], top),
                key_side=_top(nodes, rows["key"][-1], top),
                query_total=q_total,
                key_total=k_total,
                bias=float(scale * q_bias @ k_bias),
                cross=float(scale * (q_value - q_bias) @ (k_value - k_bias)),
                query_heads=parts["query"],
                key_heads=parts["key"],
            )
        )
    return QKAttribution(
        layer=layer,
        head=head,
        query=query,
        tokens=model.to_str_tokens(replacement.ids),
        token_ids=list(replacement.ids),
        keys=out_keys,
        nodes=nodes,
        query_contributions=torch.stack(rows["query"]) if rows["query"] else torch.zeros(0, len(nodes)),
        key_contributions=torch.stack(rows["key"]) if rows["key"] else torch.zeros(0, len(nodes)),
    )


def _check(model: Model, layer: int, head: int, top: int) -> None:
    if not isinstance(layer, int) or not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must be an int in 0..{model.n_layers - 1}; got {layer!r}")
    if not isinstance(head, int) or not 0 <= head < model.arch.n_heads:
        raise ValueError(f"head must be an int in 0..{model.arch.n_heads - 1}; got {head!r}")
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive int (nodes listed per side); got {top!r}")
    if getattr(model.hf.config, "attn_logit_softcapping", None):
        raise ValueError("QK attribution needs scores = scale * q . k; this model soft-caps its attention scores")
    module = model.hf.get_submodule(f"{model.arch.blocks}.{layer}.{model.arch.attn}")
    if any(_is_norm(m) for m in module.modules()):
        raise ValueError(
            "QK attribution needs q and k affine in the residual stream; this model normalises them inside its "
            "attention (q_norm / k_norm), which is not done"
        )


def _keys(keys: int | Sequence[int], probs: torch.Tensor, query: int) -> list[int]:
    """The key positions: the ``keys`` most attended, or these (each at most ``query``)."""
    if isinstance(keys, int) and not isinstance(keys, bool):
        if keys < 1:
            raise ValueError(f"keys must be a positive int or a list of key positions; got {keys}")
        return probs.topk(min(keys, len(probs))).indices.tolist()
    positions = [int(k) for k in keys]
    if not positions or any(not 0 <= k <= query for k in positions):
        raise ValueError(f"key positions must be in 0..{query} (the query's position and before); got {positions}")
    return positions


def _nodes(replacement: ReplacementModel, layer: int) -> list[tuple[str, int, int, int]]:
    """Features before ``layer``, then error nodes (layer-major) before it, then tokens: the rows' order."""
    feats = replacement.features[replacement.features[:, 0] < layer].tolist()
    n_pos = len(replacement.ids)
    errors = [("error", lay, pos, -1) for lay in range(layer) for pos in range(n_pos)]
    tokens = [("token", -1, pos, tok) for pos, tok in enumerate(replacement.ids)]
    return [("feature", lay, pos, f) for lay, pos, f in feats] + errors + tokens


def _top(nodes: list[tuple[str, int, int, int]], row: torch.Tensor, top: int) -> list[QKNode]:
    order = row.abs().argsort(descending=True)[:top]
    return [QKNode(*nodes[i], float(row[i])) for i in order.tolist() if row[i] != 0]


def _heads(grads: Sequence[torch.Tensor | None], zs: list[torch.Tensor], position: int, n_heads: int) -> torch.Tensor:
    """``[layers, heads]``: each head's output at ``position`` times the gradient there (its contribution)."""
    out = torch.zeros(len(zs), n_heads)
    for lay, (g, z) in enumerate(zip(grads, zs, strict=True)):
        if g is not None:
            out[lay] = (g * z)[position].reshape(n_heads, -1).sum(-1).detach().float().cpu()
    return out
