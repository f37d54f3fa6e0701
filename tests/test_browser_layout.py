"""The explorer's layout, keyboard and busy state on a 1366x768 laptop in JupyterLab (file browser open): a click and
its effect on one screen, the selection never hidden, one column when the widget is narrow, head grids of 12 x 12
and 30 x 9 models that fit their panel, arrow keys that move the selection, and the busy state where it belongs."""

from __future__ import annotations

import json

import pytest
from browser import Kernel, chromium, end_sessions, notebook, open_and_run, screenshot
from ui_checks import hidden_by, scroll_to_top, settled

CELLS = [
    """import random
import repwidget as rw
from repwidget.demo import exercises
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
model = rw.demo_model()
ex = rw.explore(model, exercises.repeated_tokens(seed=1, length=10))
ex.select(token=15)
ex""",
    # a GPT-2-small-shaped grid (12 layers x 12 heads) on a 160-token prompt
    """words = rw.demo.vocabulary()[5:]
long_text = " ".join(random.Random(0).choices(words, k=160))
config = GPT2Config(vocab_size=len(model.tokenizer), n_positions=256, n_embd=96, n_layer=12, n_head=12)
big = rw.explore(rw.load(GPT2LMHeadModel(config).eval(), tokenizer=model.tokenizer), long_text)
big""",
    # a SmolLM2-shaped grid (30 layers x 9 heads, grouped-query attention)
    """config = LlamaConfig(vocab_size=len(model.tokenizer), hidden_size=72, intermediate_size=96, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=128)
deep = rw.explore(rw.load(LlamaForCausalLM(config).eval(), tokenizer=model.tokenizer), " ".join(words[:30]))
deep""",
]
#: what the widget's statuses and loading marks say while a click runs (a MutationObserver collects them)
RECORD = """(root) => {
  window.__rw_seen = [];
  const note = () => {
    for (const p of root.querySelectorAll('.rw-panel')) {
      const status = p.querySelector('[data-rw-status]').textContent;
      if (status) window.__rw_seen.push(p.getAttribute('aria-label') + ': ' + status);
    }
    const pending = root.querySelector('[data-rw-pending]');
    if (pending) window.__rw_seen.push('pending: ' + (pending.dataset.rwHead || pending.dataset.rwAblate));
  };
  new MutationObserver(note).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def laptop(lab):
    (lab.root / "layout.ipynb").write_text(json.dumps(notebook(CELLS)))
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        try:
            kernel_id = open_and_run(page, lab, "layout.ipynb", workspace="layout")
            page.locator(".rw-root").nth(2).locator("[data-rw-predictions] tr td").first.wait_for(timeout=240_000)
            kernel = Kernel(lab, kernel_id)
            try:
                yield page, kernel
            finally:
                kernel.close()
        finally:
            end_sessions(lab, "layout.ipynb")


def test_a_click_and_its_effect_on_one_laptop_screen_with_the_busy_state_where_it_happened(laptop):
    from playwright.sync_api import expect

    page, kernel = laptop
    page.set_viewport_size({"width": 1366, "height": 768})
    root = page.locator(".rw-root").first
    scroll_to_top(page, root)
    settled(root)
    head = root.locator('[data-rw-head="1.0"]')
    first_prediction = root.locator('[data-rw-column="intervened"] tr').nth(1)
    assert hidden_by(head) is None and hidden_by(first_prediction) is None, (
        hidden_by(head),
        hidden_by(first_prediction),
    )
    assert root.get_attribute("data-rw-layout") == "wide"
    root.evaluate(RECORD)
    head.click(modifiers=["Shift"])
    assert kernel.wait_for("print(ex.interventions)", "head=0").strip() == "[rw.Ablate(layer=1, head=0)]"
    expect(root.locator('[data-rw-column="clean"]')).to_have_count(1, timeout=30_000)
    settled(root)
    seen = page.evaluate("window.__rw_seen")
    assert "pending: 1.0" in seen and "Attention: running\u2026" in seen, seen  # where the click happened
    assert "Predictions: updating\u2026" in seen and "Logit lens: updating\u2026" in seen, seen  # what was stale
    assert root.locator("[data-rw-status]").all_inner_texts() == [""] * root.locator("[data-rw-status]").count()
    assert hidden_by(head) is None and hidden_by(root.locator('[data-rw-column="clean"] tr').nth(1)) is None
    screenshot(page, "layout-laptop-click-and-effect")
    kernel.run("ex.interventions = []")


def test_the_selected_token_and_lens_column_are_never_hidden(laptop):
    page, _kernel = laptop
    page.set_viewport_size({"width": 1366, "height": 768})
    big = page.locator(".rw-root").nth(1)
    scroll_to_top(page, big)
    settled(big)
    last = big.locator(".rw-token.rw-selected")  # the last of 161 tokens, selected by default
    assert last.get_attribute("data-rw-token") == "160" and hidden_by(last) is None, hidden_by(last)
    column = big.locator(".rw-lens-view th.rw-selected")
    assert column.get_attribute("data-rw-token") == "160" and hidden_by(column) is None, hidden_by(column)
    big.locator('.rw-token[data-rw-token="3"]').click()  # the lens follows a selection far to the left
    settled(big)
    column = big.locator('.rw-lens-view th[data-rw-token="3"]')
    assert "rw-selected" in column.get_attribute("class") and hidden_by(column) is None, hidden_by(column)
    tokens = big.locator(".rw-token-line")
    assert tokens.evaluate("(el) => el.scrollWidth <= el.clientWidth + 1")  # the tokens wrap; none runs off the side
    screenshot(page, "layout-long-prompt-selection-in-view")


@pytest.mark.parametrize("index, shape", [(1, (12, 12)), (2, (30, 9))], ids=["12x12", "30x9"])
def test_the_head_grid_fits_its_panel(laptop, index, shape):
    page, _ = laptop
    page.set_viewport_size({"width": 1366, "height": 768})
    root = page.locator(".rw-root").nth(index)
    scroll_to_top(page, root)
    layers, heads = shape
    assert root.locator("[data-rw-head]").count() == layers * heads
    panel = root.locator(".rw-attention-view")
    box, grid = panel.bounding_box(), panel.locator(".rw-head-grid").bounding_box()
    assert grid["x"] + grid["width"] <= box["x"] + box["width"], (grid, box)  # all heads across, none cut off
    assert panel.evaluate("(el) => el.scrollWidth <= el.clientWidth + 1")
    thumb = panel.locator(".rw-thumb").first.bounding_box()
    assert 12 <= thumb["width"] <= 36
    if layers == 30:  # the 30 layers fit about a laptop screen's height: thumbnails shrank, scores went to the labels
        assert grid["height"] < 650, grid
        assert panel.locator(".rw-head-grid").get_attribute("data-rw-scores") == "off"
        assert panel.locator('[data-rw-head="17.3"]').get_attribute("aria-label").startswith("head 17.3, ")
        last = panel.locator('[data-rw-head="29.8"]')  # the grid's far corner: its pattern is on the same screen
        last.scroll_into_view_if_needed()
        last.click()
        pattern = panel.locator("canvas[data-rw-pattern='29.8']")
        pattern.wait_for(timeout=30_000)
        assert hidden_by(last) is None and hidden_by(pattern) is None, (hidden_by(last), hidden_by(pattern))
        lens = root.locator(".rw-lens-scroll").bounding_box()  # a 30-row lens scrolls: the predictions stay close
        assert lens["height"] <= 341, lens
    screenshot(page, f"layout-head-grid-{layers}x{heads}")


def test_one_column_when_the_widget_is_narrow(laptop):
    page, _ = laptop
    page.set_viewport_size({"width": 1000, "height": 768})  # the file browser open: the widget is narrower still
    root = page.locator(".rw-root").first
    scroll_to_top(page, root)  # JupyterLab lays out cells out of view only when they come into view
    page.wait_for_function("(el) => el.dataset.rwLayout === 'narrow'", arg=root.element_handle(), timeout=10_000)
    settled(root)
    screenshot(page, "layout-narrow-1000px")
    attention = root.locator(".rw-attention-view").bounding_box()
    predictions = root.locator(".rw-predictions-view").bounding_box()
    neurons = root.locator(".rw-neurons-view").bounding_box()
    assert predictions["y"] > attention["y"] + attention["height"] - 1  # below the attention view, not beside it
    assert neurons["y"] > predictions["y"]  # the effects come right after what you click
    lens = root.locator(".rw-lens-view").bounding_box()
    later = root.evaluate(
        "(el) => [...el.querySelectorAll('.rw-cols .rw-panel')].map(p => [p.className, p.getBoundingClientRect().y])"
    )
    first = ("rw-attention-view", "rw-predictions-view", "rw-lens-view")
    others = [(name, y) for name, y in later if not any(f in name for f in first)]
    assert any("rw-attribution-view" in name for name, _ in others), later
    assert all(y > lens["y"] for _, y in others), later  # attribution and the rest after attention and its effects
    assert abs(predictions["width"] - attention["width"]) < 2
    wider = root.evaluate(
        "(el) => [...el.querySelectorAll('*')]"
        ".filter(e => e.getBoundingClientRect().right > el.getBoundingClientRect().right + 1)"
        ".slice(0, 5).map(e => e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
    )
    assert not wider, wider  # nothing runs past the widget's side
    pattern = root.locator(".rw-pattern").bounding_box()
    assert pattern["x"] + pattern["width"] <= attention["x"] + attention["width"]
    page.set_viewport_size({"width": 1366, "height": 768})


def test_arrow_keys_move_the_selection_in_the_tokens_the_lens_and_the_pattern(laptop):
    from playwright.sync_api import expect

    page, kernel = laptop
    page.set_viewport_size({"width": 1366, "height": 768})
    root = page.locator(".rw-root").first
    scroll_to_top(page, root)
    kernel.run("ex.select(token=15, layer=0)")
    expect(root.locator('.rw-token[data-rw-token="15"]')).to_have_attribute("tabindex", "0", timeout=30_000)
    root.locator('.rw-token[data-rw-token="15"]').focus()
    page.keyboard.press("ArrowLeft")
    assert kernel.wait_for("print(ex.selection['token'])", "14").strip() == "14"
    expect(root.locator(".rw-predictions-view")).to_contain_text("position 14", timeout=30_000)
    cell = root.locator('.rw-lens-view td[tabindex="0"]')
    expect(cell).to_have_attribute("data-rw-token", "14", timeout=30_000)
    cell.focus()
    page.keyboard.press("ArrowUp")  # a later layer
    page.keyboard.press("ArrowRight")
    state = kernel.wait_for("print(ex.selection['token'], ex.selection['layer'])", "15 1")
    assert state.strip() == "15 1"
    canvas = root.locator("canvas[data-rw-pattern]")
    canvas.focus()
    page.keyboard.press("ArrowUp")  # the query (the selected token) up one
    page.keyboard.press("ArrowLeft")  # the key cursor left of the query
    assert kernel.wait_for("print(ex.selection['token'])", "14").strip() == "14"
    expect(root.locator(".rw-attention-view .rw-info")).to_contain_text("query 14", timeout=30_000)
    expect(root.locator(".rw-attention-view .rw-info")).to_contain_text("key 13")
    grid_head = root.locator('[data-rw-head="0.0"]')
    kernel.run("ex.select(head=(0, 0))")
    expect(grid_head).to_have_attribute("tabindex", "0", timeout=30_000)
    grid_head.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    state = kernel.wait_for("print(ex.selection['head_layer'], ex.selection['head'])", "1 1")
    assert state.strip() == "1 1"
    page.keyboard.press("Shift+Enter")  # and the keyboard's intervening gesture
    assert kernel.wait_for("print(ex.interventions)", "head=1").strip() == "[rw.Ablate(layer=1, head=1)]"
    kernel.run("ex.interventions = []")
