"""The shipped demo model: its tasks, its induction head, a linear sentiment direction (on the shipped weights)."""

from __future__ import annotations

import random

import pytest
import torch

import repwidget as rw
from repwidget.demo import tasks
from repwidget.demo.evaluate import accuracy


@pytest.fixture(scope="module")
def demo():
    return rw.demo_model()


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


#: tasks the shipped weights have learned; induction is not there yet (its circuit needs a better recipe)
LEARNED = ("ioi", "sentiment", "cycles", "agreement", "facts")


@pytest.mark.parametrize("task", LEARNED)
def test_learned_tasks_reach_90_percent(demo, task):
    score = accuracy(demo.hf, demo.tokenizer, task, n=100)
    print(f"{task}: held-out top-1 accuracy {score:.3f}")
    assert score >= 0.9


def _last_token_resid(model, examples, layer):
    return torch.stack(
        [model.run(e.text, capture=f"blocks.{layer}.hook_resid_post")[f"blocks.{layer}.hook_resid_post"][-1]
         for e in examples]
    )  # fmt: skip


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-2):
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda x_new: (((x_new - mean) / std) @ w + b).detach() > 0


def test_sentiment_is_linearly_readable(demo):
    train = tasks.dataset("sentiment", 100, seed=0)
    seen = {e.text for e in train}
    test = [e for e in tasks.dataset("sentiment", 100, seed=1) if e.text not in seen]
    y_train = torch.tensor([e.target == "positive" for e in train], dtype=torch.float32)
    y_test = torch.tensor([e.target == "positive" for e in test])
    best = 0.0
    for layer in range(demo.n_layers):
        predict = _fit_logistic(_last_token_resid(demo, train, layer), y_train)
        acc = (predict(_last_token_resid(demo, test, layer)) == y_test).float().mean().item()
        print(f"sentiment probe, layer {layer}: held-out accuracy {acc:.3f} on {len(test)} texts")
        best = max(best, acc)
    assert best >= 0.95


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

    a = train(steps=3, batch_size=8, lr=1e-3, seed=5, out=tmp_path / "a", evaluate=False)
    b = train(steps=3, batch_size=8, lr=1e-3, seed=5, out=tmp_path / "b", evaluate=False)
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
