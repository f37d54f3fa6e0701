"""Issue 29's text views in a real JupyterLab under headless Chromium: the continuation's two columns wrap side by
side with the first difference marked where Python's token lists first differ; the attribution view picks its target
and foil by typing words (and by Enter on a predicted word), says which run it decomposes and sits below the
predictions; the lens keeps a selected last column with wide words wholly in view; a 30 x 9 head grid lists and
outlines the top 5 heads of the chosen score, and an entry selects its head."""

from __future__ import annotations

import re

import pytest
from browser import notebook_page, screenshot

CELLS = [
    """import repwidget as rw
from transformers import LlamaConfig, LlamaForCausalLM
model = rw.demo_model()
sae = rw.demo.demo_sae()
gx = rw.explore(model, "review : the food was great and the staff were lovely . verdict :",
                [rw.Steer(sae=sae, feature=3, scale=6.0)], saes=[sae], continuation=True)
gx""",
    """cx = rw.explore(model, "when mary and john went to the store , john gave a drink to")
cx""",
    # a prompt whose last token (":") is narrower than what the lens reads there ("positive")
    """lx = rw.explore(model, "review : the food was great and the staff were lovely and the room was clean and quiet "
                    "and the view was wonderful . verdict :", saes=[sae])
lx""",
    # a SmolLM2-shaped grid: 30 layers x 9 heads
    """words = rw.demo.vocabulary()[5:]
config = LlamaConfig(vocab_size=len(model.tokenizer), hidden_size=72, intermediate_size=96, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=128)
deep = rw.explore(rw.load(LlamaForCausalLM(config).eval(), tokenizer=model.tokenizer), " ".join(words[:30] * 2))
deep""",
    # probes whose first layers read the sentiment worst (notebook 03's case): the view opens on the best one
    """from repwidget.demo.evaluate import prompt
reviews = [(prompt(e, "sentiment"), e.target) for e in rw.demo.dataset("sentiment", 80)]
probes = rw.train_probes(model, reviews, kind="mean_diff")
px = rw.explore(model, "review : the food was great and the staff were lovely . verdict :", probes=[probes])
px""",
]


@pytest.fixture(scope="module")
def lab_page(lab):
    with notebook_page(lab, "textviews.ipynb", CELLS, ".rw-root >> nth=3 >> [data-rw-top-head]", height=1200) as opened:
        yield opened


def test_the_probes_view_opens_on_the_best_layer_steering_toward_the_class_not_read(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").nth(4)
    root.locator(".rw-probes-view").scroll_into_view_if_needed()
    best = kernel.run("print(probes.best_layer, px.selection['layer'])").split()
    assert best[0] == best[1], best
    expect(root.locator(".rw-probes-view .rw-probe-layer.rw-selected")).to_have_attribute("data-rw-layer", best[0])
    other = kernel.run(
        "from repwidget.hook_names import hook_for\n"
        "p = probes.logits(px.run[hook_for(probes.site, probes.best_layer)], probes.best_layer).softmax(-1)[-1]\n"
        "print(probes.classes[int(p.argmin())], probes.classes[int(p.argmax())])"
    ).split()
    assert other[0] != other[1], other
    expect(root.locator("[data-rw-probe-class]")).to_have_value(other[0], timeout=30_000)
    expect(root.locator("[data-rw-probe-note]")).to_contain_text("push the activations off-distribution")
    expect(root.locator(".rw-probes-view .rw-token").first).to_be_visible()  # each token's p(class) at that layer
    expect(root.locator(".rw-probes-view .rw-legend")).to_contain_text(f"p({other[0]}) at each token, layer {best[0]}")
    assert not errors, errors


def _box(locator) -> dict:
    return locator.evaluate(
        "(el) => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,"
        " bottom: r.bottom, scrollWidth: el.scrollWidth, clientWidth: el.clientWidth, clientLeft: el.clientLeft}; }"
    )


def test_the_continuations_wrap_in_their_columns_and_the_first_difference_is_marked(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").nth(0)
    view = root.locator(".rw-continuation-view")
    view.scroll_into_view_if_needed()
    for which in ("clean", "intervened"):
        status = view.locator(f'[data-rw-column="{which}"] [data-rw-gen-status]')
        expect(status).to_contain_text("tokens (", timeout=120_000)
    clean, steered = (_box(view.locator(f'[data-rw-column="{c}"]')) for c in ("clean", "intervened"))
    panel = _box(view)
    assert clean["right"] <= steered["left"] or clean["bottom"] <= steered["top"], (clean, steered)  # no overlap
    for which in ("clean", "intervened"):
        text = _box(view.locator(f'[data-rw-column="{which}"] .rw-gen-text'))
        assert text["scrollWidth"] <= text["clientWidth"] + 1, (which, text)  # wrapped, nothing clipped
        assert text["right"] <= panel["right"] + 1, (which, text, panel)
    first = kernel.run(
        "from repwidget.views.panels import continuation as c\n"
        "a, b = (c.stream(gx.session, w).generation.new_token_ids for w in c.WHICH)\n"
        "print(next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))), len(a), len(b))"
    ).split()
    k = int(first[0])
    assert k < max(int(first[1]), int(first[2])), first  # the steer changes what the model writes
    for which in ("clean", "intervened"):
        marked = view.locator(f'[data-rw-column="{which}"] [data-rw-first-diff]')
        expect(marked).to_have_count(1)
        assert marked.get_attribute("data-rw-first-diff") == str(k)
        n_prompt = int(kernel.run("print(len(gx.token_ids))"))
        assert marked.get_attribute("data-rw-gen") == str(n_prompt + k)
    expect(view.locator("[data-rw-first-diff-note]")).to_contain_text(f"first differs at generated token {k + 1}")
    screenshot(view, "textviews-continuation")
    assert not errors, errors


def test_the_attribution_target_and_foil_are_picked_by_text_and_the_caption_names_the_run(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").nth(1)
    view = root.locator(".rw-attribution-view")
    predictions = root.locator(".rw-predictions-view")
    view.scroll_into_view_if_needed()
    below, above = view.bounding_box(), predictions.bounding_box()
    assert abs(below["x"] - above["x"]) < 2 and below["y"] >= above["y"] + above["height"] - 1, (below, above)
    ids = dict(
        zip(
            ("mary", "john"),
            kernel.run("print(*model.tokenizer.convert_tokens_to_ids(['mary', 'john']))").split(),
            strict=True,
        )
    )
    target = view.locator("[data-rw-target]")
    target.click()
    target.press_sequentially("mar")
    option = view.locator('[data-rw-words="target"] [data-rw-word-id]').first
    expect(option).to_contain_text("mary", timeout=30_000)
    expect(option).to_contain_text(f"#{ids['mary']}")
    target.press("Enter")  # the first candidate, from the keyboard
    state = kernel.wait_for("print(cx.session.state['attribution'].picked)", f"({ids['mary']}, None,")
    assert state.strip().startswith(f"({ids['mary']}, None, "), state
    caption = view.locator("[data-rw-dla-caption]")
    expect(caption).to_contain_text('logit("mary")', timeout=30_000)
    expect(caption).to_contain_text("in the clean run")
    expect(target).to_have_value("mary")
    foil = view.locator("[data-rw-foil]")
    foil.click()
    foil.press_sequentially("joh")
    view.locator(f'[data-rw-words="foil"] [data-rw-word-id="{ids["john"]}"]').click()
    state = kernel.wait_for("print(cx.session.state['attribution'].picked)", f"({ids['mary']}, {ids['john']},")
    expect(caption).to_contain_text('logit("mary") \u2212 logit("john")', timeout=30_000)
    # a predicted word is reachable by Tab and Enter picks it as the target
    word = predictions.locator(".rw-pred-token").nth(1)
    assert word.get_attribute("tabindex") == "0"
    word.focus()
    page.keyboard.press("Enter")
    second = kernel.run("print(int(cx.run.logits[cx.selection['token']].topk(2).indices[1]))").strip()
    kernel.wait_for("print(cx.session.state['attribution'].picked)", f"({second}, {ids['john']},")
    expect(target).to_have_value(word.inner_text().strip(), timeout=30_000)
    kernel.run("cx.interventions = [rw.Ablate(1, head=0)]")
    expect(caption).to_contain_text("in the intervened run", timeout=30_000)
    _selected_column_in_view(root)  # the lens beside it, repainted for the intervened run
    screenshot(root, "textviews-attribution")
    kernel.run("cx.interventions = []")
    assert not errors, errors


def _selected_column_in_view(root) -> None:
    """The lens's selected column lies wholly inside its scroll box's visible part (right of the frozen layer
    labels, left of a vertical scroll bar)."""
    scroll, column = root.locator(".rw-lens-scroll"), root.locator(".rw-lens-view th.rw-selected")
    column.wait_for(timeout=60_000)
    root.page.wait_for_timeout(500)  # any scroll snapping has settled
    box, cell = _box(scroll), _box(column)
    panel, widget = _box(root.locator(".rw-lens-view")), _box(root)
    sticky = float(scroll.get_attribute("data-rw-sticky-left") or 0)
    visible_right = min(box["left"] + box["clientLeft"] + box["clientWidth"], panel["right"], widget["right"])
    assert cell["left"] >= box["left"] + sticky - 1 and cell["right"] <= visible_right + 1, (cell, box, panel, sticky)


def test_the_lens_keeps_a_selected_last_column_wider_than_its_header_in_view(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    page.set_viewport_size({"width": 1100, "height": 1200})
    try:
        root = page.locator(".rw-root").nth(2)
        root.locator(".rw-lens-scroll").scroll_into_view_if_needed()
        column = root.locator(".rw-lens-view th.rw-selected")
        column.wait_for(timeout=60_000)
        assert column.get_attribute("data-rw-token") == kernel.run("print(len(lx.token_ids) - 1)").strip()
        widths = column.evaluate(
            "(th) => { const r = th.ownerDocument.createRange(); r.selectNodeContents(th);"
            " return [th.getBoundingClientRect().width, r.getBoundingClientRect().width]; }"
        )
        assert widths[0] > widths[1] + 8, widths  # its words are wider than its header (":")
        _selected_column_in_view(root)
        # the columns widen after the lens was painted (a web font arriving late: only the table's width changes)
        root.locator(".rw-lens").evaluate("(table) => { table.style.letterSpacing = '3px'; }")
        _selected_column_in_view(root)
        kernel.run("lx.interventions = [rw.Steer(sae=sae, feature=3, scale=6.0)]")  # other words: repainted
        expect(root.locator(".rw-lens-view [data-rw-lens-run]").first).to_be_visible(timeout=60_000)
        _selected_column_in_view(root)
        screenshot(root.locator(".rw-lens-view"), "textviews-lens-last-column")
        deep = page.locator(".rw-root").nth(3)  # 30 layers: the lens scrolls down too (a vertical scroll bar)
        deep.locator(".rw-lens-scroll").scroll_into_view_if_needed()
        assert deep.locator(".rw-lens-scroll").evaluate("(el) => el.scrollHeight > el.clientHeight")
        _selected_column_in_view(deep)
    finally:
        page.set_viewport_size({"width": 1400, "height": 1200})
        kernel.run("lx.interventions = []")
    assert not errors, errors


def test_the_top_heads_of_a_30_by_9_grid_are_listed_and_outlined_and_an_entry_selects_its_head(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").nth(3)
    view = root.locator(".rw-attention-view")
    view.scroll_into_view_if_needed()
    for score in ("induction", "previous_token"):
        view.locator(".rw-score-picker").select_option(score)
        expected = kernel.run(
            f"s = deep.session.run.summary(24)[1][{score!r}]\n"
            "print(' '.join(f'{i // s.shape[1]}.{i % s.shape[1]}' for i in s.flatten().topk(5).indices.tolist()))"
        ).split()
        entries = view.locator("[data-rw-top-head]")
        expect(entries).to_have_count(5)
        assert [entries.nth(i).get_attribute("data-rw-top-head") for i in range(5)] == expected, expected
        outlined = view.locator(".rw-head.rw-top")
        expect(outlined).to_have_count(5)
        assert sorted(outlined.nth(i).get_attribute("data-rw-head") for i in range(5)) == sorted(expected)
    entries.nth(2).click()
    layer, head = expected[2].split(".")
    state = kernel.wait_for("print(deep.selection['head_layer'], deep.selection['head'])", f"{layer} {head}")
    assert state.split() == [layer, head]
    expect(view.locator(f'[data-rw-head="{expected[2]}"]')).to_have_class(re.compile("rw-selected"))
    entries.nth(4).focus()
    page.keyboard.press("Enter")  # keyboard: an entry is a button
    layer, head = expected[4].split(".")
    assert kernel.wait_for(
        "print(deep.selection['head_layer'], deep.selection['head'])", f"{layer} {head}"
    ).split() == [
        layer,
        head,
    ]
    screenshot(view, "textviews-top-heads")
    assert not errors, errors


#: the contrast of an element's border colour against the first opaque background behind it (WCAG 1.4.11: 3:1)
BORDER_CONTRAST = """(el) => {
  const parse = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  let bg = [255, 255, 255];
  for (let e = el.parentElement; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || c[3] === 1) { bg = c; break; }
  }
  const [a, b] = [lum(parse(getComputedStyle(el).borderTopColor)), lum(bg)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_what_the_text_views_add_reads_in_both_themes(lab_page):
    from playwright.sync_api import expect
    from ui_checks import CONTRAST, set_theme

    page, _kernel, errors = lab_page
    roots = page.locator(".rw-root")
    try:
        for theme in ("JupyterLab Dark", "JupyterLab Light"):
            set_theme(page, theme)
            target = roots.nth(1).locator("[data-rw-target]")
            target.scroll_into_view_if_needed()
            target.fill("")
            target.press_sequentially("jo")
            words = roots.nth(1).locator('[data-rw-words="target"]')
            expect(words).to_be_visible(timeout=30_000)  # this theme's search, not the list the last one closed
            expect(words.locator('[data-rw-word-id][aria-selected="true"]')).to_have_count(1, timeout=30_000)
            measured = {
                "candidates": words.evaluate(CONTRAST),
                "continuation": roots.nth(0).locator(".rw-continuation-view").evaluate(CONTRAST),
                "top heads": roots.nth(3).locator("[data-rw-top-heads]").evaluate(CONTRAST),
            }
            low = {k: [m for m in v if m["ratio"] < 4.5] for k, v in measured.items()}
            assert measured["candidates"] and not any(low.values()), (theme, low)
            outlines = {
                "top head": roots.nth(3).locator(".rw-head.rw-top").first.evaluate(BORDER_CONTRAST),
                "first difference": roots.nth(0)
                .locator(".rw-gen-first-diff")
                .first.evaluate(BORDER_CONTRAST.replace("borderTopColor", "outlineColor")),
            }
            assert all(ratio >= 3 for ratio in outlines.values()), (theme, outlines)
            screenshot(
                roots.nth(1).locator(".rw-attribution-view"), f"textviews-word-search-{theme.split()[-1].lower()}"
            )
            target.press("Escape")
    finally:
        set_theme(page, "JupyterLab Light")
    assert not errors, errors
