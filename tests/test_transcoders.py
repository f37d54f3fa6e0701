"""Transcoders: the contract (maths against plain torch written out here), files in circuit-tracer's and SAELens's
formats (round trips, a circuit-tracer directory written by hand, bad files), training and quality."""

from __future__ import annotations

import pytest
import torch

import repwidget as rw

D, F, N = 8, 16, 3  # d_model, features, layers


def _weights(seed: int, layer: int = 0, **extra) -> rw.Transcoder:
    g = torch.Generator().manual_seed(seed)
    return rw.Transcoder(layer, torch.randn(F, D, generator=g), torch.randn(F, generator=g) * 0.5,
                         torch.randn(F, D, generator=g), torch.randn(D, generator=g), **extra)  # fmt: skip


def test_transcoder_maths_equals_the_formulas() -> None:
    x = torch.randn(5, D, generator=torch.Generator().manual_seed(9))
    relu = _weights(0)
    pre = x @ relu.W_enc.T + relu.b_enc
    torch.testing.assert_close(relu.pre(x), pre)
    torch.testing.assert_close(relu(x), torch.relu(pre) @ relu.W_dec + relu.b_dec)

    threshold = torch.rand(F, generator=torch.Generator().manual_seed(1))
    jump = _weights(0, threshold=threshold)
    torch.testing.assert_close(jump.encode(x), pre * (pre > threshold))

    topk = _weights(0, k=3)
    acts = topk.encode(x)
    for row, p in zip(acts, pre, strict=True):  # a brute-force top-3 of the positive pre-activations
        keep = sorted(range(F), key=lambda i: -p[i].item())[:3]
        expected = torch.zeros(F)
        expected[keep] = p[keep].clamp_min(0)
        torch.testing.assert_close(row, expected)

    skip = torch.randn(D, D, generator=torch.Generator().manual_seed(2))
    skipped = _weights(0, W_skip=skip)
    torch.testing.assert_close(skipped(x), torch.relu(pre) @ skipped.W_dec + skipped.b_dec + x @ skip.T)
    torch.testing.assert_close(skipped.decode(relu.encode(x)), relu(x))  # no x: no skip


def test_transcoder_set_and_cross_layer_transcoder() -> None:
    ts = rw.TranscoderSet([_weights(i, layer=i) for i in range(N)])
    assert len(ts) == N and [t.layer for t in ts] == list(range(N)) and ts[2].layer == 2
    assert ts[1].hook_in == "blocks.1.mlp.hook_in" and ts[1].hook_out == "blocks.1.hook_mlp_out"
    with pytest.raises(ValueError, match=r"every layer 0\.\.n-1"):
        rw.TranscoderSet([_weights(0, layer=0), _weights(1, layer=2)])

    g = torch.Generator().manual_seed(4)
    w_enc, b_enc = torch.randn(N, F, D, generator=g), torch.randn(N, F, generator=g)
    w_dec = [torch.randn(F, N - layer, D, generator=g) for layer in range(N)]
    b_dec = torch.randn(N, D, generator=g)
    clt = rw.CrossLayerTranscoder(w_enc, b_enc, w_dec, b_dec)
    xs = [torch.randn(4, D, generator=g) for _ in range(N)]
    acts = [torch.relu(xs[s] @ w_enc[s].T + b_enc[s]) for s in range(N)]
    for target in range(N):  # each layer's output: every earlier layer's features through its decoder to it
        expected = b_dec[target] + sum(acts[s] @ w_dec[s][:, target - s] for s in range(target + 1))
        torch.testing.assert_close(clt.decode_to(target, acts), expected)
        torch.testing.assert_close(clt(xs)[target], expected)


def test_the_contract_refuses_bad_weights_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"b_dec has shape \(7,\), expected \(8,\)"):
        rw.Transcoder(0, torch.zeros(F, D), torch.zeros(F), torch.zeros(F, D), torch.zeros(7))
    with pytest.raises(ValueError, match=r"k \(TopK\) or a threshold"):
        _weights(0, k=2, threshold=torch.zeros(F))
    with pytest.raises(ValueError, match="input_hook must be one of"):
        _weights(0, input_hook="mlp.hook_inn")


def test_check_fits_the_demo_model(demo) -> None:
    ts = rw.TranscoderSet([rw.Transcoder(i, torch.zeros(4, 128), torch.zeros(4), torch.zeros(4, 128),
                                         torch.zeros(128)) for i in range(4)])  # fmt: skip
    ts.check_fits(demo)
    with pytest.raises(ValueError, match="has 3 layers but the model has 4"):
        rw.TranscoderSet(list(ts)[:3]).check_fits(demo)
    narrow = rw.TranscoderSet([_weights(i, layer=i) for i in range(4)])
    with pytest.raises(ValueError, match="reads width 8 but the model's d_model is 128"):
        narrow.check_fits(demo)
