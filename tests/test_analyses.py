"""Head scores, losses and charts, checked against direct loop computations."""

from __future__ import annotations

import torch

import repwidget as rw

from conftest import VOCAB


def _loop_scores(run, n_layers, n_heads):
    ids = run.token_ids
    n = len(ids)
    out = {k: torch.zeros(n_layers, n_heads) for k in ("previous_token", "induction", "duplicate_token", "first_token")}
    for layer in range(n_layers):
        p = run[f"blocks.{layer}.attn.hook_pattern"]
        for h in range(n_heads):
            out["previous_token"][layer, h] = sum(p[h, q, q - 1] for q in range(1, n)) / (n - 1)
            out["first_token"][layer, h] = sum(p[h, q, 0] for q in range(n)) / n
            dup, ind = [], []
            for q in range(n):
                earlier = [k for k in range(q) if ids[k] == ids[q]]
                if earlier:
                    dup.append(sum(p[h, q, k] for k in earlier))
                    targets = [k + 1 for k in earlier if k + 1 < q]
                    ind.append(sum(p[h, q, k] for k in targets))
            out["duplicate_token"][layer, h] = sum(dup) / len(dup)
            out["induction"][layer, h] = sum(ind) / len(ind)
    return out


def test_head_scores_match_a_loop(hf_models):
    model = rw.load(hf_models["gpt2"])
    seq = torch.randperm(VOCAB - 2)[:7].add(2).tolist()
    run = model.run(seq + seq + seq[:3])
    got = rw.analyses.head_scores(run)
    expected = _loop_scores(run, model.n_layers, model.n_heads)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=0, msg=key)


def test_head_scores_without_repeats_are_zero(hf_models):
    run = rw.load(hf_models["gpt2"]).run([2, 3, 4, 5])
    scores = rw.analyses.head_scores(run)
    assert torch.all(scores["induction"] == 0) and torch.all(scores["duplicate_token"] == 0)


def test_token_losses_equal_cross_entropy(hf_models):
    hf = hf_models["llama"]
    x = [3, 9, 4, 7, 5]
    losses = rw.analyses.token_losses(rw.load(hf).run(x))
    expected = hf(torch.tensor([x]), labels=torch.tensor([x])).loss
    torch.testing.assert_close(losses.mean(), expected, atol=1e-5, rtol=0)


def test_charts_hold_the_numbers(hf_models):
    model = rw.load(hf_models["gpt2"])
    run = model.run([2, 3, 4])
    scores = torch.arange(16.0).reshape(4, 4) / 16
    grid = rw.charts.head_grid(scores, "induction").to_dict()
    assert {"layer": 3, "head": 1, "score": 13 / 16} in grid["data"]["values"]
    spec = rw.charts.pattern(run, 1, 2).to_dict()
    values = spec["data"]["values"]
    p = run["blocks.1.attn.hook_pattern"][2]
    assert len(values) == 9
    assert {"query": "2: 4", "key": "1: 3", "p": float(p[2, 1])} in values


def test_top_tokens_are_the_softmax_top_k(hf_models, tokenizer):
    model = rw.load(hf_models["gpt2"], tokenizer=tokenizer)
    run = model.run("w1 w2 w3")
    probs = run.logits[1].softmax(-1)
    top = rw.analyses.top_tokens(run, position=1, k=3)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    expected = probs.topk(3)
    assert [t for t, _ in top] == [tokenizer.decode([i]) for i in expected.indices.tolist()]
    torch.testing.assert_close(torch.tensor([p for _, p in top]), expected.values)
