"""The explorer's attribution graph view (kernel side): the graph it sends is the pruned ``rw.attribution_graph``
computed on its own, a shift+click command ablates the feature in the real model through the explorer's
interventions, and the effect it answers equals ``Graph.ablation_effect(...)["real"]``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.views import codec

TEXT = "the cat sat . the cat"


@pytest.fixture(scope="module")
def transcoders():
    return rw.demo.transcoders()


def get(session, **request):
    """A request's reply data, tensors decoded from their binary buffers."""
    (content, buffers), *_ = session.handle({"type": "get", "id": "g-1", **request})
    assert content["type"] == "reply", content
    data = dict(content["data"])
    for key, value in data.items():
        if isinstance(value, dict) and "buffer" in value:
            data[key] = codec.decode({**value, "buffer": buffers[value["buffer"]]})
    return data


def test_the_graph_sent_is_the_pruned_graph_and_its_strongest_edges(demo, transcoders):
    ex = rw.explore(demo, TEXT, transcoders=transcoders)
    assert "graph" in ex.views and ex.selection["graph_node"] is None
    data = get(ex.session, what="graph")
    reference = rw.attribution_graph(demo, ex.session.run.token_ids, transcoders, progress=False)
    pruned = reference.prune()
    kept = pruned.node_mask.nonzero().flatten().tolist()
    assert data["nodes"][:, 0].tolist() == kept
    kinds = ("feature", "error", "token", "logit")
    for row in data["nodes"][:: max(1, len(kept) // 25)]:
        node = reference.node(int(row[0]))
        assert (kinds[row[1]], *row[2:].tolist()) == (node.kind, node.layer, node.position, node.feature)
    assert data["tokens"] == reference.tokens and data["offset"] == len(reference.ids) - len(ex.session.run.token_ids)
    # the edges: the 300 largest |weights| among the pruned edges, checked against a loop over the mask
    everything = [(abs(float(reference.adjacency[t, s])), s, t) for t, s in pruned.edge_mask.nonzero().tolist()]
    everything = [e for e in everything if e[0] > 0]
    strongest = sorted(everything, reverse=True)[:300]
    sent = set(zip(data["edge_source"].tolist(), data["edge_target"].tolist(), strict=True))
    assert len(sent) == min(300, len(everything))
    assert {(s, t) for _, s, t in strongest[:-1]} <= sent  # (a tie at the cut may pick either)
    s, t = data["edge_source"].astype(np.int64), data["edge_target"].astype(np.int64)
    np.testing.assert_allclose(data["edge_weight"], reference.adjacency[t, s].numpy(), rtol=1e-6)
    assert data["logit_tokens"] == demo.to_str_tokens(reference.logit_ids.tolist())


def test_shift_click_ablates_the_feature_in_the_real_model_and_answers_the_measured_effect(demo, transcoders):
    ex = rw.explore(demo, TEXT, transcoders=transcoders)
    session = ex.session
    reference = rw.attribution_graph(demo, session.run.token_ids, transcoders, progress=False)
    node = reference.top_nodes(1)[0].index
    ex.select(graph_node=node)
    before = get(session, what="graph_node", node=node)
    assert before["kind"] == "feature" and before["ablated"] is False and len(before["top_tokens"]) == 5
    expected = reference.ablation_effect(node)
    assert before["predicted"] == pytest.approx(expected["predicted"], abs=1e-6)

    (applied, _), *_ = session.handle({"type": "graph_ablate", "id": "c-1", "view": "v", "seq": 1, "node": node})
    assert applied["type"] == "applied" and session.select_after == {"graph_node": node}
    (steer,) = session.interventions
    assert isinstance(steer, rw.Steer) and steer.scale == -1.0 and steer.layer == before["layer"]
    assert session.listed()[0]["vector"] is None  # the write stays in the kernel
    after = get(session, what="graph_node", node=node)
    assert after["ablated"] is True and after["alone"] is True
    assert after["measured"] == pytest.approx(expected["real"], abs=1e-5)
    # the same click again restores the model's run
    session.handle({"type": "graph_ablate", "id": "c-2", "view": "v", "seq": 2, "node": node})
    assert session.interventions == ()
    assert torch.equal(session.run.logits_at(-1), session.clean_run.logits_at(-1))


def test_the_view_refuses_what_does_not_fit_in_one_line(demo, transcoders):
    assert "graph" not in rw.explore(demo, TEXT).views
    with pytest.raises(TypeError, match=r"graph= must be an rw\.Graph"):
        rw.explore(demo, TEXT, graph="graph.json")
    other = rw.attribution_graph(demo, "the cat . the", transcoders, progress=False)
    with pytest.raises(ValueError, match="graph of another prompt"):
        rw.explore(demo, TEXT, graph=other)
    ex = rw.explore(demo, "the cat . the", graph=other)  # a precomputed graph is shown as it is
    assert get(ex.session, what="graph")["nodes"][:, 0].tolist() == other.prune().node_mask.nonzero().flatten().tolist()
    with pytest.raises(ValueError, match="graph_node"):
        ex.select(graph_node=10**6)
    (error, _), *_ = ex.session.handle(
        {"type": "graph_ablate", "id": "c", "view": "v", "seq": 1, "node": other.n_features}
    )
    assert error["type"] == "error" and "not a feature node" in error["message"]
    (error, _), *_ = rw.explore(demo, TEXT).session.handle({"type": "get", "id": "g", "what": "graph"})
    assert error["type"] == "error" and "pass transcoders=ts" in error["message"]
