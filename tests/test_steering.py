"""Steering vectors from prompts: contrastive activation addition and function vectors, each against a direct
computation from model.run and the Hugging Face weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import repwidget as rw

from architectures import build, matrix_ids


def test_contrastive_is_the_difference_of_mean_activations(demo):
    positive = ["review : the food was great . verdict :", "review : the staff were lovely . verdict :"]
    negative = ["review : the food was awful . verdict :", "review : it was bad . verdict :", "verdict : bad"]
    steer = rw.steering.contrastive(demo, positive, negative, layer=2)
    hook = "blocks.2.hook_resid_post"
    mean = lambda texts, at: torch.stack([demo.run(t)[hook][at] for t in texts]).mean(0)  # noqa: E731
    torch.testing.assert_close(torch.tensor(steer.vector), mean(positive, -1) - mean(negative, -1), atol=1e-5, rtol=0)
    assert steer.layer == 2 and steer.name == "contrastive (2 vs 3 prompts)"
    whole = rw.steering.contrastive(demo, positive, negative, layer=1, position="mean", scale=2.0)
    hook = "blocks.1.hook_resid_post"
    means = lambda texts: torch.stack([demo.run(t)[hook].mean(0) for t in texts]).mean(0)  # noqa: E731
    torch.testing.assert_close(torch.tensor(whole.vector), means(positive) - means(negative), atol=1e-5, rtol=0)
    assert whole.scale == 2.0
    prompt = "review : the food was great and the staff were lovely . verdict :"
    steered = demo.generate(prompt, rw.Steer(2, steer.vector, scale=-3.0), max_new_tokens=4)
    assert steered.new_text != demo.generate(prompt, max_new_tokens=4).new_text


def _head_outputs_by_hand(hf, name: str, layer: int, z: torch.Tensor) -> torch.Tensor:
    """``[heads, d_model]`` from the Hugging Face weights: each head's slice of the output projection."""
    heads, d_head = z.shape
    if name == "gpt2":
        w = hf.transformer.h[layer].attn.c_proj.weight  # Conv1D: [in, out]
        return torch.stack([z[h] @ w[h * d_head : (h + 1) * d_head] for h in range(heads)])
    w = hf.model.layers[layer].self_attn.o_proj.weight  # Linear: [out, in]
    return torch.stack([w[:, h * d_head : (h + 1) * d_head] @ z[h] for h in range(heads)])


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_a_function_vector_is_the_mean_output_of_the_chosen_heads(name):
    hf = build(name)
    model = rw.Model(hf)
    prompts = [matrix_ids(9, seed=s) for s in range(4)] + [matrix_ids(6, seed=7)]
    heads = [(0, 1), (2, 3), (2, 0)]
    steer = rw.steering.function_vector(model, prompts, heads, layer=3)
    expected = torch.zeros(model.d_model)
    for prompt in prompts:
        run = model.run(prompt, capture="blocks.*.attn.hook_z")
        for layer, head in heads:
            z = run[f"blocks.{layer}.attn.hook_z"][-1]
            expected += _head_outputs_by_hand(hf, name, layer, z)[head] / len(prompts)
    torch.testing.assert_close(torch.tensor(steer.vector), expected, atol=1e-5, rtol=0)
    assert steer.layer == 3 and "3 heads" in steer.name
    base = model.generate(matrix_ids(5), max_new_tokens=8).new_token_ids
    steered = model.generate(matrix_ids(5), rw.Steer(3, steer.vector, scale=20.0), max_new_tokens=8)
    assert steered.new_token_ids != base


def test_clear_errors(demo):
    with pytest.raises(ValueError, match="not the sum of its heads' outputs"):
        rw.steering.function_vector(rw.Model(build("gemma2")), [matrix_ids(5)], [(0, 0)], layer=1)
    for call, message in [
        (lambda: rw.steering.contrastive(demo, ["a"], ["b"], layer=9), r"layer must be an int in 0\.\.3"),
        (lambda: rw.steering.contrastive(demo, "good", ["bad"], layer=1), "prompts must be a non-empty list"),
        (lambda: rw.steering.contrastive(demo, ["good"], ["bad"], 1, position=7), "position 7 is outside"),
        (lambda: rw.steering.function_vector(demo, ["good"], [(0, 9)], 1), r"heads must be \(layer, head\) pairs"),
        (lambda: rw.steering.function_vector(demo, ["good"], [], 1), "at least one"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()


def test_the_readme_steered_generation_example_prints_what_the_readme_says(demo):
    from repwidget.demo.evaluate import prompt as verdict

    reviews = rw.demo.dataset("sentiment", 200)
    bad = [verdict(e, "sentiment") for e in reviews if e.target == "negative"][:20]
    good = [verdict(e, "sentiment") for e in reviews if e.target == "positive"][:20]
    text = "review : the food was great and the staff were lovely . verdict :"
    steers = [(), rw.steering.contrastive(demo, bad, good, 2, scale=0.5), rw.steering.contrastive(demo, bad, good, 2)]
    outputs = [demo.generate(text, ivs, max_new_tokens=8).new_text for ivs in steers]
    readme = (Path(__file__).parents[1] / "docs" / "sae_probes.md").read_text()  # the README links to it
    for output in outputs:
        assert f"# {output!r}\n" in readme, output
