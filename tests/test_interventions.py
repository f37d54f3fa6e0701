"""Interventions: their effect, their re-run from the earliest intervened block, and their values."""

from __future__ import annotations

import json

import pytest
import torch

import repwidget as rw
from repwidget.interventions import from_json, to_json

from conftest import ids

ATOL = 1e-5


def _everything(model):
    return [rw.Ablate(model.n_layers - 1, head=2), rw.Ablate(1, neuron=5), rw.Ablate(2)]


@pytest.mark.parametrize("layer_of", ["first", "middle", "last"])
def test_rerun_equals_full_forward_with_the_same_interventions(hf_models, causal_name, layer_of):
    model = rw.load(hf_models[causal_name])
    layer = {"first": 0, "middle": model.n_layers // 2, "last": model.n_layers - 1}[layer_of]
    x = ids(11)
    clean = model.run(x, capture="blocks.*.*")
    ivs = [
        rw.Ablate(layer, head=1),
        rw.Ablate(layer, neuron=3),
        rw.Steer(layer, torch.linspace(-1, 1, model.d_model), scale=0.5),
    ]
    rerun = clean.rerun(ivs, capture="blocks.*.*")
    full = model.run(x, ivs, capture="blocks.*.*")
    torch.testing.assert_close(rerun.logits, full.logits, atol=ATOL, rtol=0)
    for name in full:
        torch.testing.assert_close(rerun[name], full[name], atol=ATOL, rtol=0, msg=name)
    assert not torch.allclose(rerun.logits, clean.logits, atol=1e-4), "the interventions must change the output"
    # blocks before the intervened one are reused, not recomputed
    for before in range(layer):
        assert rerun[f"blocks.{before}.hook_resid_post"] is clean[f"blocks.{before}.hook_resid_post"]


def test_rerun_recomputes_only_from_the_earliest_intervened_block(hf_models):
    hf = hf_models["gpt2"]
    model = rw.load(hf)
    clean = model.run(ids(7))
    calls = []
    handles = [  # the attention inside each block runs only when the block is computed
        b.attn.register_forward_pre_hook(lambda m, a, i=i: calls.append(i)) for i, b in enumerate(hf.transformer.h)
    ]
    try:
        clean.rerun(rw.Ablate(2, head=0))
    finally:
        for h in handles:
            h.remove()
    assert calls == [2, 3]


def test_rerun_of_an_intervened_run_equals_a_full_forward(hf_models):
    model = rw.load(hf_models["llama"])
    x = ids(9)
    first = model.run(x, rw.Ablate(1, head=0))
    second = first.rerun([rw.Ablate(3, head=2)])  # must not keep layer 1's ablation
    torch.testing.assert_close(second.logits, model.run(x, rw.Ablate(3, head=2)).logits, atol=ATOL, rtol=0)
    back = second.rerun([])
    torch.testing.assert_close(back.logits, model.run(x).logits, atol=ATOL, rtol=0)


def test_rerun_with_a_capture_the_base_lacks_computes_it(hf_models):
    model = rw.load(hf_models["gpt2"])
    x = ids(8)
    clean = model.run(x, capture="blocks.*.hook_resid_post")
    rerun = clean.rerun(rw.Ablate(3, head=1), capture=["blocks.0.mlp.hook_post", "blocks.3.hook_resid_post"])
    full = model.run(x, rw.Ablate(3, head=1), capture=["blocks.0.mlp.hook_post", "blocks.3.hook_resid_post"])
    for name in full:
        torch.testing.assert_close(rerun[name], full[name], atol=ATOL, rtol=0)


def test_ablating_a_neuron_zeroes_it(hf_models):
    model = rw.load(hf_models["neox"])
    run = model.run(ids(6), rw.Ablate(1, neuron=7), capture="blocks.1.mlp.hook_post")
    post = run["blocks.1.mlp.hook_post"]
    assert torch.all(post[:, 7] == 0) and torch.any(post[:, 6] != 0)


def test_ablating_the_attention_block_removes_its_output(hf_models):
    model = rw.load(hf_models["gpt2"])
    x = ids(6)
    run = model.run(x, rw.Ablate(2), capture=["blocks.2.hook_attn_out", "blocks.2.hook_resid_pre", "blocks.2.*"])
    assert torch.all(run["blocks.2.hook_attn_out"] == 0)


def test_steer_adds_the_vector_to_the_residual_stream(hf_models):
    model = rw.load(hf_models["mistral"])
    x = ids(6)
    vector = torch.randn(model.d_model)
    clean = model.run(x)
    steered = clean.rerun(rw.Steer(1, vector, scale=2.0))
    torch.testing.assert_close(
        steered["blocks.1.hook_resid_post"], clean["blocks.1.hook_resid_post"] + 2 * vector, atol=ATOL, rtol=0
    )
    torch.testing.assert_close(steered["blocks.2.hook_resid_pre"], steered["blocks.1.hook_resid_post"])


def test_a_direction_ablation_equals_projecting_it_out_in_a_plain_hf_hook(hf_models):
    model = rw.load(hf_models["gpt2"])
    hf, x = model.hf, ids(7)
    direction = torch.randn(model.d_model)
    unit = direction / direction.norm()

    def project(module, args, output):  # what a user would write by hand on the block's output
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden - (hidden @ unit)[..., None] * unit
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = hf.transformer.h[1].register_forward_hook(project)
    try:
        with torch.no_grad():
            expected = hf(torch.tensor([x])).logits[0]
    finally:
        handle.remove()
    run = model.run(x, rw.Ablate(1, direction=direction), capture=["blocks.1.hook_resid_post"])
    torch.testing.assert_close(run.logits, expected, atol=ATOL, rtol=0)
    assert (run["blocks.1.hook_resid_post"] @ unit).abs().max() < 1e-4
    assert not torch.allclose(run.logits, model.run(x).logits, atol=1e-4)
    iv = rw.Ablate(1, direction=direction)
    assert from_json(json.loads(json.dumps(to_json(iv)))) == iv and eval(repr(iv), {"rw": rw}) == iv
    with pytest.raises(ValueError, match="not several"):
        rw.Ablate(1, head=0, direction=direction)
    with pytest.raises(ValueError, match="width 3"):
        model.run(x, rw.Ablate(1, direction=[1.0, 2.0, 3.0]))
    model.set_reference([ids(5, seed=s) for s in range(3)])
    try:  # mean mode: the component becomes the reference texts' mean component
        mean = model.run(x, rw.Ablate(1, direction=direction, mode="mean"), capture=["blocks.1.hook_resid_post"])
        target = model.reference.mean("blocks.1.hook_resid_post").float() @ unit
        torch.testing.assert_close(mean["blocks.1.hook_resid_post"] @ unit, target.expand(len(x)), atol=1e-4, rtol=0)
    finally:
        model.reference = None


def test_mean_and_resample_ablation_use_the_reference_texts(hf_models):
    model = rw.load(hf_models["gpt2"])
    refs = [ids(5, seed=s) for s in range(3)]
    with pytest.raises(ValueError, match="set_reference"):
        model.run(ids(6), rw.Ablate(1, head=2, mode="mean"))
    model.set_reference(refs)
    z_refs = [model.run(r, capture="blocks.1.attn.hook_z")["blocks.1.attn.hook_z"][:, 2] for r in refs]
    mean = torch.cat(z_refs).mean(0)
    run = model.run(ids(6), rw.Ablate(1, head=2, mode="mean"), capture="blocks.1.attn.hook_z")
    torch.testing.assert_close(run["blocks.1.attn.hook_z"][:, 2], mean.expand(6, -1), atol=ATOL, rtol=0)
    run = model.run(ids(7), rw.Ablate(1, head=2, mode="resample", seed=4), capture="blocks.1.attn.hook_z")
    got = run["blocks.1.attn.hook_z"][:, 2]
    assert any(torch.allclose(got, z[torch.arange(7) % 5], atol=ATOL) for z in z_refs)
    # the reruns of mean ablations equal full forwards too
    clean = model.run(ids(6))
    rerun = clean.rerun(rw.Ablate(3, neuron=4, mode="mean"))
    full = model.run(ids(6), rw.Ablate(3, neuron=4, mode="mean"))
    torch.testing.assert_close(rerun.logits, full.logits, atol=ATOL, rtol=0)


def test_patching_every_residual_position_gives_the_source_run(hf_models):
    model = rw.load(hf_models["llama"])
    source, target = model.run(ids(8, seed=2)), model.run(ids(8, seed=3))
    patched = target.rerun(rw.Patch.from_run(source, "blocks.2.hook_resid_pre"))
    torch.testing.assert_close(patched.logits, source.logits, atol=ATOL, rtol=0)
    one_head = target.rerun(rw.Patch.from_run(source, "blocks.1.attn.hook_z", head=3, positions=[7]))
    z = model.run(target.token_ids, one_head.interventions, capture="blocks.1.attn.hook_z")["blocks.1.attn.hook_z"]
    z_source = model.run(source.token_ids, capture="blocks.1.attn.hook_z")["blocks.1.attn.hook_z"]
    torch.testing.assert_close(z[7, 3], z_source[7, 3])
    assert not torch.allclose(z[6, 3], z_source[6, 3])


def test_interventions_round_trip_through_json_and_repr(hf_models):
    model = rw.load(hf_models["gpt2"])
    ivs = [
        rw.Ablate(1, head=2),
        rw.Ablate(0, neuron=3, mode="mean"),
        rw.Ablate(2, mode="resample", seed=5),
        rw.Steer(3, [0.1, -0.25, 1e-8], scale=3.0),
        rw.Patch("blocks.1.attn.hook_z", source=[1, 2, 3], head=0, positions=[2]),
    ]
    for iv in ivs:
        assert from_json(json.loads(json.dumps(to_json(iv)))) == iv
        assert eval(repr(iv), {"rw": rw}) == iv
        with pytest.raises(AttributeError):
            iv.layer = 0
    assert repr(rw.Ablate(1, head=2)) == "rw.Ablate(layer=1, head=2)"
    steer = rw.Steer(0, torch.ones(model.d_model))
    assert eval(repr(steer), {"rw": rw}) == steer and hash(steer) == hash(eval(repr(steer), {"rw": rw}))


@pytest.mark.parametrize(
    "message",
    [
        None,
        "ablate",
        {"type": "nope"},
        {"type": "ablate"},
        {"type": "ablate", "layer": "1"},
        {"type": "ablate", "layer": 1, "head": 1.5},
        {"type": "ablate", "layer": 1, "mode": "explode"},
        {"type": "ablate", "layer": 1, "head": 1, "neuron": 2},
        {"type": "ablate", "layer": 1, "bogus": 2},
        {"type": "steer", "layer": 1, "vector": "abc"},
        {"type": "steer", "layer": 1, "vector": [1, float("nan")]},
        {"type": "steer", "layer": 1, "vector": []},
        {"type": "patch", "hook": "blocks.0.attn.hook_pattern", "source": [1]},
        {"type": "patch", "hook": "nonsense", "source": [1]},
    ],
)
def test_malformed_intervention_messages_raise_value_error(message):
    with pytest.raises(ValueError):
        from_json(message)


def test_capture_stops_the_pass_once_its_hooks_are_read(hf_models, causal_name):
    model = rw.load(hf_models[causal_name])
    x = ids(7)
    blocks = model.hf.get_submodule(model.arch.blocks)
    calls = []
    handles = [b.register_forward_pre_hook(lambda m, a, i=i: calls.append(i)) for i, b in enumerate(blocks)]
    try:
        got = model.capture(x, ["blocks.1.hook_resid_pre", "blocks.0.attn.hook_pattern"])
    finally:
        for h in handles:
            h.remove()
    assert calls == [0, 1]  # block 1 starts (its input is read), later blocks never run
    full = model.run(x, capture=["blocks.1.hook_resid_pre", "blocks.0.attn.hook_pattern"])
    for name, tensor in got.items():
        torch.testing.assert_close(tensor, full[name])
    assert not model.hf._forward_hooks and not any(b._forward_pre_hooks for b in blocks)
    torch.testing.assert_close(model.run(x).logits, hf_models[causal_name](torch.tensor([x])).logits[0])
