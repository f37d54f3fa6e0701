"""Attribution graphs with a cross-layer transcoder (a layer's features write to its own and every later MLP output):
the replacement model against the plain HF forward, its MLP writes against ``CrossLayerTranscoder.decode_to``,
completeness of every target's inputs, and faithfulness of the top 20 features against ablations in the replacement
model, with the real model's effect reported beside.

The cross-layer transcoder is fitted here in a fraction of a second: random ReLU encoders per layer, and each
layer's decoders (from the features of that layer and every earlier one) by least squares on the demo model's MLP
outputs, so later layers really are written by earlier layers' features."""

from __future__ import annotations

import pytest
import torch

import repwidget as rw
from repwidget.graphs import ReplacementModel


def fit_cross_layer(model, d_tc: int = 32) -> rw.CrossLayerTranscoder:
    texts = [e.text for task in ("induction", "ioi", "facts") for e in rw.demo.tasks.dataset(task, 12)]
    n = model.n_layers
    names = [f"blocks.{layer}.{h}" for layer in range(n) for h in ("mlp.hook_in", "hook_mlp_out")]
    caps = model.capture_batch(texts, names, progress=False)
    xs = [torch.cat([c[f"blocks.{layer}.mlp.hook_in"] for c in caps]).float() for layer in range(n)]
    ys = [torch.cat([c[f"blocks.{layer}.hook_mlp_out"] for c in caps]).float() for layer in range(n)]
    g = torch.Generator().manual_seed(0)
    w_enc = torch.randn(n, d_tc, model.d_model, generator=g) / model.d_model**0.5
    pres = [xs[layer] @ w_enc[layer].T for layer in range(n)]
    b_enc = torch.stack([-p.mean(0) - 0.7 * p.std(0) for p in pres])
    acts = [torch.relu(p + b) for p, b in zip(pres, b_enc, strict=True)]
    w_dec = [torch.zeros(d_tc, n - s, model.d_model) for s in range(n)]
    b_dec = torch.zeros(n, model.d_model)
    for t in range(n):  # layer t's output from the features of layers 0..t and a bias
        sol = torch.linalg.lstsq(torch.cat([*acts[: t + 1], torch.ones(len(ys[t]), 1)], 1), ys[t]).solution
        for s in range(t + 1):
            w_dec[s][:, t - s] = sol[s * d_tc : (s + 1) * d_tc]
        b_dec[t] = sol[-1]
    return rw.CrossLayerTranscoder(w_enc, b_enc, w_dec, b_dec, scan="least-squares-clt")


@pytest.fixture(scope="module")
def clt(demo):
    return fit_cross_layer(demo)


@pytest.fixture(scope="module")
def prompt():
    return rw.demo.tasks.dataset("induction", 3)[1].text


@pytest.fixture(scope="module")
def graph(demo, prompt, clt):
    return rw.attribution_graph(demo, prompt, clt, batch_size=64, progress=False)


def _logit_rows(graph) -> slice:
    return slice(graph.n_features + (graph.n_layers + 1) * graph.n_pos, None)


def test_the_cross_layer_replacement_model_gives_the_real_logits_and_decode_to(demo, prompt, clt):
    r = ReplacementModel(demo, prompt, clt)
    assert r.cross_layer and r.zeroed == 1 and not bool((r.features[:, 1] == 0).any())
    with torch.no_grad():
        plain = demo.hf(torch.tensor([r.ids])).logits[0].float()
        result = r.run()
        replaced = r.logits_of(result).detach()
    assert float((replaced - plain).abs().max()) <= 1e-5 * float(plain.abs().max())
    # the replacement's MLP writes against the transcoder's own decode_to, from dense activations
    dense = [clt.encode(layer, x.detach()) for layer, x in enumerate(result.x_in)]
    for acts in dense:
        acts[:1] = 0  # position 0 (BOS) is left to the bias, as circuit-tracer
    for layer in range(clt.n_layers):
        mine = r.mlp_write(layer, r.activations, result.x_in[layer].detach())
        theirs = clt.decode_to(layer, dense, result.x_in[layer].detach())
        assert torch.allclose(mine, theirs, atol=1e-5), layer
    # a later layer is written by earlier layers' features: zeroing layer 0's changes layer 3's write
    values = r.activations.clone()
    values[r.features[:, 0] == 0] = 0
    x3 = result.x_in[3].detach()
    assert float((r.mlp_write(3, values, x3) - r.mlp_write(3, r.activations, x3)).abs().max()) > 1e-3
    writes = r.feature_writes(int((r.features[:, 0] == 1).nonzero()[0]))
    assert [layer for layer, _ in writes] == [1, 2, 3]


def test_cross_layer_graph_is_complete(graph):
    """Each logit node's edges plus its bias make its demeaned logit; each feature's edges plus what no node owns
    make its pre-activation read from the real run (relative error < 1e-4)."""
    total = graph.adjacency[_logit_rows(graph)].sum(1) + graph.logit_bias
    values = graph.logit_values
    assert float(((total - values).abs() / values.abs().clamp(min=1e-3)).max()) < 1e-4
    r = graph._replacement
    with torch.no_grad():
        clean = r.run().x_in
        zero = r.run(torch.zeros_like(r.activations), torch.zeros_like(r.errors), torch.zeros_like(r.tokens)).x_in
    late = (graph.active_features[graph.selected_features, 0] >= 2).nonzero(as_tuple=True)[0]
    assert len(late) > 10
    for node in late[:: max(1, len(late) // 20)].tolist():
        layer, pos, feat = graph.active_features[int(graph.selected_features[node])].tolist()
        w = r.transcoders.W_enc[layer, feat]
        pre, bias = float(w @ clean[layer][pos]), float(w @ zero[layer][pos])
        assert abs(float(graph.adjacency[node].sum()) + bias - pre) <= 1e-4 * max(1.0, abs(pre))


def test_cross_layer_top_twenty_ablations_match_the_graph(graph):
    """Faithfulness: zeroing each of the 20 most influential features (every one of its writes, to its own and
    every later layer) in the replacement model moves the top logit by minus its edge (< 1e-3 relative); the real
    model's effect (each write subtracted after its block) is finite and reported."""
    top = graph.top_nodes(20)
    assert len(top) == 20
    assert any(n.layer < graph.n_layers - 1 for n in top)  # some top features write to more than one layer
    real = []
    for node in top:
        effect = graph.ablation_effect(node.index, logit=0)
        assert abs(effect["predicted"] - effect["replacement"]) <= 1e-3 * max(abs(effect["predicted"]), 1e-2), node
        real.append(effect["real"])
    assert all(map(torch.isfinite, torch.tensor(real))) and any(abs(x) > 1e-4 for x in real)


def test_a_cross_layer_transcoder_for_another_model_is_refused(demo):
    d = demo.d_model
    other = rw.CrossLayerTranscoder(
        torch.zeros(2, 4, d), torch.zeros(2, 4), [torch.zeros(4, 2 - s, d) for s in range(2)], torch.zeros(2, d)
    )
    with pytest.raises(ValueError, match="2 layers"):
        rw.attribution_graph(demo, "a b c", other, progress=False)


def test_qk_attribution_with_a_cross_layer_transcoder(demo, prompt, clt):
    """A head of layer 2 (its input written by layer 0's features at MLP outputs 0 and 1): the nodes' backward-pass
    sums equal the forward totals and the split makes the score."""
    qk = rw.graphs.qk_attribution(demo, prompt, clt, 2, 1, top=5, keys=3, progress=False)
    for i, key in enumerate(qk.keys):
        assert float(qk.query_contributions[i].sum()) == pytest.approx(key.query_total, rel=1e-4, abs=1e-5)
        assert float(qk.key_contributions[i].sum()) == pytest.approx(key.key_total, rel=1e-4, abs=1e-5)
        split = key.query_total + key.key_total + key.bias - key.cross
        assert split == pytest.approx(key.score, rel=1e-4, abs=1e-5)
    assert {n[1] for n in qk.nodes if n[0] == "feature"} == {0, 1}


def test_the_estimate_counts_every_cross_layer_write(demo, prompt, clt, graph, monkeypatch):
    """A layer-l feature keeps n_layers - l writes for the backward passes; the estimate counts them, and a budget
    between the per-layer count and the cross-layer one refuses the graph."""
    from repwidget.graphs import GraphBudgetError, estimate_bytes

    layers = graph.active_features[:, 0]
    n_writes = int((graph.n_layers - layers).sum())
    assert n_writes > len(layers)
    args = (graph.n_layers, graph.n_pos, demo.d_model, graph.n_features, graph.n_logits, 64)
    low, high = estimate_bytes(*args, len(layers)), estimate_bytes(*args, n_writes)
    assert high - low == (n_writes - len(layers)) * demo.d_model * 4
    monkeypatch.setattr(rw.options, "max_capture_bytes", (low + high) // 2, raising=False)
    with pytest.raises(GraphBudgetError, match="max_capture_bytes"):
        rw.attribution_graph(demo, prompt, clt, batch_size=64, progress=False)


def test_the_explorers_shift_click_subtracts_every_write_of_a_cross_layer_feature(demo, prompt, clt, graph):
    ex = rw.explore(demo, prompt, graph=graph, transcoders=clt)
    session = ex.session
    node = next(n.index for n in graph.top_nodes(40) if n.kind == "feature" and n.layer < demo.n_layers - 1)
    layer = int(graph.active_features[int(graph.selected_features[node]), 0])
    command = {"type": "graph_ablate", "id": "c-1", "view": "v", "seq": 1, "node": node}
    (applied, _), *_ = session.handle(command)
    assert applied["type"] == "applied", applied
    assert [s.layer for s in session.interventions] == list(range(layer, demo.n_layers))  # its own and every later
    (answer, _), *_ = session.handle({"type": "get", "id": "g", "what": "graph_node", "node": node})
    assert answer["data"]["ablated"] is True
    assert answer["data"]["measured"] == pytest.approx(graph.ablation_effect(node)["real"], abs=1e-5)
    session.handle({**command, "id": "c-2", "seq": 2})  # the same click removes them all
    assert session.interventions == ()
