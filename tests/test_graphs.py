"""Attribution graphs (``repwidget/graphs``): the replacement model against the plain HF forward, completeness of
every target's inputs, faithfulness of edges against ablations in the replacement model, influence against a matrix
inverse, pruning, save/load, circuit-tracer's graph JSON, the memory estimate's refusal.

The transcoders are fitted here in a fraction of a second: random ReLU encoders, decoders (and a skip connection)
by least squares on the demo model's MLP inputs and outputs, so features are real directions of its MLPs."""

from __future__ import annotations

import json

import pytest
import torch

import repwidget as rw
from repwidget.file_checks import FileFormatError
from repwidget.graphs import Graph, GraphBudgetError, ReplacementModel, estimate_bytes

PROMPT_TASK = ("induction", 1)


def fit_transcoders(model, d_tc: int = 48, skip: bool = False) -> rw.TranscoderSet:
    texts = [e.text for task in ("induction", "ioi", "facts") for e in rw.demo.tasks.dataset(task, 12)]
    names = [f"blocks.{layer}.{h}" for layer in range(model.n_layers) for h in ("mlp.hook_in", "hook_mlp_out")]
    caps = model.capture_batch(texts, names, progress=False)
    out = []
    for layer in range(model.n_layers):
        x = torch.cat([c[f"blocks.{layer}.mlp.hook_in"] for c in caps]).float()
        y = torch.cat([c[f"blocks.{layer}.hook_mlp_out"] for c in caps]).float()
        w_enc = torch.randn(d_tc, x.shape[1], generator=torch.Generator().manual_seed(layer)) / x.shape[1] ** 0.5
        pre = x @ w_enc.T
        b_enc = -pre.mean(0) - 0.7 * pre.std(0)
        parts = [torch.relu(pre + b_enc), torch.ones(len(x), 1)] + ([x] if skip else [])
        sol = torch.linalg.lstsq(torch.cat(parts, 1), y).solution
        w_skip = sol[d_tc + 1 :].T.contiguous() if skip else None
        out.append(rw.Transcoder(layer, w_enc, b_enc, sol[:d_tc].contiguous(), sol[d_tc], W_skip=w_skip))
    return rw.TranscoderSet(out, scan="least-squares")


@pytest.fixture(scope="module")
def prompt():
    task, i = PROMPT_TASK
    return rw.demo.tasks.dataset(task, 3)[i].text


@pytest.fixture(scope="module")
def transcoders(demo):
    return fit_transcoders(demo)


@pytest.fixture(scope="module")
def graph(demo, prompt, transcoders):
    return rw.attribution_graph(demo, prompt, transcoders, batch_size=48, progress=False)


def _logit_rows(graph: Graph) -> slice:
    return slice(graph.n_features + (graph.n_layers + 1) * graph.n_pos, None)


@pytest.mark.parametrize("skip", [False, True])
def test_replacement_model_gives_the_real_logits(demo, prompt, transcoders, skip):
    tcs = transcoders if not skip else fit_transcoders(demo, skip=True)
    r = ReplacementModel(demo, prompt, tcs)
    with torch.no_grad():
        plain = demo.hf(torch.tensor([r.ids])).logits[0].float()
        replaced = r.logits_of(r.run())
    assert float((replaced - plain).abs().max()) <= 1e-5 * float(plain.abs().max())
    assert r.zeroed == 1 and not bool((r.features[:, 1] == 0).any())  # BOS: position 0 has no feature (as c-t)
    assert float(r.errors[:, 0].abs().max()) == 0
    if skip:  # a skip connection: the graph of this replacement model is complete too (the skip path is linear)
        g = rw.attribution_graph(demo, prompt, tcs, batch_size=64, progress=False)
        total = g.adjacency[_logit_rows(g)].sum(1) + g.logit_bias
        assert torch.allclose(total, g.logit_values, rtol=1e-4, atol=1e-4 * float(g.logit_values.abs().max()))
        top = g.top_nodes(3)[0]
        effect = g.ablation_effect(top.index)
        assert abs(effect["predicted"] - effect["replacement"]) <= 1e-3 * max(abs(effect["predicted"]), 1e-2)


def test_every_logit_and_feature_is_the_sum_of_its_inputs(graph):
    """Completeness: each target's edges (features, errors, tokens) plus what no node owns (a pass with every source
    zeroed, the forward replacement model) make its value: the logit nodes' demeaned logits from the real run, and
    the features' pre-activations read from the real run's MLP inputs."""
    values = graph.logit_values
    total = graph.adjacency[_logit_rows(graph)].sum(1) + graph.logit_bias
    assert float(((total - values).abs() / values.abs().clamp(min=1e-3)).max()) < 1e-4
    assert graph.n_logits >= 1 and float(graph.logit_probabilities.sum()) <= 1
    r = graph._replacement
    with torch.no_grad():
        zero = r.run(torch.zeros_like(r.activations), torch.zeros_like(r.errors), torch.zeros_like(r.tokens))
    for node in range(0, graph.n_features, max(1, graph.n_features // 25)):
        i = int(graph.selected_features[node])
        layer, pos, feat = graph.active_features[i].tolist()
        w = r.transcoders[layer].W_enc[feat]
        pre = float(w @ _clean_in(r)[layer][pos])
        bias = float(w @ zero.x_in[layer][pos])
        assert abs(float(graph.adjacency[node].sum()) + bias - pre) <= 1e-4 * max(1.0, abs(pre))


def _clean_in(r, cache={}):  # noqa: B006 (one replacement model's clean MLP inputs, read once)
    if id(r) not in cache:
        with torch.no_grad():
            cache[id(r)] = [x.detach() for x in r.run().x_in]
    return cache[id(r)]


def test_top_twenty_ablations_match_the_graph_and_report_the_real_model(graph):
    """Faithfulness: zeroing each of the 20 most influential features in the replacement model (attention, norms
    and every other MLP output frozen) moves the top logit by minus its edge; the real model's effect is reported."""
    top = graph.top_nodes(20)
    assert len(top) == 20 and all(n.kind == "feature" for n in top)
    real = []
    for node in top:
        effect = graph.ablation_effect(node.index, logit=0)
        assert abs(effect["predicted"] - effect["replacement"]) <= 1e-3 * max(abs(effect["predicted"]), 1e-2), node
        real.append(effect["real"])
    assert all(map(torch.isfinite, torch.tensor(real))) and any(abs(x) > 1e-4 for x in real)


def test_feature_to_feature_edges_are_direct_effects(graph):
    """An edge between two features is the change of the target's pre-activation when the source is zeroed in the
    replacement model (everything else frozen): checked on the strongest edges into features."""
    r = graph._replacement
    feat_rows = graph.adjacency[: graph.n_features, : graph.n_features]
    strongest = feat_rows.abs().flatten().topk(5).indices
    clean = _clean_in(r)
    for flat in strongest.tolist():
        t, s = divmod(flat, graph.n_features)
        values = r.activations.clone()
        values[int(graph.selected_features[s])] = 0
        with torch.no_grad():
            ablated = r.run(values).x_in
        layer, pos, feat = graph.active_features[int(graph.selected_features[t])].tolist()
        w = r.transcoders[layer].W_enc[feat]
        change = float(w @ (ablated[layer][pos] - clean[layer][pos]))
        assert abs(change + float(feat_rows[t, s])) <= 1e-3 * max(abs(float(feat_rows[t, s])), 1e-2)


def test_influence_matches_a_matrix_inverse_and_pruning_keeps_what_it_says(graph):
    from repwidget.graphs.graph import _normalized, influence

    a = _normalized(graph.adjacency).double()
    weights = graph._logit_weights().double()
    reference = weights @ (torch.linalg.inv(torch.eye(len(a), dtype=a.dtype) - a) - torch.eye(len(a), dtype=a.dtype))
    assert torch.allclose(influence(graph.adjacency, graph._logit_weights()).double(), reference, atol=1e-6)
    nodes, edges, cumulative = graph.prune(0.8, 0.98)
    n_kept = graph.n_pos + graph.n_logits
    assert bool(nodes[-n_kept:].all()) and 0 < int(nodes[:-n_kept].sum()) < len(nodes) - n_kept
    assert not bool(edges[~nodes].any()) and not bool(edges[:, ~nodes].any())
    assert float(cumulative.max()) == pytest.approx(1.0) and float(cumulative.min()) > 0
    loose, _, _ = graph.prune(0.99, 0.999)
    assert int(loose.sum()) >= int(nodes.sum())
    replacement, completeness = graph.scores()
    assert 0 < replacement < 1 and 0 < completeness <= 1


def test_fewer_feature_nodes_give_the_same_edges(demo, prompt, transcoders, graph):
    """With max_feature_nodes, the features visited first by influence keep exactly the full graph's edges."""
    small = rw.attribution_graph(demo, prompt, transcoders, max_feature_nodes=30, batch_size=16, progress=False)
    assert small.n_features == 30 and small.stats["active_features"] == graph.n_features
    full_index = small.selected_features  # the full graph selects every feature: its node i is active feature i
    n_rest = (graph.n_layers + 1) * graph.n_pos
    columns = torch.cat([full_index, graph.n_features + torch.arange(n_rest)])
    expected = graph.adjacency[full_index][:, columns]
    assert torch.allclose(small.adjacency[:30, : 30 + n_rest], expected, atol=1e-6)
    full_influence = graph.node_influence()[: graph.n_features]
    assert float(full_influence[full_index].sum()) > float(full_influence.topk(30).values.sum()) * 0.5


def test_save_load_round_trip_and_circuit_tracer_json(graph, tmp_path, demo):
    graph.save(tmp_path / "g")
    loaded = Graph.load(tmp_path / "g")
    for name in ("ids", "active_features", "activations", "selected_features", "adjacency", "logit_bias"):
        assert torch.equal(getattr(loaded, name), getattr(graph, name)), name
    assert loaded.tokens == graph.tokens and loaded.prompt == graph.prompt
    with pytest.raises(ValueError, match="model= and transcoders="):
        loaded.ablation_effect(0)
    meta = json.loads((tmp_path / "g" / "graph.json").read_text())
    (tmp_path / "g" / "graph.json").write_text(json.dumps({**meta, "n_layers": "four"}))
    with pytest.raises(FileFormatError, match="n_layers must be a positive integer"):
        Graph.load(tmp_path / "g")

    data = graph.to_circuit_tracer_json(tmp_path / "graph.json", slug="demo", tokenizer=demo.tokenizer)
    assert json.loads((tmp_path / "graph.json").read_text()) == data
    # the fields circuit-tracer 0.5's frontend models (frontend/graph_models.py) declare
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    assert set(data["metadata"]) == {
        "slug", "scan", "transcoder_list", "prompt_tokens", "prompt", "node_threshold", "schema_version"
    }  # fmt: skip
    assert set(data["qParams"]) == {"pinnedIds", "supernodes", "linkType", "clickedId", "sg_pos"}
    node_fields = {"node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit",
                   "run_idx", "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation"}  # fmt: skip
    ids = [n["node_id"] for n in data["nodes"]]
    assert all(set(n) == node_fields for n in data["nodes"]) and len(ids) == len(set(ids))
    kinds = {n["feature_type"] for n in data["nodes"]}
    assert {"embedding", "logit", "cross layer transcoder"} <= kinds
    assert sum(n["is_target_logit"] for n in data["nodes"]) == 1
    assert len(data["links"]) > 0 and all({l["source"], l["target"]} <= set(ids) for l in data["links"])  # noqa: E741
    assert sum(n["feature_type"] == "embedding" for n in data["nodes"]) == graph.n_pos


def test_the_estimate_refuses_a_graph_too_large(demo, prompt, transcoders, monkeypatch):
    assert estimate_bytes(4, 64, 128, 2000, 10, 64) > estimate_bytes(4, 16, 128, 200, 10, 64)
    monkeypatch.setattr(rw.options, "max_capture_bytes", 1 << 20, raising=False)
    with pytest.raises(GraphBudgetError, match="max_capture_bytes"):
        rw.attribution_graph(demo, prompt, transcoders, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        rw.attribution_graph(demo, prompt, transcoders, batch_size=0)
    with pytest.raises(TypeError, match="one transcoder for each"):
        rw.attribution_graph(demo, prompt, list(transcoders)[:2])


def test_a_norm_of_another_kind_is_named():
    from repwidget.graphs.freeze import _FrozenCall

    class WeirdNorm(torch.nn.Module):
        def forward(self, x):
            return torch.tanh(x)

    x = torch.randn(1, 3, 8)
    with pytest.raises(ValueError, match="WeirdNorm is neither a LayerNorm nor an RMSNorm"):
        _FrozenCall(WeirdNorm(), x, torch.tanh(x))


@pytest.mark.parametrize("name", ["llama", "qwen3", "gemma", "opt"])
def test_the_replacement_model_and_completeness_on_other_architectures(name):
    """RMSNorm with grouped-query and rotary attention (Llama), query/key norms (Qwen3), (1 + weight) norms and scaled
    embeddings (Gemma), LayerNorm and learned positions (OPT): random ReLU transcoders, the real logits reproduced
    and every logit node's inputs summing to its demeaned logit."""
    from architectures import build, matrix_ids

    model = rw.load(build(name))
    g = torch.Generator().manual_seed(0)
    d = model.d_model
    w_enc = [torch.nn.functional.normalize(torch.randn(6, d, generator=g), dim=1) for _ in range(model.n_layers)]
    w_dec = [0.1 * torch.randn(6, d, generator=g) for _ in range(model.n_layers)]
    zeros = torch.zeros(d)
    tcs = rw.TranscoderSet([rw.Transcoder(i, w_enc[i], torch.zeros(6), w_dec[i], zeros) for i in range(model.n_layers)])
    ids = matrix_ids(8)
    graph = rw.attribution_graph(model, ids, tcs, progress=False)
    r = graph._replacement
    with torch.no_grad():
        plain = model.hf(torch.tensor([ids])).logits[0].float()
    assert float((r.clean_logits() - plain).abs().max()) <= 1e-5 * float(plain.abs().max())
    total = graph.adjacency[_logit_rows(graph)].sum(1) + graph.logit_bias
    assert graph.n_features > 0
    assert torch.allclose(total, graph.logit_values, rtol=1e-4, atol=1e-4 * float(graph.logit_values.abs().max()))


def test_soft_capped_logits_are_refused():
    from architectures import build

    model = rw.load(build("gemma2"))
    d, zero = model.d_model, torch.zeros(4)
    tcs = rw.TranscoderSet(
        [rw.Transcoder(i, torch.ones(4, d), zero, torch.ones(4, d), torch.zeros(d)) for i in range(2)]
    )
    with pytest.raises(ValueError, match="soft-capping"):
        rw.attribution_graph(model, [3, 4, 5], tcs, progress=False)


def test_a_special_token_is_put_first_as_circuit_tracer_does():
    from types import SimpleNamespace

    from repwidget.graphs.replacement import special_first

    tokenizer = SimpleNamespace(all_special_ids=[0, 2, 7], bos_token_id=None, pad_token_id=7, eos_token_id=2)
    assert special_first(tokenizer, [5, 6]) == [7, 5, 6]  # no BOS: the pad token, as circuit-tracer's order
    assert special_first(tokenizer, [2, 6]) == [2, 6]  # a special token first already
    assert special_first(None, [5, 6]) == [5, 6]  # ids alone: nothing to prepend


def test_an_interrupt_mid_graph_leaves_the_model_as_it_was(demo, prompt, transcoders, monkeypatch):
    """Ctrl-C inside a frozen norm (in the replacement model's pass, hooks of both the executor and the norms in
    place): every hook is gone, and the next graph is the same (the shared ``demo`` fixture checks weights too)."""
    from repwidget.graphs import freeze

    before = rw.attribution_graph(demo, prompt, transcoders, max_feature_nodes=5, progress=False)

    def interrupted(self, x, like):
        raise KeyboardInterrupt

    monkeypatch.setattr(freeze._FrozenCall, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rw.attribution_graph(demo, prompt, transcoders, progress=False)
    monkeypatch.undo()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in demo.hf.modules())
    after = rw.attribution_graph(demo, prompt, transcoders, max_feature_nodes=5, progress=False)
    assert torch.equal(before.adjacency, after.adjacency)


def test_the_shipped_demo_transcoders_show_the_induction_copy(demo):
    """With ``rw.demo.transcoders()`` (JumpReLU, 512 features a layer) on repeated sequences the strongest token
    edge into the top logit comes from the earlier occurrence of the predicted word, in each of 4 prompts (the logit
    rows are computed before any feature's, so a few feature nodes are enough to read them)."""
    transcoders = rw.demo.transcoders()
    for example in rw.demo.tasks.dataset("induction", 4):
        graph = rw.attribution_graph(demo, example.text, transcoders, max_feature_nodes=8, progress=False)
        predicted = demo.to_str_tokens([int(graph.logit_ids[0])])[0]
        first = graph.n_features + graph.n_layers * graph.n_pos
        token_edges = graph.adjacency[_logit_rows(graph)][0, first : first + graph.n_pos]
        strongest = int(token_edges.abs().argmax())
        assert predicted == example.target and graph.tokens[strongest] == predicted, example.text
        assert strongest < graph.n_pos - 1 and float(token_edges[strongest]) > 0
