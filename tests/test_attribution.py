"""Direct logit attribution, checked by its own identities on every architecture of the matrix and against
TransformerLens's decompose_resid / stack_head_results on GPT-2."""

from __future__ import annotations

import functools

import pytest
import torch

import repwidget as rw

from architectures import ARCHITECTURES, build, matrix_ids

TARGET, FOIL = 5, 7


@functools.cache
def model(name: str) -> rw.Model:
    return rw.load(build(name))


@pytest.mark.parametrize("name", [n for n in ARCHITECTURES if n != "bert"])
def test_the_shares_add_up_to_the_logit_difference_on_every_architecture(name):
    m = model(name)
    run = m.run(matrix_ids())
    dla = rw.analyses.direct_logit_attribution(run, TARGET, foil=FOIL, position=-1)
    logits = run.logits[-1]
    if dla.capped:  # Gemma 2 soft-caps: the shares add up to the difference before the cap
        assert name == "gemma2"
        raw = (
            rw.analyses.direct_logit_attribution(run, TARGET).total
            - rw.analyses.direct_logit_attribution(run, FOIL).total
        )
        assert dla.total == pytest.approx(raw, abs=1e-5)
    else:
        assert dla.total == pytest.approx(float(logits[TARGET] - logits[FOIL]), abs=1e-4)
    parts = dla.embed + float(dla.attn.sum()) + float(dla.mlp.sum()) + dla.bias
    assert parts == pytest.approx(dla.total, abs=1e-5)
    torch.testing.assert_close(dla.heads.sum(-1) + dla.attn_bias, dla.attn, atol=1e-5, rtol=0)
    assert dla.heads.shape == (m.n_layers, m.n_heads)
    if not m.arch.moe:
        neurons = dla.neurons(1)
        assert neurons.shape == (m.d_mlp,)
        down = m.hf.get_submodule(m.arch.blocks)[1].get_submodule(m.arch.mlp_down)
        has_bias = getattr(down, "bias", None) is not None
        if not has_bias and m.arch.mlp_end == m.arch.mlp_down.rsplit(".", 1)[0]:
            assert float(neurons.sum()) == pytest.approx(float(dla.mlp[1]), abs=1e-4)


def test_per_head_and_per_layer_shares_equal_transformerlens_on_gpt2():
    import tl_reference

    hf = build("gpt2")
    tl = tl_reference.tl_model("gpt2", hf)
    ids = torch.tensor([matrix_ids()])
    _, cache = tl.run_with_cache(ids)
    direction = tl.W_U[:, TARGET] - tl.W_U[:, FOIL]
    scale = cache["ln_final.hook_scale"][0, -1]

    def through_final_norm(stack: torch.Tensor) -> torch.Tensor:  # TL's apply_ln_to_stack, plus the norm's weight
        centred = stack - stack.mean(-1, keepdim=True)
        return (centred / scale * tl.ln_final.w) @ direction

    heads = through_final_norm(cache.stack_head_results(layer=-1, pos_slice=-1)[:, 0])  # [layer * head]
    parts, labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
    shares = dict(zip(labels, through_final_norm(parts[:, 0]).tolist(), strict=True))
    dla = rw.analyses.direct_logit_attribution(rw.load(hf).run(matrix_ids()), TARGET, foil=FOIL)
    torch.testing.assert_close(dla.heads.reshape(-1), heads, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        dla.attn, torch.tensor([shares[f"{layer}_attn_out"] for layer in range(4)]), atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(
        dla.mlp, torch.tensor([shares[f"{layer}_mlp_out"] for layer in range(4)]), atol=1e-5, rtol=1e-4
    )
    assert dla.embed == pytest.approx(shares["embed"] + shares["pos_embed"], abs=1e-5)


def test_a_neurons_shares_equal_its_activation_times_its_output_direction():
    m = model("llama")  # no bias: the neurons' shares add up to the MLP's
    run = m.run(matrix_ids())
    dla = rw.analyses.direct_logit_attribution(run, TARGET)
    neurons = dla.neurons(2)
    assert float(neurons.sum()) == pytest.approx(float(dla.mlp[2]), abs=1e-4)
    post = m.run(matrix_ids(), capture="blocks.2.mlp.hook_post")["blocks.2.mlp.hook_post"][-1]
    down = m.hf.model.layers[2].mlp.down_proj.weight.detach()
    torch.testing.assert_close(neurons[3], dla.of(post[3] * down[:, 3]), atol=1e-6, rtol=0)


def test_bad_targets_are_clear_errors():
    run = model("gpt2").run(matrix_ids())
    with pytest.raises(ValueError, match=r"token id in 0\.\.63"):
        rw.analyses.direct_logit_attribution(run, 64)
    with pytest.raises(ValueError, match="outside the 20 tokens"):
        rw.analyses.direct_logit_attribution(run, 3, position=20)
    with pytest.raises(ValueError, match="post-norm"):
        rw.analyses.direct_logit_attribution(model("bert").run(matrix_ids()), 3)
