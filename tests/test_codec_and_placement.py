"""The tensor codec for the front end, and where tensors are placed."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.placement import like, to_host
from repwidget.views.codec import decode, decode_rows, encode, encode_rows

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


def test_a_set_of_rows_travels_as_a_bitset_and_anything_malformed_is_refused():
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(20_000, 5_000, replace=False))
    wire = encode_rows(rows, 20_000)
    np.testing.assert_array_equal(decode_rows(wire, 20_000), rows)
    # 5,000 points of 20,000 shown: 2,500 bytes of bits (3,336 of base64) where their [text, position] pairs as JSON
    # were ~60 KB; the bound is the bitset's, whatever the lasso holds
    assert len(json.dumps(wire)) <= 4 * (20_000 // 8) // 3 + 40
    assert len(json.dumps(encode_rows(np.arange(5_000), 5_000))) <= 4 * (5_000 // 8) // 3 + 40
    for n in (0, 1, 7, 8, 9):  # partial last bytes, and nothing at all
        for chosen in ([], list(range(n)), list(range(0, n, 2))):
            assert decode_rows(encode_rows(chosen, n), n).tolist() == chosen
    good = encode_rows([1, 3], 10)
    for bad, message in [
        ([[0, 1]], "must be"),
        ({"n": 10}, "must be"),
        ({**good, "extra": 1}, "must be"),
        ({"n": 10, "bits": 5}, "must be"),
        ({**good, "n": 11}, "among 11 rows; there are 10"),
        ({**good, "n": True}, "among True rows"),
        ({**good, "bits": "!!!!"}, "not valid base64"),
        ({**good, "bits": base64.b64encode(b"\x01").decode()}, "1 bytes of bits for 10 rows; expected 2"),
        ({**good, "bits": base64.b64encode(b"\x00\x04").decode()}, "bits set past row 9"),  # row 10 of 10
    ]:
        with pytest.raises(ValueError, match=message):
            decode_rows(bad, 10)


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
