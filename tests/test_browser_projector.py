"""The projector in a real JupyterLab under headless Chromium, with 20,000 dataset points: move the layer from the
view's slider, click a prompt token's point, and read the selection back in the kernel."""

from __future__ import annotations

import json
import statistics

import pytest
from browser import notebook_page, screenshot

CELLS = [
    """import repwidget as rw
model = rw.demo_model()
tasks = ("sentiment", "ioi", "induction")
points = [(e.text, t) for seed in (0, 1) for t in tasks for e in rw.demo.dataset(t, 400, seed=seed)]
jx = rw.explore(model, "review : the film was superb .", points=points)
jx""",
]


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    # the first answer reads 20,000 tokens of the texts at every layer: minutes on a loaded CPU
    ready = ".rw-projector-view canvas[data-rw-prompt-points]"
    with notebook_page(root, "projector.ipynb", CELLS, ready, height=1600, timeout=600_000) as opened:
        yield opened


def _separated(points: list[list[float]]) -> int:
    """The prompt point farthest from every other (a click there can only mean it)."""

    def gap(i: int) -> float:
        return min((points[i][0] - p[0]) ** 2 + (points[i][1] - p[1]) ** 2 for j, p in enumerate(points) if j != i)

    return max(range(len(points)), key=gap)


def test_the_layer_moves_the_projector_and_a_click_selects_a_token(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    view = page.locator(".rw-projector-view")
    view.scroll_into_view_if_needed()
    n_prompt = int(kernel.run("print(len(jx.run.token_ids))"))
    assert view.get_attribute("data-rw-points") == str(20_000 + n_prompt)  # 20,000 of the texts' tokens + the prompt's
    times = []
    for layer in (1, 2, 3, 0, 2, 1, 3):
        view.locator("[data-rw-projector-layer]").fill(str(layer))
        expect(view).to_have_attribute("data-rw-layer-shown", str(layer), timeout=60_000)
        kernel.wait_for("print(jx.selection['layer'])", str(layer))
        times.append(float(view.get_attribute("data-rw-paint-ms")))
    print(f"layer change to repaint, {20_000 + n_prompt} points: median {statistics.median(times):.0f} ms, all {times}")
    # every view follows the layer: the lens's selected cell is in layer 3's row
    expect(page.locator(".rw-lens td.rw-selected")).to_have_attribute("data-rw-layer", "3")

    canvas = view.locator("canvas.rw-projector")
    points = json.loads(canvas.get_attribute("data-rw-prompt-points"))
    target = _separated(points)
    if target == json.loads(kernel.run("print(jx.selection['token'])")):
        target = _separated([p if i != target else [1e9, 1e9] for i, p in enumerate(points)])
    canvas.click(position={"x": points[target][0], "y": points[target][1]})
    assert kernel.wait_for("print(jx.selection['token'])", str(target)).strip() == str(target)
    expect(view.locator("[data-rw-projector-info]")).to_contain_text(f"prompt position {target}")
    expect(canvas).to_have_attribute("data-rw-selected-point", str(target))
    screenshot(view, "projector")
    assert not errors, errors
