"""The tensor codec for the front end, and where tensors are placed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.placement import like, to_host
from repwidget.views.codec import decode, encode

from conftest import ids


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t,
        lambda t: t.T,  # non-contiguous
        lambda t: t[1:, ::2],  # sliced with a step
        lambda t: t[2],  # a row of a larger storage, non-zero offset
        lambda t: t.unsqueeze(0).expand(3, -1, -1),  # stride 0
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(make, dtype):
    base = torch.randn(5, 6) * 10
    tensor = make(base)
    message = encode(tensor, dtype)
    assert message["dtype"] == dtype and message["shape"] == list(tensor.shape)
    assert isinstance(message["buffer"], memoryview)
    assert len(message["buffer"]) == tensor.numel() * (4 if dtype == "float32" else 2)
    back = decode(message)
    expected = tensor.numpy().astype(dtype)
    np.testing.assert_array_equal(back, expected)


def test_bfloat16_and_numpy_inputs():
    t = torch.randn(3, 4).to(torch.bfloat16)
    np.testing.assert_array_equal(decode(encode(t)), t.float().numpy())
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    np.testing.assert_array_equal(decode(encode(a, "int32")), a)


def test_codec_errors():
    with pytest.raises(ValueError, match="dtype"):
        encode(torch.ones(2), "float64")
    with pytest.raises(TypeError):
        encode([1.0, 2.0])
    with pytest.raises(ValueError, match="needs"):
        decode({"dtype": "float32", "shape": [3], "buffer": b"\0" * 8})
    with pytest.raises(ValueError, match="dtype, shape and buffer"):
        decode({"dtype": "float32"})


def test_like_places_values_next_to_the_activation():
    value = torch.ones(4)
    activation = torch.empty(2, 4, device="meta", dtype=torch.float16)
    placed = like(value, activation)
    assert placed.device.type == "meta" and placed.dtype == torch.float16
    same = torch.zeros(4)
    assert like(same, torch.zeros(1, 4)) is same


def test_to_host_detaches_to_cpu():
    t = torch.ones(3, requires_grad=True)
    host = to_host(t * 2)
    assert host.device.type == "cpu" and not host.requires_grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_interventions_follow_the_model_dtype(hf_models, dtype):
    import copy

    hf = copy.deepcopy(hf_models["llama"])
    model = rw.load(hf, dtype=dtype)
    run = model.run(ids(6), [rw.Steer(1, torch.ones(model.d_model)), rw.Ablate(2, head=1, mode="zero")])
    assert run.logits.dtype == dtype and run["blocks.1.hook_resid_post"].dtype == dtype
    message = encode(run["blocks.1.attn.hook_pattern"], "float16")
    assert decode(message).shape == (4, 6, 6)


def test_instance_forward_wrappers_are_kept(hf_models):
    """accelerate's device_map puts a wrapper on module.forward; reruns must use and restore it."""
    hf = hf_models["gpt2"]
    model = rw.load(hf)
    clean = model.run(ids(6))
    calls = []
    blocks = hf.transformer.h
    for i, block in enumerate(blocks):
        original = block.forward

        def wrapper(*args, _original=original, _i=i, **kwargs):
            calls.append(_i)
            return _original(*args, **kwargs)

        block.forward = wrapper
    wrappers = [block.__dict__["forward"] for block in blocks]
    try:
        rerun = clean.rerun(rw.Ablate(2, head=0))
        assert calls == [2, 3]
        assert [block.__dict__["forward"] for block in blocks] == wrappers
        torch.testing.assert_close(rerun.logits, model.run(ids(6), rw.Ablate(2, head=0)).logits)
    finally:
        for block in blocks:
            del block.forward
