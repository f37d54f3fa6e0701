"""The shipped demo model: its tasks and its induction circuit (on the shipped weights)."""

from __future__ import annotations

import random

import pytest
import torch

import repwidget as rw
from repwidget.demo import tasks
from repwidget.demo.evaluate import accuracy


def test_demo_model_is_a_plain_hf_directory(demo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(rw.demo.MODEL_DIR)
    hf = AutoModelForCausalLM.from_pretrained(rw.demo.MODEL_DIR)
    assert (demo.n_layers, demo.n_heads, demo.d_model) == (4, 4, 128)
    ids = tokenizer("when mary and john went to the store")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[0] == "<bos>"
    run = demo.run("when mary and john went to the store")
    assert run.token_ids == ids and run.tokens[1:3] == ["when", "mary"]
    torch.testing.assert_close(run.logits, hf(torch.tensor([ids])).logits[0], atol=1e-5, rtol=0)
    size = sum(f.stat().st_size for f in rw.demo.MODEL_DIR.iterdir())
    assert size < 8 * 2**20


@pytest.mark.parametrize("task", tasks.TASKS)
def test_every_task_reaches_90_percent(demo, task):
    score = accuracy(demo.hf, demo.tokenizer, task, n=100)
    print(f"{task}: held-out top-1 accuracy {score:.3f}")
    assert score >= 0.9


def _repeated(seed: int, n: int = 10) -> tuple[str, int]:
    """Random words, then ``n`` random words twice; the prefix moves the repeat to a random offset."""
    rng = random.Random(seed)
    words = rng.sample(tasks.FILLER, n + 4)
    prefix = words[: rng.randint(0, 4)]
    return " ".join(prefix + words[4:] + words[4:]), len(prefix)


@pytest.fixture(scope="module")
def repeats(demo):
    return [(demo.run(text), offset) for text, offset in (_repeated(seed) for seed in range(20))]


def _repeat_loss(repeats, interventions=()) -> float:
    """Mean loss on the second copy from its second word on (what only copying predicts)."""
    losses = [
        rw.analyses.token_losses(run.rerun(interventions) if interventions else run)[offset + 11 :].mean()
        for run, offset in repeats
    ]
    return torch.stack(losses).mean().item()


def _induction_scores(repeats) -> torch.Tensor:
    return torch.stack([rw.analyses.head_scores(run)["induction"] for run, _ in repeats]).mean(0)


def test_an_induction_circuit_copies_and_ablating_it_breaks_copying(demo, repeats):
    scores = _induction_scores(repeats)
    prev = torch.stack([rw.analyses.head_scores(run)["previous_token"] for run, _ in repeats]).mean(0)
    layer, head = divmod(int(scores.argmax()), demo.n_heads)
    prev_layer, prev_head = divmod(int(prev.argmax()), demo.n_heads)
    induction_heads = [divmod(int(i), demo.n_heads) for i in (scores.flatten() >= 0.5).nonzero().flatten()]
    clean = _repeat_loss(repeats)
    without_prev = _repeat_loss(repeats, [rw.Ablate(prev_layer, head=prev_head)])
    without_all = _repeat_loss(repeats, [rw.Ablate(lay, head=h) for lay, h in induction_heads])
    print(f"induction scores:\n{scores}\nprevious-token scores:\n{prev}")
    print(f"loss on the repeated half: clean {clean:.4f}; previous-token head {prev_layer}.{prev_head} ablated "
          f"{without_prev:.3f}; induction heads {induction_heads} ablated {without_all:.3f} nats")  # fmt: skip
    assert scores[layer, head] >= 0.5 and prev_layer < layer
    assert clean < 0.25 and without_prev - clean >= 0.5 and without_all - clean >= 0.5  # p(copy) ~0.85


def test_ablating_the_best_induction_head_alone_breaks_copying(demo, repeats):
    scores = _induction_scores(repeats)
    layer, head = divmod(int(scores.argmax()), demo.n_heads)
    clean, ablated = _repeat_loss(repeats), _repeat_loss(repeats, [rw.Ablate(layer, head=head)])
    print(f"best induction head {layer}.{head}: score {scores[layer, head]:.2f}; loss on the repeated half "
          f"{clean:.3f} -> {ablated:.3f} nats when it alone is ablated")  # fmt: skip
    assert scores[layer, head] >= 0.5 and ablated - clean >= 0.5


def test_dataset_is_held_out_and_reproducible():
    for task in tasks.TASKS:
        examples = tasks.dataset(task, 50, seed=3)
        assert examples == tasks.dataset(task, 50, seed=3) and len({e.text for e in examples}) == 50
        assert all(isinstance(e, tasks.Example) and e.text and e.target for e in examples)
        if task != "induction":  # random sequences are their own held-out set
            assert all(tasks.is_held_out(e.text) for e in examples)
    assert {e.target for e in tasks.dataset("sentiment", 40)} == {"positive", "negative"}
    assert tasks.dataset("ioi", 5, seed=1) != tasks.dataset("ioi", 5, seed=2)
    with pytest.raises(ValueError, match="unknown task"):
        tasks.dataset("poetry")
    rng = random.Random(0)
    held_out = {e.text for task in tasks.TASKS if task != "induction" for e in tasks.dataset(task, 100)}
    for _ in range(5000):
        task, example = tasks.training_example(rng)
        assert task == "induction" or (not tasks.is_held_out(example.text) and example.text not in held_out)


def test_training_is_deterministic(tmp_path):
    from repwidget.demo.train import train

    a = train(steps=3, batch_size=8, lr=1e-3, seed=5, out=tmp_path / "a", evaluate=False, specialize_steps=2)
    b = train(steps=3, batch_size=8, lr=1e-3, seed=5, out=tmp_path / "b", evaluate=False, specialize_steps=2)
    assert a == b == {}
    from safetensors.torch import load_file

    wa, wb = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_the_demo_sae_script_saves_an_sae_that_loads(tmp_path):
    from repwidget.demo import train_sae

    sae = train_sae.train(d_sae=64, k=8, steps=60, seed=0, out=tmp_path, n_docs=60)
    again = rw.SAE.load(tmp_path)
    assert again.hook == train_sae.HOOK and again.architecture == "topk" and (again.d_in, again.d_sae) == (128, 64)
    torch.testing.assert_close(again.W_dec.norm(dim=1), torch.ones(64))
    assert again.stats == sae.stats and 0.3 < sae.stats["explained_variance"] <= 1 and sae.stats["l0"] <= 8
    assert again.metadata["training"]["documents"] == 60


def test_loading_the_demo_draws_no_progress_bar_and_restores_the_switch(capfd):
    from transformers.utils import logging

    import repwidget as rw

    assert logging.is_progress_bar_enabled()  # transformers' default: bars on
    rw.demo_model()
    out, err = capfd.readouterr()
    assert "Loading weights" not in err + out and "it/s]" not in err  # no tqdm bar above the explorer
    assert logging.is_progress_bar_enabled()  # the user's own loads still get their bars
    logging.disable_progress_bar()
    try:
        rw.demo_model()
        assert not logging.is_progress_bar_enabled()  # a user who turned them off keeps them off
    finally:
        logging.enable_progress_bar()
