"""rw.Skip: a block bypassed equals the Hugging Face forward with that block's output replaced by its input."""

from __future__ import annotations

import json

import pytest
import torch

import repwidget as rw
from repwidget.interventions import from_json, to_json

from conftest import CAUSAL, build, ids


def _hand_skip(hf: torch.nn.Module, blocks: torch.nn.ModuleList, layer: int, x: list[int]) -> torch.Tensor:
    """The model's own forward with block ``layer``'s output replaced by its input (a plain HF hook)."""
    seen = {}

    def pre(module, args, kwargs):
        seen["input"] = args[0] if args else kwargs["hidden_states"]

    def post(module, args, output):
        if isinstance(output, tuple):
            return (seen["input"], *output[1:])
        return seen["input"]

    handles = [
        blocks[layer].register_forward_pre_hook(pre, with_kwargs=True),
        blocks[layer].register_forward_hook(post),
    ]
    try:
        with torch.no_grad():
            return hf(torch.tensor([x])).logits[0]
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("name", CAUSAL)
def test_skip_equals_a_hand_run_forward_with_the_block_bypassed(name):
    hf = build(name)
    model = rw.load(hf)
    blocks = hf.get_submodule(model.arch.blocks)
    x = ids(9)
    base = model.run(x)
    for layer in (0, 2):
        skipped = model.run(x, rw.Skip(layer))
        expected = _hand_skip(hf, blocks, layer, model.to_ids(x))
        torch.testing.assert_close(skipped.logits, expected, atol=1e-5, rtol=0)
        assert not torch.allclose(skipped.logits, base.logits, atol=1e-3)
        torch.testing.assert_close(
            skipped[f"blocks.{layer}.hook_resid_post"], skipped[f"blocks.{layer}.hook_resid_pre"], atol=0, rtol=0
        )
        # a rerun from the clean run (blocks before reused) and a batch give the same
        torch.testing.assert_close(base.rerun(rw.Skip(layer)).logits, expected, atol=1e-5, rtol=0)
    runs = model.run_batch([x, ids(5, seed=3)], rw.Skip(1))
    torch.testing.assert_close(runs[0].logits, model.run(x, rw.Skip(1)).logits, atol=1e-5, rtol=0)
    # one sequence of a batch skips, the other does not
    one, other = model.rerun_batch(base, [[rw.Skip(1)], [rw.Ablate(3, head=0)]])
    torch.testing.assert_close(one.logits, model.run(x, rw.Skip(1)).logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(other.logits, model.run(x, rw.Ablate(3, head=0)).logits, atol=1e-5, rtol=0)


def test_skip_json_repr_and_errors():
    model = rw.load(build("gpt2"))
    iv = rw.Skip(2)
    assert from_json(json.loads(json.dumps(to_json(iv)))) == iv
    assert to_json(iv) == {"type": "skip", "layer": 2}
    assert repr(iv) == "rw.Skip(layer=2)" and eval(repr(iv), {"rw": rw}) == iv
    assert iv.label() == "skip block 2" and iv.hook == "blocks.2.hook_resid_post"
    with pytest.raises(ValueError, match=r"layer 4 is out of range; this model has layers 0\.\.3"):
        model.run(ids(5), rw.Skip(4))
    with pytest.raises(ValueError, match="layer -1 is out of range"):
        model.run(ids(5), rw.Skip(-1))
    with pytest.raises(TypeError, match="layer must be an int"):
        rw.Skip("1")
    with pytest.raises(ValueError, match="malformed Skip"):
        from_json({"type": "skip"})
