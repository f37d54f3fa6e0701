"""Generation with interventions: equal to transformers' greedy generate, and to a full forward with the
interventions at every step; sampling from a seed; errors; an interrupt returns what was generated."""

from __future__ import annotations

import pytest
import torch
from test_reliability import model_state

import repwidget as rw
from repwidget.demo import dataset
from repwidget.generation import within

from architectures import build, matrix_ids

FOUR = ["gpt2", "llama", "neox_sequential", "gemma2", "qwen3"]  # gemma2: soft-capped logits from the model's head


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[torch.nn.Module, rw.Model]]:
    out = {}
    for name in FOUR:
        hf = build(name)
        out[name] = hf, rw.Model(hf)
    return out


def _reference(model: rw.Model, prompt: list[int], ivs: tuple, n: int) -> tuple[list[int], list[float]]:
    """Greedy tokens by a full forward over everything so far at every step, with the interventions."""
    ids, logprobs = list(prompt), []
    for _ in range(n):
        logits = model.run(ids, within(ivs, len(ids)), capture=[]).logits[-1].float()
        token = int(logits.argmax())
        logprobs.append(float(torch.log_softmax(logits, -1)[token]))
        ids.append(token)
    return ids[len(prompt) :], logprobs


@pytest.mark.parametrize("name", FOUR)
def test_greedy_generation_equals_transformers_generate(models, name):
    hf, model = models[name]
    prompt = matrix_ids(10)
    gen = model.generate(prompt, max_new_tokens=30)
    expected = hf.generate(torch.tensor([prompt]), max_new_tokens=30, do_sample=False)[0, len(prompt) :].tolist()
    assert gen.new_token_ids == expected
    assert gen.prompt_ids == prompt and len(gen) == len(expected) and len(set(expected)) > 2
    logits = hf(torch.tensor([prompt + expected])).logits[0, len(prompt) - 1 : -1].float()
    chosen = torch.log_softmax(logits, -1).gather(1, torch.tensor(expected)[:, None])[:, 0]
    torch.testing.assert_close(torch.tensor(gen.logprobs), chosen, atol=1e-4, rtol=0)
    assert [alt[0].token_id for alt in gen.top] == expected  # greedy: the chosen token is the likeliest


@pytest.mark.parametrize("name", FOUR)
def test_intervened_generation_equals_a_full_forward_at_every_step(models, name):
    model = models[name][1]
    prompt = matrix_ids(8)
    n = 12
    g = torch.Generator().manual_seed(0)
    ivs = (
        rw.Ablate(1, head=2),
        rw.Ablate(2, neuron=5),
        rw.Steer(2, torch.randn(model.d_model, generator=g), scale=3.0),
        rw.Steer(0, torch.randn(model.d_model, generator=g), scale=4.0, positions=[2, len(prompt) + 3]),
        rw.Ablate(3, direction=torch.randn(model.d_model, generator=g), positions=[len(prompt) + 1]),
        rw.Patch("blocks.1.hook_resid_post", source=matrix_ids(12, seed=9), positions=[4, len(prompt) + 2]),
    )
    gen = model.generate(prompt, ivs, max_new_tokens=n, stop=lambda gen: False)
    tokens, logprobs = _reference(model, prompt, ivs, len(gen))
    assert gen.new_token_ids == tokens
    torch.testing.assert_close(torch.tensor(gen.logprobs), torch.tensor(logprobs), atol=1e-4, rtol=0)
    clean = model.generate(prompt, max_new_tokens=n)
    assert clean.new_token_ids != gen.new_token_ids, "the interventions must change the text"
    run = gen.run  # prompt + continuation, with the same interventions
    assert run.token_ids == gen.token_ids and run.interventions == within(ivs, len(gen.token_ids))
    argmax = run.logits[len(prompt) - 1 : -1].argmax(-1).tolist()
    assert argmax == gen.new_token_ids[: len(argmax)]


def test_demo_model_steered_by_sae_feature_and_probe_direction(demo):
    prompt = "review : the food was great and the staff were lovely . verdict :"
    sae = rw.demo.demo_sae()
    probes = rw.train_probes(demo, dataset("sentiment", 200), layers=[2], kind="mean_diff")
    ivs = (
        rw.Steer(sae=sae, feature=3, scale=6.0),
        probes.steering(2, toward="negative", strength=4.0),
        rw.Ablate(sae=sae, feature=7),
        rw.Ablate(1, head=0),
        rw.Ablate(0, head=1, mode="resample"),
    )
    n = 10
    gen = demo.generate(prompt, ivs, max_new_tokens=n)
    tokens, _ = _reference(demo, demo.to_ids(prompt), ivs, len(gen))
    assert gen.new_token_ids == tokens
    clean = demo.generate(prompt, max_new_tokens=n)
    expected = demo.hf.generate(torch.tensor([demo.to_ids(prompt)]), max_new_tokens=n, do_sample=False)
    assert clean.new_token_ids == expected[0, len(demo.to_ids(prompt)) :].tolist()
    assert clean.new_text != gen.new_text
    assert clean.text.startswith(prompt) and clean.new_tokens == demo.to_str_tokens(clean.new_token_ids)


def test_sampling_is_reproducible_from_a_seed(models):
    _, model = models["llama"]
    prompt = matrix_ids(6)
    a = model.generate(prompt, max_new_tokens=20, temperature=1.0, seed=1)
    b = model.generate(prompt, max_new_tokens=20, temperature=1.0, seed=1)
    c = model.generate(prompt, max_new_tokens=20, temperature=1.0, seed=2)
    assert a.new_token_ids == b.new_token_ids != c.new_token_ids
    assert a.seed == 1
    greedy = model.generate(prompt, max_new_tokens=20)
    nucleus = model.generate(prompt, max_new_tokens=20, temperature=1.0, top_p=1e-6, seed=3)  # only the top token
    assert nucleus.new_token_ids == greedy.new_token_ids
    drawn = model.generate(prompt, max_new_tokens=20, temperature=1.0)  # no seed: one is drawn and kept
    again = model.generate(prompt, max_new_tokens=20, temperature=1.0, seed=drawn.seed)
    assert again.new_token_ids == drawn.new_token_ids


def test_stops_at_a_string_a_token_or_a_function(demo):
    prompt = "review : the food was great . verdict :"
    full = demo.generate(prompt, max_new_tokens=8)
    second = full.new_token_ids[1]
    assert demo.generate(prompt, max_new_tokens=8, stop=second).new_token_ids == full.new_token_ids[:2]
    cut = demo.generate(prompt, max_new_tokens=8, stop=full.new_tokens[2].strip())
    assert cut.new_token_ids == full.new_token_ids[: cut.new_token_ids.index(full.new_token_ids[2]) + 1]
    three = demo.generate(prompt, max_new_tokens=8, stop=lambda gen: len(gen) == 3)
    assert three.new_token_ids == full.new_token_ids[:3] and three.stopped == "stop"


def test_clear_errors(models):
    _, model = models["gpt2"]
    with pytest.raises(ValueError, match=r"the prompt has 60 tokens and max_new_tokens=10 would reach 70, beyond"):
        model.generate(list(range(3, 63)), max_new_tokens=10)
    for kwargs, message in [
        ({"max_new_tokens": 0}, "max_new_tokens must be a positive int"),
        ({"temperature": -1}, "temperature must be a number >= 0"),
        ({"top_p": 0}, r"top_p must be a number in \(0, 1\]"),
        ({"seed": 1.5}, "seed must be an int or None"),
        ({"stop": 2.5}, "stop must be a function, a string, a token id"),
        ({"interventions": rw.Knockout(1, key=[0])}, "knockouts do not apply to generation"),
        ({"interventions": rw.Steer(1, [1.0, 2.0])}, "the steering vector has width 2"),
        ({"interventions": rw.Steer(1, [1.0] * 32, positions=[30])}, r"position 30 is out of range 0\.\.14"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.generate(matrix_ids(5), **{"max_new_tokens": 10, **kwargs})


def test_an_interrupt_returns_what_was_generated_and_leaves_the_model_as_it_was(models):
    hf, model = models["llama"]
    prompt = matrix_ids(6)
    steer = rw.Steer(1, torch.ones(model.d_model), scale=2.0)
    full = model.generate(prompt, steer, max_new_tokens=10)
    before = model_state(hf)
    weights = {k: v.clone() for k, v in hf.state_dict().items()}

    def interrupt(gen):
        if len(gen) == 4:
            raise KeyboardInterrupt

    cut = model.generate(prompt, steer, max_new_tokens=10, stop=interrupt)
    assert cut.stopped == "interrupted" and cut.new_token_ids == full.new_token_ids[:4]

    calls = []  # an interrupt inside a step's forward pass (block 2 of the 6th step)

    def hook(module, args, output):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt

    handle = model.hf.model.layers[2].register_forward_hook(hook)
    try:
        mid = model.generate(prompt, steer, max_new_tokens=10)
    finally:
        handle.remove()
    assert mid.stopped == "interrupted" and mid.new_token_ids == full.new_token_ids[:5]
    assert model_state(hf) == before
    assert all(torch.equal(v, weights[k]) for k, v in hf.state_dict().items())
    assert model.generate(prompt, steer, max_new_tokens=10).new_token_ids == full.new_token_ids


@pytest.mark.real_model
def test_smollm2_greedy_and_steered_generation_are_exact():
    from smollm2 import smollm2

    model = smollm2()
    text = "The capital of France is"
    gen = model.generate(text, max_new_tokens=12)
    ids = torch.tensor([model.to_ids(text)])
    expected = model.hf.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1] :].tolist()
    assert gen.new_token_ids == expected
    steer = rw.Steer(15, torch.randn(model.d_model, generator=torch.Generator().manual_seed(0)), scale=8.0)
    steered = model.generate(text, steer, max_new_tokens=6)
    assert steered.new_token_ids == _reference(model, ids[0].tolist(), (steer,), len(steered))[0]
    assert steered.new_token_ids != gen.new_token_ids[: len(steered)]
