"""``rw.attribution_graph``: the direct effects between the nodes of a prompt's replacement model (the method of
circuit-tracer, "Attribution Graphs", 2025).

The replacement model is affine in its sources (feature activations, error vectors, token embeddings), so the
direct effect of source ``s`` on target ``t`` is ``a_s W_dec[s] . d(t)/d(mlp_out at s's layer and position)`` (for
an error node its vector, for a token its embedding at the first block's input). A target is a feature's
pre-activation (``W_enc[t] . mlp.hook_in``) or a logit node's demeaned logit (the unembedding's column minus the
mean column, at the last position). One backward pass per batch of targets (``torch.autograd.grad`` with
``is_grads_batched``: each row of the batch injects one target's vector) gives every source's edge to each.
Features are visited in order of their influence on the logits so far, up to ``max_feature_nodes``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

from ..options import options
from .graph import Graph, partial_influences
from .replacement import ReplacementModel

if TYPE_CHECKING:
    from ..model.model import Model
    from ..model.tokens import TokensLike

#: how many batches are visited before the features' influence ranking is computed again (circuit-tracer's 4)
UPDATE_INTERVAL = 4


class GraphBudgetError(ValueError):
    """A graph would need more memory than ``rw.options.max_capture_bytes``; raised before its backward passes."""


def estimate_bytes(
    n_layers: int, n_pos: int, d_model: int, n_features: int, n_logits: int, batch_size: int, n_writes: int = 0
) -> int:
    """Bytes the graph's largest tensors take at once: the edge rows (float32), one batch of gradients at every
    MLP output, the replacement pass's autograd graph (about 24 stream-wide values per layer and position) and the
    ``n_writes`` feature writes kept for the backward passes (one per active feature and MLP output it writes to:
    a cross-layer transcoder's feature of layer ``l`` has ``n_layers - l``)."""
    n_sources = n_features + (n_layers + 1) * n_pos
    rows = (n_features + n_logits) * (n_sources + n_logits) * 4 * 2  # the rows, then the square adjacency
    grads = batch_size * (n_layers + 2) * n_pos * d_model * 4 * 2
    graph = n_layers * n_pos * d_model * 4 * 24
    return rows + grads + graph + n_writes * d_model * 4


def attribution_graph(
    model: Model,
    text: TokensLike,
    transcoders: Any,
    max_logits: int = 10,
    logit_probability: float = 0.95,
    max_feature_nodes: int | None = None,
    batch_size: int = 64,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    progress: bool = True,
) -> Graph:
    """The attribution graph of ``text``'s next token under ``transcoders`` (one per layer): nodes are the active
    features, error nodes (layer, position), token embeddings and the top logits (at most ``max_logits``, until
    their probability reaches ``logit_probability``); ``adjacency[target, source]`` the direct effects, ordered
    [features | errors | tokens | logits] as circuit-tracer's. ``max_feature_nodes``: the most features given rows
    (visited by influence); ``batch_size``: targets per backward pass; the thresholds: what :meth:`Graph.prune`
    keeps by default. The memory needed is estimated first and refused above ``rw.options.max_capture_bytes``."""
    _check_args(max_logits, logit_probability, max_feature_nodes, batch_size, node_threshold, edge_threshold)
    from tqdm.auto import tqdm

    start = time.perf_counter()
    replacement = ReplacementModel(model, text, transcoders)
    setup = time.perf_counter() - start
    n_layers, n_pos, n_feat = model.n_layers, len(replacement.ids), len(replacement.features)
    keep = n_feat if max_feature_nodes is None else min(max_feature_nodes, n_feat)
    logits = replacement.logits[-1]
    probs = torch.softmax(logits, -1)
    top_p, top_i = probs.topk(min(max_logits, len(probs)))
    n_logits = min(int(torch.searchsorted(top_p.cumsum(0), torch.tensor(logit_probability))) + 1, len(top_p))
    logit_ids, logit_p = top_i[:n_logits], top_p[:n_logits]
    sources = replacement.features[:, 0]
    n_writes = int((n_layers - sources).sum()) if replacement.cross_layer else len(sources)
    needed = estimate_bytes(n_layers, n_pos, model.d_model, keep, n_logits, batch_size, n_writes)
    if needed > options.max_capture_bytes:
        raise GraphBudgetError(
            f"this graph ({keep} features, {n_pos} tokens) needs about {needed / 2**30:.2f} GiB, over "
            f"rw.options.max_capture_bytes ({options.max_capture_bytes / 2**30:.2f} GiB): lower max_feature_nodes "
            "or batch_size, use a shorter prompt, or raise the option"
        )
    forward = replacement.run(grad=True)
    w_u = model.unembedding().float()
    logit_vectors = w_u[logit_ids] - w_u.mean(0)
    n_sources = n_feat + (n_layers + 1) * n_pos
    rows = torch.zeros(keep + n_logits, n_sources)
    row_node = torch.zeros(keep + n_logits, dtype=torch.long)  # which node each row is the target of
    n_batches = math.ceil(n_logits / batch_size) + math.ceil(keep / batch_size)
    bar = tqdm(total=keep + n_logits, desc=f"attribution graph ({n_batches} backward passes)", disable=not progress)
    rowsof = _Backward(replacement, forward, n_sources)
    for i in range(0, n_logits, batch_size):
        vectors = logit_vectors[i : i + batch_size]
        rows[i : i + len(vectors)] = rowsof.logits(vectors)
        row_node[i : i + len(vectors)] = n_sources + torch.arange(i, i + len(vectors))
        bar.update(len(vectors))
    filled, visited = n_logits, torch.zeros(n_feat, dtype=torch.bool)
    while int(visited.sum()) < keep:
        if keep == n_feat:
            pending = torch.arange(n_feat)
        else:
            influence = partial_influences(rows[:filled], logit_p, row_node[:filled], n_sources + n_logits)
            ranked = influence[:n_feat].argsort(descending=True)
            pending = ranked[~visited[ranked]][: min(UPDATE_INTERVAL * batch_size, keep - int(visited.sum()))]
        for b in range(0, len(pending), batch_size):
            index = pending[b : b + batch_size]
            rows[filled : filled + len(index)] = rowsof.features(index)
            row_node[filled : filled + len(index)] = index
            visited[index] = True
            filled += len(index)
            bar.update(len(index))
    bar.close()
    selected = visited.nonzero(as_tuple=True)[0]
    columns = torch.cat([selected, torch.arange(n_feat, n_sources)])
    n_nodes = len(columns) + n_logits
    adjacency = torch.zeros(n_nodes, n_nodes)
    order = row_node.argsort()  # features by index, then the logits
    adjacency[:keep, : len(columns)] = rows[order[:keep]][:, columns]
    adjacency[n_nodes - n_logits :, : len(columns)] = rows[order[keep:]][:, columns]
    with torch.no_grad():
        bias = _logit_bias(replacement, logit_ids)
    tokens = model.to_str_tokens(replacement.ids)
    graph = Graph(
        prompt=text if isinstance(text, str) else "".join(tokens),
        ids=torch.tensor(replacement.ids),
        tokens=tokens,
        n_layers=n_layers,
        active_features=replacement.features.cpu(),
        activations=replacement.activations.cpu(),
        selected_features=selected,
        adjacency=adjacency,
        logit_ids=logit_ids.cpu(),
        logit_probabilities=logit_p.cpu(),
        logit_values=(logits[logit_ids] - logits.mean()).cpu(),
        logit_bias=bias.cpu(),
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        scan=str(getattr(transcoders, "scan", None) or "repwidget"),
        stats={
            "seconds": time.perf_counter() - start,
            "setup_seconds": setup,
            "backward_passes": n_batches,
            "estimated_bytes": needed,
            "active_features": n_feat,
        },
    )
    graph._replacement = replacement
    return graph


class _Backward:
    """Edge rows of a batch of targets: one backward pass through the replacement pass ``forward``."""

    def __init__(self, replacement: ReplacementModel, forward, n_sources: int) -> None:
        self.r, self.forward, self.n_sources = replacement, forward, n_sources
        features, coders = replacement.features, replacement.coders
        #: per MLP output: the active features writing to it (a cross-layer transcoder's from every earlier layer)
        self.by_layer = [coders.writers(features, layer) for layer in range(replacement.n_layers)]
        self.writes = [
            replacement.decoder_rows(i, layer) * replacement.activations[i, None]
            for layer, i in enumerate(self.by_layer)
        ]

    def logits(self, vectors: torch.Tensor) -> torch.Tensor:
        final = self.forward.final
        grad = torch.zeros(len(vectors), *final.shape, device=final.device)
        grad[:, -1] = vectors.to(final.device)
        return self._rows([final], [grad], self.r.n_layers)

    def features(self, index: torch.Tensor) -> torch.Tensor:
        r, fwd = self.r, self.forward
        layers, positions = r.features[index, 0], r.features[index, 1]
        encoders = r.encoder_rows(index)
        outputs, grads = [], []
        for layer in layers.unique().tolist():
            x = fwd.x_in[layer]
            grad = torch.zeros(len(index), *x.shape, device=x.device)
            at = (layers == layer).nonzero(as_tuple=True)[0]
            grad[at, positions[at]] = encoders[at].to(x.device)
            outputs.append(x)
            grads.append(grad)
        return self._rows(outputs, grads, int(layers.max()))

    def _rows(self, outputs: list[torch.Tensor], grads: list[torch.Tensor], below: int) -> torch.Tensor:
        """Rows ``[batch, sources]``: the gradients at every MLP output before layer ``below`` and at the first
        block's input, contracted with each source's write."""
        r, fwd = self.r, self.forward
        inputs = [fwd.mlp_out[layer] for layer in range(below)] + [fwd.resid_pre]
        found = torch.autograd.grad(
            outputs, inputs, grads, retain_graph=True, allow_unused=True, is_grads_batched=True, materialize_grads=True
        )
        batch, n_pos, n_feat = grads[0].shape[0], len(r.ids), len(r.features)
        rows = torch.zeros(batch, self.n_sources)
        for layer in range(below):
            g = found[layer].float().cpu()  # [batch, pos, d]
            index = self.by_layer[layer]
            if len(index):
                at = g[:, r.features[index, 1]]  # [batch, n, d]
                rows[:, index] += torch.einsum("bnd,nd->bn", at, self.writes[layer])
            start = n_feat + layer * n_pos
            rows[:, start : start + n_pos] = torch.einsum("bpd,pd->bp", g, r.errors[layer].cpu())
        start = n_feat + r.n_layers * n_pos
        rows[:, start : start + n_pos] = torch.einsum("bpd,pd->bp", found[-1].float().cpu(), r.tokens.cpu())
        return rows


def _logit_bias(replacement: ReplacementModel, logit_ids: torch.Tensor) -> torch.Tensor:
    """Each logit node's demeaned logit with every source zeroed (no feature, error or token embedding): what no
    node of the graph owns (position embeddings, biases, the BOS position's MLP outputs)."""
    r = replacement
    result = r.run(torch.zeros_like(r.activations), torch.zeros_like(r.errors), torch.zeros_like(r.tokens))
    logits = r.logits_of(result)[-1]
    return logits[logit_ids] - logits.mean()


def _check_args(max_logits, logit_probability, max_feature_nodes, batch_size, node_threshold, edge_threshold) -> None:
    for name, value in (("max_logits", max_logits), ("batch_size", batch_size)):
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r:.40}")
    if max_feature_nodes is not None and (type(max_feature_nodes) is not int or max_feature_nodes < 0):
        raise ValueError(
            f"max_feature_nodes must be None (every active feature) or an int >= 0, got {max_feature_nodes!r:.40}"
        )
    for name, value in (
        ("logit_probability", logit_probability),
        ("node_threshold", node_threshold),
        ("edge_threshold", edge_threshold),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number between 0 and 1, got {value!r:.40}")
