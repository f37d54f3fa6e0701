"""The projector in a real JupyterLab under headless Chromium, with 20,000 dataset points: move the layer from the
view's slider, click a prompt token's point, drag a lasso (sent to the kernel as a bitset, its points marked, its
average shown by the predictions), and read the selection back in the kernel; and notebook 04's twelve months: points
as large as the prompt's, in the side column, every hue readable in both themes."""

from __future__ import annotations

import json
import re
import statistics

import pytest
from browser import notebook_page, screenshot
from ui_checks import ratio, set_theme

CELLS = [
    """import repwidget as rw
model = rw.demo_model()
tasks = ("sentiment", "ioi", "induction")
points = [(e.text, t) for seed in (0, 1) for t in tasks for e in rw.demo.dataset(t, 400, seed=seed)]
jx = rw.explore(model, "review : the film was superb .", points=points)
jx""",
    """from repwidget.demo.tasks import MONTHS
px = rw.explore(model, "two months after march is", points=[(m, m) for m in MONTHS])
px""",
]


@pytest.fixture(scope="module")
def lab_page(lab):
    # the first answer reads 20,000 tokens of the texts at every layer: minutes on a loaded CPU
    ready = ".rw-projector-view canvas[data-rw-prompt-points]"
    with notebook_page(lab, "projector.ipynb", CELLS, ready, height=1600, timeout=600_000) as opened:
        yield opened


def _separated(points: list[list[float]]) -> int:
    """The prompt point farthest from every other (a click there can only mean it)."""

    def gap(i: int) -> float:
        return min((points[i][0] - p[0]) ** 2 + (points[i][1] - p[1]) ** 2 for j, p in enumerate(points) if j != i)

    return max(range(len(points)), key=gap)


def test_the_layer_moves_the_projector_and_a_click_selects_a_token(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    view = page.locator(".rw-projector-view").first
    view.scroll_into_view_if_needed()
    n_prompt = int(kernel.run("print(len(jx.run.token_ids))"))
    # 20,000 of the texts' tokens + the prompt's (waited for: under load the view may still be repainting)
    expect(view).to_have_attribute("data-rw-points", str(20_000 + n_prompt), timeout=120_000)
    times = []
    for layer in (1, 2, 3, 0, 2, 1, 3):
        view.locator("[data-rw-projector-layer]").fill(str(layer))
        expect(view).to_have_attribute("data-rw-layer-shown", str(layer), timeout=60_000)
        kernel.wait_for("print(jx.selection['layer'])", str(layer))
        times.append(float(view.get_attribute("data-rw-paint-ms")))
    print(f"layer change to repaint, {20_000 + n_prompt} points: median {statistics.median(times):.0f} ms, all {times}")
    # every view follows the layer: the lens's selected cell is in layer 3's row
    expect(page.locator(".rw-root").first.locator(".rw-lens td.rw-selected")).to_have_attribute("data-rw-layer", "3")

    canvas = view.locator("canvas.rw-projector")
    expect(canvas).to_have_attribute("data-rw-prompt-points", re.compile("."), timeout=120_000)
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


# In the kernel: which points lie inside the convex polygon POLY (canvas pixels, through the browser's FRAME), from
# the kernel's own coordinates at the layer; points within half a pixel of an edge are left out of the comparison.
CHECK_LASSO = """
import json, numpy as np
_a = jx.session.answer("projector", {"layer": jx.selection["layer"], "colour": 0, "feature": 0})
_f, _poly = FRAME, np.array(POLY, dtype=float)
_xy = _a["xy"].double().numpy()
_p = np.stack([_f["x0"] + _xy[:, 0] * _f["scale"], _f["y0"] - _xy[:, 1] * _f["scale"]], 1)
_e = np.roll(_poly, -1, 0) - _poly
_d = (_e[:, 0] * (_p[:, None, 1] - _poly[:, 1]) - _e[:, 1] * (_p[:, None, 0] - _poly[:, 0])) / np.hypot(*_e.T)
_d *= np.sign(_d.sum())  # the polygon's orientation: inside is where every edge's distance has that sign
_inside, _near = (_d > 0.5).all(1), ((_d > -0.5).all(1) & ~(_d > 0.5).all(1))
_n = _a["n_prompt"]
_key = [("p", i) if i < _n else ("t", int(_a["text"][i - _n]), int(_a["pos"][i - _n])) for i in range(len(_p))]
_want = {_key[i] for i in np.flatnonzero(_inside)}
_fuzzy = {_key[i] for i in np.flatnonzero(_near)}
_got = {("p", t) for t in jx.selection["tokens"]} | {("t", t, q) for t, q in jx.selection["points"]}
print(json.dumps({"want": len(_want), "got": len(_got), "prompt": len(jx.selection["tokens"]), "near": len(_fuzzy),
                  "missing": len(_want - _got), "extra": len(_got - _want - _fuzzy)}))
"""


def test_a_lasso_drag_selects_the_points_inside_it(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    view = page.locator(".rw-projector-view").first
    view.scroll_into_view_if_needed()
    canvas = view.locator("canvas.rw-projector")
    expect(canvas).to_have_attribute("data-rw-prompt-points", re.compile("."), timeout=120_000)
    points = json.loads(canvas.get_attribute("data-rw-prompt-points"))
    kernel.run(RECORD)
    drawn = int(view.get_attribute("data-rw-layer-shown"))
    # a diamond around the prompt's point nearest the canvas's middle (where most of the texts' points are)
    cx, cy = min(points, key=lambda p: (p[0] - 210) ** 2 + (p[1] - 160) ** 2)
    poly = [[cx, cy - 40], [cx + 50, cy], [cx, cy + 40], [cx - 50, cy]]
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + poly[0][0], box["y"] + poly[0][1])
    page.mouse.down()
    for x, y in [*poly[1:], poly[0]]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        page.wait_for_timeout(100)  # a frame at each corner: a busy page coalesces moves, and a corner lost cuts it
    page.mouse.up()
    kernel.wait_for("print(len(jx.selection['points']) > 0)", "True")
    frame = json.loads(canvas.get_attribute("data-rw-frame"))
    check = CHECK_LASSO.replace("FRAME", json.dumps(frame)).replace("POLY", json.dumps(poly))
    result = json.loads(kernel.run(check).strip().splitlines()[-1])
    print(f"lasso: {result}")
    assert result["missing"] == 0 and result["extra"] == 0, result
    assert result["got"] >= result["want"] > 20 and result["prompt"] >= 1, result
    # the kernel got the texts' points as a bitset over the shown rows (2,500 bytes for 20,000), not as pairs
    raw = json.loads(kernel.run("print(_raw[-1])"))
    assert set(raw) == {"n", "bits"} and raw["n"] == 20_000 and len(json.dumps(raw)) < 3_400, raw
    lassoed = json.loads(kernel.run("print(json.dumps(jx.selection['tokens']))"))
    marked = page.locator(".rw-root").first.locator(".rw-tokens-view .rw-token.rw-lassoed")
    expect(marked).to_have_count(len(lassoed))
    assert [int(m.get_attribute("data-rw-token")) for m in marked.all()] == lassoed
    # what is drawn emphasised is what the kernel holds, the outline stays, and the line says so
    texts_in = result["got"] - result["prompt"]
    expect(canvas).to_have_attribute("data-rw-marked", f"{len(lassoed)},{texts_in}")
    expect(canvas).to_have_attribute("data-rw-outline", "true")
    expect(view.locator("[data-rw-projector-lasso]")).to_contain_text(
        f"lasso: {len(lassoed)} of the prompt's tokens, {texts_in} of the texts' points"
    )
    # the predictions average over the lassoed tokens, and say so
    over = page.locator(".rw-predictions-view [data-rw-lasso-over]").first
    expect(over).to_contain_text(f"mean next-token probability over {len(lassoed)} lassoed token")
    expect(over.locator("[data-rw-column]").first).to_be_visible()
    screenshot(view, "projector-lasso")
    # the layer still moves with a lasso of thousands of points in the selection, and the lasso stays
    times = []
    for layer in (2, 1, 3):
        view.locator("[data-rw-projector-layer]").fill(str(layer))
        expect(view).to_have_attribute("data-rw-layer-shown", str(layer), timeout=60_000)
        times.append(float(view.get_attribute("data-rw-paint-ms")))
    kernel.wait_for("print(jx.selection['layer'])", "3")
    assert json.loads(kernel.run("print(json.dumps(jx.selection['tokens']))")) == lassoed
    assert int(kernel.run("print(len(jx.selection['points']))")) == result["got"] - result["prompt"]
    print(f"layer change to repaint with {result['got']} points lassoed: {times} ms")
    # the outline belongs to the layer it was drawn at (the points move at another; they stay marked)
    expect(canvas).to_have_attribute("data-rw-outline", str(drawn == 3).lower())
    expect(canvas).to_have_attribute("data-rw-marked", f"{len(lassoed)},{texts_in}")
    # from Python: clearing the lasso clears the marks
    kernel.run("jx.select(tokens=[], points=[])")
    expect(marked).to_have_count(0)
    expect(canvas).to_have_attribute("data-rw-lassoed", "0,0")
    expect(canvas).to_have_attribute("data-rw-marked", "0,0")
    expect(over).to_be_hidden()
    assert not errors, errors


# In the kernel: record what the browser sends as the lasso's points (to check that it is the compact bitset)
RECORD = """
import json
_raw, _set_state = [], jx.set_state
def _recording(sync_data):
    if "selection" in sync_data:
        _raw.append(json.dumps(sync_data["selection"].get("points")))
    return _set_state(sync_data)
jx.set_state = _recording
"""

# In the page: the canvas's pixels of each legend colour, each swatch's colour and the panel's background
PIXELS = """(view) => {
  const canvas = view.querySelector("canvas.rw-projector");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const rgb = (text) => text.match(/\\d+/g).slice(0, 3).map(Number);
  const swatches = [...view.querySelectorAll(".rw-swatch")].map((s) => rgb(getComputedStyle(s).backgroundColor));
  const counts = swatches.map(([r, g, b]) => {
    let n = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b) n++;
    return n;
  });
  let el = view, background = "rgba(0, 0, 0, 0)";
  while (el && /rgba\\(.*, 0\\)|transparent/.test(background)) {
    background = getComputedStyle(el).backgroundColor;
    el = el.parentElement;
  }
  return { swatches, counts, background: rgb(background) };
}"""


def test_a_dozen_months_are_large_points_beside_the_predictions_and_every_hue_reads_in_both_themes(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").nth(1)
    view = root.locator(".rw-projector-view")
    canvas = view.locator("canvas.rw-projector")
    expect(canvas).to_have_attribute("data-rw-prompt-points", re.compile("."), timeout=120_000)
    # in the side column, under the predictions: near the widget's top, not below every view of the main column
    expect(root.locator(".rw-side .rw-projector-view")).to_have_count(1)
    top = view.evaluate("(v) => v.getBoundingClientRect().top - v.closest('.rw-root').getBoundingClientRect().top")
    assert top < 900, top
    # twelve points: as large as the prompt's (4.5 px radius), each month's hue a disc of pixels on the canvas
    expect(canvas).to_have_attribute("data-rw-point-radius", "4.50")
    for theme in ("JupyterLab Dark", "JupyterLab Light"):
        set_theme(page, theme)
        view.scroll_into_view_if_needed()
        seen = view.evaluate(PIXELS)
        assert len(seen["swatches"]) == 13, seen  # twelve months and the prompt
        for colour, count in zip(seen["swatches"][:12], seen["counts"][:12], strict=True):
            assert count >= 25, (theme, colour, count)  # a 4.5 px disc has about 60 pixels; a 2-3 px dot under 10
            assert ratio(colour, seen["background"]) >= 3, (theme, colour, seen["background"])
        screenshot(view, f"projector-months-{theme.split()[-1].lower()}")
    # a lasso round the left half: the months inside it are ringed, and the line counts what the kernel holds
    box = canvas.bounding_box()
    corners = [(4, 4), (210, 4), (210, 316), (4, 316), (4, 6)]
    page.mouse.move(box["x"] + corners[0][0], box["y"] + corners[0][1])
    page.mouse.down()
    for x, y in corners[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        page.wait_for_timeout(100)
    page.mouse.up()
    kernel.wait_for("print(len(px.selection['points']) > 0)", "True")
    held = kernel.run("import json; print(json.dumps([len(px.selection['tokens']), len(px.selection['points'])]))")
    held = json.loads(held)
    expect(canvas).to_have_attribute("data-rw-marked", f"{held[0]},{held[1]}")
    expect(view.locator("[data-rw-projector-lasso]")).to_contain_text(
        f"lasso: {held[0]} of the prompt's tokens, {held[1]} of the texts' points (ringed)"
    )
    screenshot(view, "projector-months-lasso")
    kernel.run("px.select(tokens=[], points=[])")
    expect(canvas).to_have_attribute("data-rw-marked", "0,0")
    assert not errors, errors
