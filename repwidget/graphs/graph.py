"""An attribution graph (``rw.attribution_graph`` makes one): nodes, a dense adjacency, influence, pruning and the
replacement and completeness scores, as circuit-tracer defines them; saved as safetensors + JSON.

Nodes are ordered ``[features | errors (layer-major, then position) | tokens | logits]``; ``adjacency[t, s]`` is the
direct effect of source ``s`` on target ``t`` (a feature's pre-activation or a logit node's demeaned logit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .. import file_checks

FORMAT = "repwidget-attribution-graph"


class PruneResult(NamedTuple):
    """What pruning keeps: ``node_mask`` ``[nodes]``, ``edge_mask`` ``[nodes, nodes]``, and each node's cumulative
    influence score (the share of all influence held by the nodes at least as influential)."""

    node_mask: torch.Tensor
    edge_mask: torch.Tensor
    cumulative_scores: torch.Tensor


class Node(NamedTuple):
    """One node: ``kind`` ``"feature"``, ``"error"``, ``"token"`` or ``"logit"``; ``layer`` (``n_layers`` for a
    logit, -1 for a token), ``position``, ``feature`` (the feature index, or the token id of a token or logit)."""

    index: int
    kind: str
    layer: int
    position: int
    feature: int
    influence: float
    activation: float | None


def _normalized(matrix: torch.Tensor) -> torch.Tensor:
    m = matrix.abs()
    return m / m.sum(1, keepdim=True).clamp(min=1e-10)


def influence(adjacency: torch.Tensor, weights: torch.Tensor, max_iter: int = 1000) -> torch.Tensor:
    """``weights @ (A + A^2 + ...)`` for the row-normalised ``|adjacency|`` ``A`` (a DAG, so the series ends)."""
    a = _normalized(adjacency)
    current = weights @ a
    total = current.clone()
    for _ in range(max_iter):
        if not current.any():
            return total
        current = current @ a
        total += current
    raise RuntimeError(f"influence did not converge in {max_iter} steps: the adjacency has a cycle")


def partial_influences(rows: torch.Tensor, logit_p: torch.Tensor, row_node: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Influence on the logits of every node, from the rows computed so far (``row_node``: each row's node)."""
    a = _normalized(rows)
    prod = torch.zeros(n_nodes)
    prod[-len(logit_p) :] = logit_p
    total = torch.zeros(rows.shape[1])
    for _ in range(256):
        prod_rows = prod[row_node] @ a
        if not prod_rows.any():
            return total
        total += prod_rows
        prod = torch.zeros(n_nodes)
        prod[: rows.shape[1]] = prod_rows
    raise RuntimeError("influence did not converge: the rows have a cycle")


def _threshold(scores: torch.Tensor, keep: float) -> torch.Tensor:
    ordered = scores.sort(descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum().clamp(min=1e-30)
    return ordered[min(int(torch.searchsorted(cumulative, keep)), len(ordered) - 1)]


@dataclass
class Graph:
    """An attribution graph of one prompt (see the module). ``active_features`` ``[n, 3]`` (layer, position,
    feature) are every active feature, ``selected_features`` the indices of those that are nodes; ``logit_values``
    the demeaned logits of the logit nodes and ``logit_bias`` what no node owns of each (their inputs plus it
    make it); ``stats``: time, backward passes, the memory estimate."""

    prompt: str
    ids: torch.Tensor
    tokens: list[str]
    n_layers: int
    active_features: torch.Tensor
    activations: torch.Tensor
    selected_features: torch.Tensor
    adjacency: torch.Tensor
    logit_ids: torch.Tensor
    logit_probabilities: torch.Tensor
    logit_values: torch.Tensor
    logit_bias: torch.Tensor
    node_threshold: float = 0.8
    edge_threshold: float = 0.98
    scan: str = "repwidget"
    stats: dict = field(default_factory=dict)
    _replacement: Any = field(default=None, repr=False, compare=False)

    @property
    def n_pos(self) -> int:
        return len(self.ids)

    @property
    def n_features(self) -> int:
        return len(self.selected_features)

    @property
    def n_logits(self) -> int:
        return len(self.logit_ids)

    def _logit_weights(self) -> torch.Tensor:
        w = torch.zeros(self.adjacency.shape[0])
        w[-self.n_logits :] = self.logit_probabilities
        return w

    def node_influence(self) -> torch.Tensor:
        """Each node's influence on the logit nodes (weighted by their probabilities), through every path."""
        return influence(self.adjacency, self._logit_weights())

    def node(self, index: int, influence: torch.Tensor | None = None) -> Node:
        """Node ``index`` of the adjacency, described."""
        n_f, n_pos, n_layers = self.n_features, self.n_pos, self.n_layers
        value = None if influence is None else float(influence[index])
        if index < n_f:
            i = int(self.selected_features[index])
            layer, pos, feat = self.active_features[i].tolist()
            return Node(index, "feature", layer, pos, feat, value, float(self.activations[i]))
        if index < n_f + n_layers * n_pos:
            layer, pos = divmod(index - n_f, n_pos)
            return Node(index, "error", layer, pos, -1, value, None)
        if index < n_f + (n_layers + 1) * n_pos:
            pos = index - n_f - n_layers * n_pos
            return Node(index, "token", -1, pos, int(self.ids[pos]), value, None)
        k = index - n_f - (n_layers + 1) * n_pos
        return Node(index, "logit", n_layers, n_pos - 1, int(self.logit_ids[k]), value, None)

    def top_nodes(self, n: int = 20, kinds: tuple[str, ...] = ("feature",)) -> list[Node]:
        """The ``n`` nodes of ``kinds`` with the most influence on the logits, most first."""
        inf = self.node_influence()
        order = inf.argsort(descending=True).tolist()
        found = [self.node(i, inf) for i in order]
        return [x for x in found if x.kind in kinds][:n]

    def top_path(self, logit: int = 0, start: tuple[str, ...] = ("token", "error")) -> list[Node]:
        """The path from a node of ``start`` kinds (``"token"``, ``"error"``: the nodes with no inputs) to logit node
        ``logit`` whose product of row-normalised ``|edge|`` weights is largest: the largest single term of the
        sources' influence on that logit (influence sums these products over every path). Listed from the source
        to the logit."""
        if not 0 <= logit < self.n_logits:
            raise ValueError(f"logit must be a logit node, 0..{self.n_logits - 1}, got {logit}")
        if not start or not set(start) <= {"token", "error"}:
            raise ValueError(f"start must name 'token' and/or 'error' (the nodes with no inputs), got {start!r}")
        a = _normalized(self.adjacency)
        n = len(a)
        target = n - self.n_logits + logit
        best = torch.zeros(n)
        best[target] = 1.0
        step = torch.full((n,), -1, dtype=torch.long)  # each node's next node on its best path
        for _ in range(n):  # a DAG: at most one pass per node on the longest path
            through, via = (a * best[:, None]).max(0)
            better = through > best
            if not better.any():
                break
            best = torch.where(better, through, best)
            step = torch.where(better, via, step)
        first_token = self.n_features + self.n_layers * self.n_pos
        roots = torch.arange(
            self.n_features if "error" in start else first_token, first_token if "token" not in start else target
        )
        roots = roots[roots < n - self.n_logits]
        node = int(roots[best[roots].argmax()])
        if float(best[node]) == 0:
            raise ValueError(f"no token or error node has a path to logit node {logit}")
        inf = self.node_influence()
        path = [self.node(node, inf)]
        while node != target:
            node = int(step[node])
            path.append(self.node(node, inf))
        return path

    def prune(self, node_threshold: float | None = None, edge_threshold: float | None = None) -> PruneResult:
        """Keep the nodes holding ``node_threshold`` of the influence on the logits (tokens and logits always),
        then the edges holding ``edge_threshold`` of it, then drop features and errors left without an edge out
        (and features without an edge in), until nothing changes (circuit-tracer's ``prune_graph``)."""
        node_threshold = self.node_threshold if node_threshold is None else node_threshold
        edge_threshold = self.edge_threshold if edge_threshold is None else edge_threshold
        for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        weights, n_kept = self._logit_weights(), self.n_logits + self.n_pos
        node_inf = influence(self.adjacency, weights)
        nodes = node_inf >= _threshold(node_inf, node_threshold)
        nodes[-n_kept:] = True
        pruned = self.adjacency.clone()
        pruned[~nodes] = 0
        pruned[:, ~nodes] = 0
        a = _normalized(pruned)
        edge_scores = a * (influence(pruned, weights) + weights)[:, None]
        edges = edge_scores >= _threshold(edge_scores.flatten(), edge_threshold)
        before = None
        while before is None or not torch.equal(before, nodes):
            before = nodes.clone()
            edges[~nodes] = False
            edges[:, ~nodes] = False
            nodes[:-n_kept] &= edges[:, :-n_kept].any(0)
            nodes[: self.n_features] &= edges[: self.n_features].any(1)
        ordered, order = node_inf.sort(descending=True)
        cumulative = torch.zeros_like(node_inf)
        cumulative[order] = ordered.cumsum(0) / ordered.sum().clamp(min=1e-30)
        return PruneResult(nodes, edges, cumulative)

    def scores(self) -> tuple[float, float]:
        """``(replacement, completeness)``: the share of the tokens' and errors' influence that is the tokens', and
        the influence-weighted share of every node's inputs that come from no error node (circuit-tracer's)."""
        n_f, n_err = self.n_features, self.n_layers * self.n_pos
        weights = self._logit_weights()
        a = _normalized(self.adjacency)
        inf = influence(self.adjacency, weights)
        tokens, errors = inf[n_f + n_err : n_f + n_err + self.n_pos].sum(), inf[n_f : n_f + n_err].sum()
        replacement = tokens / (tokens + errors).clamp(min=1e-30)
        non_error = 1 - a[:, n_f : n_f + n_err].sum(-1)
        out = inf + weights
        return float(replacement), float((non_error * out).sum() / out.sum())

    def ablation_effect(self, node: int, logit: int = 0, model=None, transcoders=None) -> dict[str, float]:
        """Removing feature node ``node``'s write, the change of logit node ``logit``'s demeaned logit: as the graph
        predicts it (minus the edge), measured in the replacement model (attention, norms and every other MLP
        output frozen: the direct effect) and in the real model (its write subtracted at its position after its
        block, and after every later block it writes to for a cross-layer transcoder: ``rw.Steer``, everything
        downstream free). ``model``/``transcoders`` are needed for a loaded graph (one made in this session keeps
        its replacement model)."""
        from ..interventions import Steer

        if not 0 <= node < self.n_features:
            raise ValueError(f"node must be a feature node, 0..{self.n_features - 1}, got {node}")
        if not 0 <= logit < self.n_logits:
            raise ValueError(f"logit must be a logit node, 0..{self.n_logits - 1}, got {logit}")
        r = self._replacement_model(model, transcoders)
        i = int(self.selected_features[node])
        values = r.activations.clone()
        values[i] = 0
        token = int(self.logit_ids[logit])

        def demeaned(logits: torch.Tensor) -> float:
            return float(logits[token] - logits.mean())

        with torch.no_grad():
            clean = demeaned(r.clean_logits()[-1])
            replaced = demeaned(r.logits_of(r.run(values))[-1])
        pos = int(self.active_features[i, 1])
        steers = [Steer(layer=t, vector=w.tolist(), scale=-1.0, positions=(pos,)) for t, w in r.feature_writes(i)]
        run = r.model.run(r.ids, steers)
        real = demeaned(run.logits_at(-1).float()) - demeaned(r.real_logits[-1])
        predicted = -float(self.adjacency[self.n_features + (self.n_layers + 1) * self.n_pos + logit, node])
        return {"predicted": predicted, "replacement": replaced - clean, "real": real}

    def _replacement_model(self, model, transcoders):
        from .replacement import ReplacementModel

        if model is not None:
            r = ReplacementModel(model, self.ids.tolist(), transcoders)
            if r.features.shape != self.active_features.shape or not torch.equal(r.features, self.active_features):
                raise ValueError("these transcoders and model give other active features than the graph's")
            self._replacement = r
        if self._replacement is None:
            raise ValueError("a loaded graph needs model= and transcoders= to rebuild its replacement model")
        return self._replacement

    def save(self, path: str | Path) -> None:
        """``path`` (a directory): ``graph.safetensors`` (the tensors) and ``graph.json`` (the rest)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: getattr(self, k).contiguous() for k in _TENSORS}, path / "graph.safetensors")
        meta = {k: getattr(self, k) for k in _FIELDS}
        (path / "graph.json").write_text(json.dumps({"format": FORMAT, **meta}, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Graph:
        """A graph saved by :meth:`save`, every field checked (a bad file is a one-line error)."""
        path = Path(path)
        meta = file_checks.read_json(path / "graph.json")
        where = path / "graph.json"
        if meta.get("format") != FORMAT:
            raise file_checks.FileFormatError(f"{where} is not a repwidget attribution graph (format {FORMAT!r})")
        kinds = {"prompt": "str", "tokens": "list", "n_layers": "+int", "node_threshold": "fraction",
                 "edge_threshold": "fraction", "scan": "str", "stats": "dict"}  # fmt: skip
        fields = {k: file_checks.json_field(meta, k, kind, where) for k, kind in kinds.items()}
        tensors = file_checks.read_tensors(path / "graph.safetensors")
        st = path / "graph.safetensors"
        n_pos = len(fields["tokens"])
        ints = {"ids": (n_pos,), "active_features": (None, 3), "selected_features": (None,), "logit_ids": (None,)}
        for k, shape in ints.items():
            fields[k] = file_checks.tensor_field(tensors, k, st, shape, integer=True).long()
        n_act, n_f, n_l = len(fields["active_features"]), len(fields["selected_features"]), len(fields["logit_ids"])
        n_nodes = n_f + (fields["n_layers"] + 1) * n_pos + n_l
        floats = {"activations": (n_act,), "adjacency": (n_nodes, n_nodes), "logit_probabilities": (n_l,),
                  "logit_values": (n_l,), "logit_bias": (n_l,)}  # fmt: skip
        for k, shape in floats.items():
            fields[k] = file_checks.tensor_field(tensors, k, st, shape).float()
        if n_f and not (int(fields["selected_features"].min()) >= 0 and int(fields["selected_features"].max()) < n_act):
            raise file_checks.FileFormatError(f"{st}: selected_features must index active_features (0..{n_act - 1})")
        return cls(**fields)

    def to_circuit_tracer_json(self, path: str | Path, slug: str = "graph", tokenizer=None) -> dict:
        """Write circuit-tracer's graph JSON (what its ``create_graph_files`` writes, pruned by the graph's
        thresholds) to ``path``; returns it. ``tokenizer`` decodes the logit tokens (else the ids are shown)."""
        from .export import circuit_tracer_json

        data = circuit_tracer_json(self, slug, tokenizer)
        Path(path).write_text(json.dumps(data, indent=1), encoding="utf-8")
        return data


_TENSORS = ("ids", "active_features", "activations", "selected_features", "adjacency", "logit_ids",
            "logit_probabilities", "logit_values", "logit_bias")  # fmt: skip
_FIELDS = ("prompt", "tokens", "n_layers", "node_threshold", "edge_threshold", "scan", "stats")
