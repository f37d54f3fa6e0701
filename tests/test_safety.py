"""Bad input gets a clear error; hooks never outlive a run; the user's model is never left modified."""

from __future__ import annotations

import pytest
import torch

import repwidget as rw

from conftest import ids


def _hook_state(model: torch.nn.Module):
    return [
        (name, dict(m._forward_hooks), dict(m._forward_pre_hooks), "forward" in m.__dict__)
        for name, m in model.named_modules()
    ]


@pytest.mark.parametrize("failing", ["user_hook", "keyboard_interrupt"])
def test_after_an_exception_no_hook_survives_and_outputs_are_bit_identical(hf_models, causal_name, failing):
    hf = hf_models[causal_name]
    model = rw.load(hf)
    x = torch.tensor([ids(10)])
    before_logits = hf(x).logits.clone()
    before_hooks = _hook_state(hf)
    clean = model.run(x, capture="blocks.*.*")
    blocks = hf.get_submodule(model.arch.blocks)
    error = KeyboardInterrupt if failing == "keyboard_interrupt" else RuntimeError

    def explode(module, args):
        raise error("boom")

    handle = blocks[3].get_submodule(model.arch.attn).register_forward_pre_hook(explode)
    try:
        with pytest.raises(error):  # a full run with every kind of intervention and capture
            model.run(x, [rw.Ablate(1, head=0), rw.Steer(2, torch.ones(model.d_model))], capture="blocks.*.*")
        with pytest.raises(error):  # a rerun that skips blocks 0..1 and patches the unembedding
            clean.rerun([rw.Ablate(2, neuron=1)])
    finally:
        handle.remove()
    assert _hook_state(hf) == before_hooks
    assert hf.config._attn_implementation == "sdpa"
    assert torch.equal(hf(x).logits, before_logits)


def test_runs_leave_training_mode_and_grads_as_they_were(hf_models):
    hf = hf_models["gpt2"]
    hf.train()
    try:
        model = rw.Model(hf)
        a = model.run(ids(5)).logits
        b = model.run(ids(5)).logits
        assert torch.equal(a, b), "runs are deterministic: dropout is off inside a run"
        assert all(m.training for m in hf.modules())
    finally:
        hf.eval()
    assert all(p.grad is None for p in hf.parameters())


@pytest.mark.parametrize(
    ("text_or_ids", "error", "match"),
    [
        ("", ValueError, "empty"),
        ([], ValueError, "empty"),
        (list(range(2, 60)), ValueError, "at most 48"),
        ([3, 64], ValueError, r"0\.\.63"),
        ([-1], ValueError, r"0\.\.63"),
        (torch.tensor([1.0, 2.0]), TypeError, "integers"),
        (torch.ones(2, 3, dtype=torch.long), ValueError, "one sequence"),
        ([1, "a"], TypeError, "ints"),
        (3.5, TypeError, "text"),
    ],
)
def test_bad_inputs_name_the_valid_range(hf_models, tokenizer, text_or_ids, error, match):
    model = rw.load(hf_models["gpt2"], tokenizer=tokenizer)
    with pytest.raises(error, match=match):
        model.run(text_or_ids)


def test_text_without_a_tokenizer_says_what_to_pass(hf_models):
    with pytest.raises(TypeError, match="token ids"):
        rw.load(hf_models["gpt2"]).run("hello")


@pytest.mark.parametrize(
    ("intervention", "match"),
    [
        (rw.Ablate(4, head=0), r"layers 0\.\.3"),
        (rw.Ablate(-1), r"layers 0\.\.3"),
        (rw.Ablate(1, head=4), r"heads 0\.\.3"),
        (rw.Ablate(1, neuron=128), r"neurons 0\.\.127"),
        (rw.Steer(1, [1.0, 2.0]), "width 2, the residual stream 32"),
        (rw.Patch("blocks.9.hook_resid_pre", source=[1, 2, 3, 4, 5]), r"layers 0\.\.3"),
        (rw.Patch("blocks.1.hook_resid_pre", source=[1, 2, 3]), "source has 3 tokens and this run 5"),
        (rw.Patch("blocks.1.hook_resid_pre", source=[1, 2, 3], positions=[4]), r"0\.\.2"),
        (rw.Patch("blocks.1.attn.hook_z", source=[1, 2, 3, 4, 5], head=9), r"0\.\.3"),
    ],
)
def test_interventions_out_of_range_are_clear_errors(hf_models, intervention, match):
    model = rw.load(hf_models["gpt2"])
    with pytest.raises((ValueError, KeyError), match=match):
        model.run(ids(5), intervention)


def test_intervention_types_are_checked(hf_models):
    with pytest.raises(TypeError):
        rw.Ablate("1")
    with pytest.raises(TypeError):
        rw.Ablate(1, head=True)
    with pytest.raises(ValueError, match="not both"):
        rw.Ablate(1, head=0, neuron=0)
    with pytest.raises(ValueError, match="one-dimensional"):
        rw.Steer(0, torch.ones(2, 2))
    with pytest.raises(TypeError, match="not an intervention"):
        rw.load(hf_models["gpt2"]).run([1, 2], [1])


def test_unknown_hook_names_list_the_valid_ones(hf_models):
    model = rw.load(hf_models["gpt2"])
    run = model.run(ids(4))
    with pytest.raises(KeyError, match=r"hook one of: hook_resid_pre, attn.hook_pattern"):
        run["blocks.0.attn.hook_q"]
    with pytest.raises(KeyError, match=r"capture=\['blocks.0.attn.hook_z'\]"):
        run["blocks.0.attn.hook_z"]
    with pytest.raises(KeyError, match="matches no hook"):
        model.run(ids(4), capture="blocks.*.hook_nothing")
    with pytest.raises(KeyError, match=r"layer in 0\.\.3"):
        model.run(ids(4), capture="blocks.4.hook_resid_post")
    assert "blocks.0.attn.hook_z" not in run and "blocks.0.hook_resid_pre" in run


def test_capture_over_budget_fails_before_running(hf_models, monkeypatch):
    hf = hf_models["gpt2"]
    model = rw.load(hf)
    calls = []
    handle = hf.register_forward_pre_hook(lambda m, a: calls.append(1))
    monkeypatch.setattr(rw.options, "max_capture_bytes", 100_000)
    try:
        with pytest.raises(rw.CaptureBudgetError, match=r"rw\.options\.max_capture_bytes"):
            model.run(ids(40))
        assert calls == []
        model.run(ids(40), capture="blocks.0.hook_resid_post")  # a narrower capture fits
    finally:
        handle.remove()


def test_default_capture_holds_the_residual_stream_and_patterns_are_read_when_asked(hf_models):
    model = rw.load(hf_models["gpt2"])
    run = model.run(ids(4))
    assert sorted({name.split(".", 2)[2] for name in run}) == ["hook_resid_post", "hook_resid_pre"]
    assert len(run) == 8 and "blocks.2.attn.hook_pattern" not in run  # never held unless captured
    captured = model.run(ids(4), capture="blocks.2.attn.hook_pattern")["blocks.2.attn.hook_pattern"]
    torch.testing.assert_close(run["blocks.2.attn.hook_pattern"], captured)  # computed on first read
