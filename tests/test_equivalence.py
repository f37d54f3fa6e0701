"""With no interventions, repwidget's numbers equal plain transformers' (checked against the library)."""

from __future__ import annotations

import torch

import repwidget as rw

from conftest import CAUSAL, eager_copy, ids

ATOL = 1e-5


def test_logits_equal_plain_forward(hf_models, causal_name):
    hf = hf_models[causal_name]
    x = ids(12)
    run = rw.load(hf).run(x)
    expected = hf(torch.tensor([x])).logits[0]
    torch.testing.assert_close(run.logits, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(run.logits_at([3, 11]), expected[[3, 11]], atol=ATOL, rtol=0)


def test_bert_has_no_logits_but_runs(hf_models):
    model = rw.load(hf_models["bert"])
    run = model.run(ids(10))
    assert run.logits is None and not model.has_unembed
    assert run["blocks.3.attn.hook_pattern"].shape == (4, 10, 10)


def test_resid_equals_output_hidden_states(hf_models, arch_name):
    hf = hf_models[arch_name]
    model = rw.load(hf)
    x = ids(12)
    run = model.run(x)
    hidden = hf(torch.tensor([x]), output_hidden_states=True).hidden_states
    n = model.n_layers
    torch.testing.assert_close(run["blocks.0.hook_resid_pre"], hidden[0][0], atol=ATOL, rtol=0)
    for layer in range(n - 1):
        torch.testing.assert_close(run[f"blocks.{layer}.hook_resid_post"], hidden[layer + 1][0], atol=ATOL, rtol=0)
        torch.testing.assert_close(run[f"blocks.{layer + 1}.hook_resid_pre"], hidden[layer + 1][0], atol=ATOL, rtol=0)
    last = run[f"blocks.{n - 1}.hook_resid_post"]
    if model.arch.final_norm is not None:  # transformers reports the last layer after the final norm
        last = hf.get_submodule(model.arch.final_norm)(last)
    torch.testing.assert_close(last, hidden[n][0], atol=ATOL, rtol=0)


def test_patterns_equal_eager_output_attentions(hf_models, arch_name):
    hf = hf_models[arch_name]
    x = ids(14)
    run = rw.load(hf).run(x)
    attentions = eager_copy(hf)(torch.tensor([x]), output_attentions=True).attentions
    for layer, expected in enumerate(attentions):
        torch.testing.assert_close(run[f"blocks.{layer}.attn.hook_pattern"], expected[0], atol=ATOL, rtol=0)
    assert hf.config._attn_implementation == "sdpa", "the user's model keeps its attention implementation"


def test_patterns_are_probabilities_and_causal(hf_models, causal_name):
    pattern = rw.load(hf_models[causal_name]).run(ids(9))["blocks.1.attn.hook_pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(4, 9))
    assert torch.all(pattern.triu(1) == 0)


def test_mistral_pattern_respects_sliding_window(hf_models):
    pattern = rw.load(hf_models["mistral"]).run(ids(12))["blocks.0.attn.hook_pattern"]
    window = hf_models["mistral"].config.sliding_window
    assert torch.all(pattern.tril(-window) == 0) and torch.all(pattern.diagonal(-(window - 1), 1, 2) > 0)


def test_zero_ablating_a_head_equals_zeroing_its_slice_by_hand(hf_models, causal_name):
    hf = hf_models[causal_name]
    model = rw.load(hf)
    layer, head, d_head = 2, 1, model.d_head
    x = ids(10)
    o_proj = hf.get_submodule(model.arch.blocks)[layer].get_submodule(model.arch.attn_proj)

    def zero_slice(module, args):
        z = args[0].clone()
        z[..., head * d_head : (head + 1) * d_head] = 0
        return (z,)

    handle = o_proj.register_forward_pre_hook(zero_slice)
    try:
        expected = hf(torch.tensor([x])).logits[0]
    finally:
        handle.remove()
    run = model.run(x, rw.Ablate(layer, head=head), capture="blocks.2.attn.hook_z")
    torch.testing.assert_close(run.logits, expected, atol=ATOL, rtol=0)
    assert torch.all(run["blocks.2.attn.hook_z"][:, head] == 0)
    assert not torch.all(run["blocks.2.attn.hook_z"][:, head - 1] == 0)


def test_hook_z_and_mlp_post_match_an_independent_gpt2_computation(hf_models):
    hf = hf_models["gpt2"]
    x = ids(8)
    run = rw.load(hf).run(x, capture=["blocks.1.*"])
    block = hf.transformer.h[1]
    with torch.no_grad():
        resid = run["blocks.1.hook_resid_pre"]
        q, k, v = block.attn.c_attn(block.ln_1(resid)).split(32, dim=-1)
        heads = [t.view(8, 4, 8).transpose(0, 1) for t in (q, k, v)]
        pattern = run["blocks.1.attn.hook_pattern"]
        z = (pattern @ heads[2]).transpose(0, 1)  # [pos, head, d_head]
        attn_out = block.attn.c_proj(z.reshape(8, 32))
        mid = resid + attn_out
        post = block.mlp.act(block.mlp.c_fc(block.ln_2(mid)))
    torch.testing.assert_close(run["blocks.1.attn.hook_z"], z, atol=ATOL, rtol=0)
    torch.testing.assert_close(run["blocks.1.hook_attn_out"], attn_out, atol=ATOL, rtol=0)
    torch.testing.assert_close(run["blocks.1.mlp.hook_post"], post, atol=ATOL, rtol=0)
    torch.testing.assert_close(run["blocks.1.hook_mlp_out"], block.mlp.c_proj(post), atol=ATOL, rtol=0)


def test_gqa_hook_z_has_every_query_head(hf_models):
    model = rw.load(hf_models["llama"])
    assert (model.n_heads, model.arch.n_kv_heads) == (4, 2)
    run = model.run(ids(6), capture="blocks.*.attn.hook_z")
    assert run["blocks.0.attn.hook_z"].shape == (6, 4, model.d_head)


def test_tokens_from_a_tokenizer(hf_models, tokenizer):
    model = rw.load(hf_models["gpt2"], tokenizer=tokenizer)
    run = model.run("w1 w2 w3 w2")
    assert run.tokens == ["w1", "w2", "w3", "w2"]
    assert run.token_ids == tokenizer("w1 w2 w3 w2")["input_ids"]
    expected = hf_models["gpt2"](torch.tensor([run.token_ids])).logits[0]
    torch.testing.assert_close(run.logits, expected, atol=ATOL, rtol=0)


def test_without_a_tokenizer_tokens_are_ids(hf_models):
    run = rw.load(hf_models["gpt2"]).run(torch.tensor([[5, 6, 7]]))
    assert run.tokens == ["5", "6", "7"] and run.token_ids == [5, 6, 7]


def test_all_causal_architectures_are_covered():
    assert set(CAUSAL) == {"gpt2", "llama", "mistral", "neox"}
