"""QK attribution (``rw.graphs.qk_attribution``): the scores against a plain HF computation of GPT-2's query and key,
the completeness of the bilinear split (node sums from backward passes against forward passes), the induction head's
keys made by the previous-token head's path on the demo model, the model left unchanged, bad input."""

from __future__ import annotations

import copy

import pytest
import torch

import repwidget as rw
from repwidget.demo.exercises import repeated_tokens

INDUCTION, PREVIOUS = (1, 0), (0, 0)  # the demo model's heads (head_scores: 0.78 induction, 0.53 previous-token)


@pytest.fixture(scope="module")
def demo():
    return rw.demo_model()


@pytest.fixture(scope="module")
def transcoders():
    return rw.demo.transcoders()


def reference_scores(model, ids: list[int], layer: int, head: int, query: int) -> torch.Tensor:
    """``[query + 1]`` pre-softmax scores of GPT-2's head from the plain HF forward: ln_1, c_attn, q . k / sqrt(d)."""
    hf = copy.deepcopy(model.hf)  # output_hidden_states leaves transformers' capturing hooks on the model it runs
    block = hf.transformer.h[layer]
    with torch.no_grad():
        hidden = hf(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0]
        q, k, _ = block.attn.c_attn(block.ln_1(hidden)).split(model.d_model, dim=-1)
    d = model.arch.d_head
    q, k = q[:, head * d : (head + 1) * d], k[:, head * d : (head + 1) * d]
    return (k[: query + 1] @ q[query]) / d**0.5


def test_contributions_sum_to_the_real_scores(demo, transcoders):
    text = repeated_tokens(3, 6)
    qk = rw.graphs.qk_attribution(demo, text, transcoders, *INDUCTION, top=5, keys=4, progress=False)
    reference = reference_scores(demo, qk.token_ids, *INDUCTION, qk.query)
    assert qk.query == len(qk.token_ids) - 1 and len(qk.keys) == 4
    probs = torch.softmax(reference, -1)
    assert [k.position for k in qk.keys] == probs.topk(4).indices.tolist()
    for i, key in enumerate(qk.keys):
        score = float(reference[key.position])
        assert key.score == pytest.approx(score, rel=1e-4, abs=1e-5)
        assert key.probability == pytest.approx(float(probs[key.position]), rel=1e-4)
        # the backward passes' node sums against the forward passes' totals, then the whole split against the score
        q_sum, k_sum = float(qk.query_contributions[i].sum()), float(qk.key_contributions[i].sum())
        assert q_sum == pytest.approx(key.query_total, rel=1e-4, abs=1e-5)
        assert k_sum == pytest.approx(key.key_total, rel=1e-4, abs=1e-5)
        assert abs(q_sum + k_sum + key.bias - key.cross - score) / abs(score) < 1e-4
        assert len(key.query_side) == 5 and len(key.key_side) == 5
        assert abs(key.query_side[0].contribution) == pytest.approx(float(qk.query_contributions[i].abs().max()))
        assert abs(key.key_side[0].contribution) == pytest.approx(float(qk.key_contributions[i].abs().max()))
        # causality: only nodes at the key's position or before write to the key; at the query's or before, the query
        positions = torch.tensor([n[2] for n in qk.nodes])
        assert not qk.key_contributions[i][positions > key.position].any()
    assert not any(kind == "feature" and layer >= INDUCTION[0] for kind, layer, *_ in qk.nodes)


def test_the_induction_heads_keys_come_through_the_previous_token_head(demo, transcoders):
    """On repeated sequences the induction head at the second copy of a word attends to the word after its first
    copy; that key's score is made on the key side by the earlier copy's token embedding, moved one position on by
    the previous-token head (its output at the key position is the largest head contribution to the key)."""
    for seed in range(2):
        text = repeated_tokens(seed, 8)
        qk = rw.graphs.qk_attribution(demo, text, transcoders, *INDUCTION, top=3, keys=1, progress=False)
        key = qk.keys[0]
        earlier = qk.token_ids.index(qk.token_ids[qk.query])
        assert key.position == earlier + 1 and key.probability > 0.5
        assert ("token", -1, earlier, qk.token_ids[qk.query]) in [n[:4] for n in key.key_side]
        assert int(key.key_heads[0].argmax()) == PREVIOUS[1] and float(key.key_heads[0, PREVIOUS[1]]) > 1.0
        assert float(key.key_heads[0, PREVIOUS[1]]) > 0.2 * key.key_total


def test_the_model_is_left_unchanged_and_bad_input_is_refused(demo, transcoders):
    text = repeated_tokens(1, 4)
    hooks = {(n, *m._forward_hooks, "|", *m._forward_pre_hooks) for n, m in demo.hf.named_modules()}
    before = {k: v.clone() for k, v in demo.hf.state_dict().items()}
    logits = demo.run(text).logits
    with pytest.raises(ValueError, match="layer must be"):
        rw.graphs.qk_attribution(demo, text, transcoders, 4, 0, progress=False)
    with pytest.raises(ValueError, match="head must be"):
        rw.graphs.qk_attribution(demo, text, transcoders, 1, 7, progress=False)
    with pytest.raises(ValueError, match="key positions"):
        rw.graphs.qk_attribution(demo, text, transcoders, 1, 0, query=2, keys=[3], progress=False)
    with pytest.raises(ValueError, match="query must be"):
        rw.graphs.qk_attribution(demo, text, transcoders, 1, 0, query=99, progress=False)
    qk = rw.graphs.qk_attribution(demo, text, transcoders, 1, 0, query=5, keys=[0, 5], progress=False)
    assert [k.position for k in qk.keys] == [0, 5] and "head 1.0" in repr(qk)
    assert {(n, *m._forward_hooks, "|", *m._forward_pre_hooks) for n, m in demo.hf.named_modules()} == hooks
    assert all(torch.equal(v, before[k]) for k, v in demo.hf.state_dict().items())
    assert torch.equal(demo.run(text).logits, logits)
