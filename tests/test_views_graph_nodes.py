"""The graph view beyond one click: a feature node's top contexts (checked against a brute-force scan of the same
texts through the transcoder's encoder), the logit picker, supernodes (the group's predicted effect is the sum of
its edges and the replacement model's joint ablation; its measured effect equals the Steers applied by hand), named
groups, and the link from a node to the shared token and layer."""

from __future__ import annotations

import pytest
import torch
from test_views_graph import get

import repwidget as rw
from repwidget.units import TranscoderFeature

TEXT = "the cat sat . the cat"
#: texts of words the demo model knows
WORDS = [
    "when mary and john went to the store , john gave a drink to mary",
    "the cat . the cat . the",
    "when tom and anna went to the park , anna gave a book to",
    "the dog and the cat went to the store",
    "john gave a drink to the cat . the dog",
    "when anna went to the park , tom gave a book to anna",
]


@pytest.fixture(scope="module")
def transcoders():
    return rw.demo.transcoders()


@pytest.fixture(scope="module")
def explored(demo, transcoders):
    ex = rw.explore(demo, TEXT, transcoders=transcoders)
    graph = rw.attribution_graph(demo, ex.session.run.token_ids, transcoders, progress=False)
    return ex, graph


def demeaned(logits: torch.Tensor, token: int) -> float:
    logits = logits.detach().float()
    return float(logits[token] - logits.mean())


def test_a_transcoder_feature_is_a_unit_read_through_the_encoder(demo, transcoders, tmp_path):
    texts = WORDS[:2]
    unit = TranscoderFeature(transcoders, 1, 7)
    assert unit.hook() == "blocks.1.mlp.hook_in" and rw.units.as_unit(("transcoder_feature", transcoders, 1, 7)) == unit
    reader = rw.units.Reader(demo, [unit, rw.units.Neuron(1, 3), TranscoderFeature(transcoders, 1, 9)])
    for text in texts:
        run = demo.run(text, capture=["blocks.1.mlp.hook_in", "blocks.1.mlp.hook_post"])
        values = reader.values({h: run[h] for h in reader.hooks})
        encoded = transcoders[1].encode(run["blocks.1.mlp.hook_in"].float())
        torch.testing.assert_close(values[:, 0], encoded[:, 7], rtol=0, atol=0)
        torch.testing.assert_close(values[:, 2], encoded[:, 9], rtol=0, atol=0)
        torch.testing.assert_close(values[:, 1], run["blocks.1.mlp.hook_post"][:, 3].float())
    with pytest.raises(ValueError, match=r"index must be an int in 0\.\.511"):
        rw.units.Reader(demo, [TranscoderFeature(transcoders, 1, 512)])
    # harvested and saved like any unit; loaded back as its spec (the transcoders are not saved)
    units = rw.units.transcoder_features(transcoders, 1, [7, 9])
    found = rw.top_examples(demo, texts, units, k=2, progress=False)
    loaded = rw.TopExamples.load(found.save(tmp_path / "top"))
    assert loaded.labels == found.labels == ["transcoder feature 1.7", "transcoder feature 1.9"]
    assert loaded.examples(units[1].spec()) == found.examples(units[1])


def test_a_feature_nodes_contexts_equal_a_brute_force_scan_of_the_texts(demo, transcoders, explored):
    ex, graph = explored
    node = graph.top_nodes(1)[0]
    shipped = get(ex.session, what="graph_examples", node=node.index)  # no texts=: the demo's reference texts
    assert shipped["source"] == "the model's reference texts" and len(shipped["tokens"]) == 5
    own = rw.explore(demo, TEXT, transcoders=transcoders, texts=WORDS)
    data = get(own.session, what="graph_examples", node=node.index)
    assert data["source"] == "texts=" and len(data["tokens"]) == 5
    # brute force: each text's peak (first position of its largest value, <bos> left out), best first
    peaks = []
    for t, ids in enumerate(demo.to_ids(text) for text in WORDS):
        run = demo.run(ids, capture=[f"blocks.{node.layer}.mlp.hook_in"])
        acts = transcoders[node.layer].encode(run[f"blocks.{node.layer}.mlp.hook_in"].float())[:, node.feature]
        position = 1 + int(acts[1:].argmax())
        peaks.append((-float(acts[position]), t, position, demo.to_str_tokens(ids)[position]))
    best = sorted(peaks)[:5]
    assert data["texts"] == [t for _, t, _, _ in best]
    flat = iter(data["values"].tolist())
    for tokens, peak, (value, _, _, word) in zip(data["tokens"], data["peaks"], best, strict=True):
        values = [next(flat) for _ in tokens]
        assert tokens[peak] == word and values[peak] == pytest.approx(-value, rel=1e-5)
    assert get(ex.session, what="graph_examples", node=graph.n_features)["tokens"] == []  # an error node has none
    loaded = get(rw.explore(demo, TEXT, graph=graph).session, what="graph_examples", node=node.index)
    assert loaded["tokens"] == [] and loaded["missing"] == "transcoders="  # a graph alone: no encoder to read


def test_the_logit_picked_sets_the_target_of_predicted_and_measured(demo, transcoders, explored):
    ex, graph = explored
    assert graph.n_logits >= 2
    node = next(n.index for n in graph.top_nodes(60) if n.layer < 2)  # an early node: paths through later ones
    for logit in range(2):
        data = get(ex.session, what="graph_node", node=node, logit=logit)
        assert data["predicted"] == pytest.approx(graph.ablation_effect(node, logit)["predicted"], abs=1e-6)
        assert data["predicted_total"] == pytest.approx(linearised(graph, transcoders, [node], logit), abs=1e-4)
        assert data["target_token"] == demo.to_str_tokens([int(graph.logit_ids[logit])])[0]
    ex.select(graph_logit=1)
    assert ex.selection["graph_logit"] == 1
    with pytest.raises(ValueError, match="graph_logit"):
        ex.select(graph_logit=graph.n_logits)
    ex.select(graph_logit=0)


def linearised(graph, transcoders, nodes: list[int], logit: int) -> float:
    """The demeaned logit's change in the replacement model when ``nodes`` are zeroed and every other feature node
    is set to its pre-activation in the pass before, repeated once per layer (and one more), error nodes frozen."""
    r = graph._replacement
    values = r.activations.clone()
    values[graph.selected_features[nodes]] = 0
    free = torch.tensor([int(i) for k, i in enumerate(graph.selected_features) if k not in nodes])
    layer, pos, feature = r.features[free].T
    token = int(graph.logit_ids[logit])
    with torch.no_grad():
        for _ in range(graph.n_layers + 1):
            x_in = r.run(values).x_in
            pre = torch.stack([transcoders[k].pre(x_in[k].float()) for k in range(graph.n_layers)])
            values[free] = pre[layer, pos, feature]
        out, clean = r.logits_of(r.run(values))[-1].float(), r.clean_logits()[-1].float()
    return demeaned(out, token) - demeaned(clean, token)


def test_a_group_is_ablated_together_and_its_effect_equals_the_steers_by_hand(demo, transcoders, explored):
    ex, graph = explored
    session = ex.session
    early = [n.index for n in graph.top_nodes(60) if n.layer < 2][:2]
    nodes = [*early, graph.top_nodes(1)[0].index]  # two early nodes and the top (late) one
    logit = 1
    before = get(session, what="graph_group", nodes=nodes, logit=logit)
    row = graph.n_features + (graph.n_layers + 1) * graph.n_pos + logit
    assert before["predicted"] == pytest.approx(-float(graph.adjacency[row, nodes].sum()), abs=1e-6)
    assert before["replacement"] == pytest.approx(before["predicted"], abs=1e-4)  # linear when all else is frozen
    assert before["ablated"] is False
    # through every path: the replacement model with the other nodes' activations following their pre-activations
    # (read by the encoders from its MLP inputs, the active set kept), passes repeated until nothing changes
    assert before["predicted_total"] == pytest.approx(linearised(graph, transcoders, nodes, logit), abs=1e-4)
    assert abs(before["predicted_total"] - before["predicted"]) > 0.05  # the early nodes act through later ones
    (applied, _), *_ = session.handle({"type": "graph_ablate_group", "id": "c", "view": "v", "seq": 1, "nodes": nodes})
    assert applied["type"] == "applied" and session.select_after == {"graph_group": nodes}
    assert len(session.interventions) == 3 and all(isinstance(s, rw.Steer) for s in session.interventions)
    after = get(session, what="graph_group", nodes=nodes, logit=logit)
    # by hand: each feature's write (activation x decoder row) subtracted after its block at its position
    r = graph._replacement_model(demo, transcoders)
    steers = []
    for node in nodes:
        i = int(graph.selected_features[node])
        layer, pos, _ = graph.active_features[i].tolist()
        write = r.decoder_rows(torch.tensor([i]))[0] * r.activations[i]
        steers.append(rw.Steer(layer=layer, vector=write.tolist(), scale=-1.0, positions=(pos,)))
    token = int(graph.logit_ids[logit])
    by_hand = demeaned(demo.run(TEXT, steers).logits_at(-1), token) - demeaned(demo.run(TEXT).logits_at(-1), token)
    assert after["ablated"] is True and after["alone"] is True
    assert after["measured"] == pytest.approx(by_hand, abs=1e-5)
    # the same command again removes all three; one already applied is kept once
    session.handle({"type": "graph_ablate_group", "id": "c", "view": "v", "seq": 2, "nodes": nodes})
    assert session.interventions == ()
    session.handle({"type": "graph_ablate", "id": "c", "view": "v", "seq": 3, "node": nodes[0]})
    session.handle({"type": "graph_ablate_group", "id": "c", "view": "v", "seq": 4, "nodes": nodes})
    assert len(session.interventions) == 3
    ex.interventions = []


def test_groups_are_named_in_the_selection_and_bad_ones_refused_in_one_line(explored):
    ex, graph = explored
    nodes = [n.index for n in graph.top_nodes(2)]
    ex.select(graph_group=nodes, graph_groups={"pair": nodes})
    assert ex.selection["graph_group"] == nodes and ex.selection["graph_groups"] == {"pair": nodes}
    for bad, message in (
        ({"graph_group": [nodes[0], nodes[0]]}, "lists a node twice"),
        ({"graph_group": [graph.n_features]}, "graph_group"),
        ({"graph_group": "all"}, "list of at most 64 feature nodes"),
        ({"graph_groups": {"": nodes}}, "1..40 characters"),
    ):
        with pytest.raises(ValueError, match=message):
            ex.select(**bad)
    (error, _), *_ = ex.session.handle({"type": "graph_ablate_group", "id": "c", "view": "v", "seq": 9, "nodes": []})
    assert error["type"] == "error" and "ctrl+click" in error["message"]
    ex.select(graph_group=[], graph_groups={})


def test_selecting_a_node_selects_its_position_and_layer(demo, explored):
    ex, graph = explored
    offset = len(graph.ids) - len(ex.session.run.token_ids)
    feature = next(n for n in graph.top_nodes(20) if n.position - offset != ex.selection["token"] or n.layer != 0)
    ex.select(graph_node=feature.index)
    assert (ex.selection["token"], ex.selection["layer"]) == (feature.position - offset, feature.layer)
    ex.select(token=0)  # the tokens view moves on: the node stays selected, the token is the user's
    assert ex.selection["token"] == 0 and ex.selection["graph_node"] == feature.index
    error = graph.n_features + 2 * graph.n_pos + 1  # layer 2, position 1
    ex.select(graph_node=error)
    assert (ex.selection["token"], ex.selection["layer"]) == (1 - offset, 2)
    ex.select(graph_node=None)
