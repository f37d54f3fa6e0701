"""The explorer in a real JupyterLab under headless Chromium: click in the page, read the kernel's state back."""

from __future__ import annotations

import json
import re

import pytest
from browser import Kernel, chromium, end_sessions, notebook, open_and_run, screenshot

CELLS = [
    """import repwidget as rw
model = rw.demo_model()
ex = rw.explore(model, "the capital of france is", tuned_lens=rw.demo.tuned_lens(model))
ex""",
    # a byte-level BPE tokenizer (like GPT-2's) that keeps markup as text, and a random model taking 2,048 tokens
    """import random, torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
EVIL = "<img src=x onerror=alert(1)> <script>alert(2)</script>"
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
bpe.train_from_iterator([EVIL, "hello world"] * 5, trainer)
torch.manual_seed(0)
config = GPT2Config(vocab_size=bpe.get_vocab_size(), n_positions=2048, n_embd=64, n_layer=4, n_head=4)
small = rw.load(GPT2LMHeadModel(config).eval(), tokenizer=PreTrainedTokenizerFast(tokenizer_object=bpe))
evil = rw.explore(small, EVIL)
evil""",
    """long = rw.explore(small, random.Random(0).choices(range(bpe.get_vocab_size()), k=2048))
long""",
    """sae = rw.demo.demo_sae()
fx = rw.explore(model, "two days after monday is", saes=[sae], texts=[e.text for e in rw.demo.dataset("cycles", 40)])
fx""",
    """from repwidget.demo.evaluate import prompt
reviews = [(prompt(e, "sentiment"), e.target) for e in rw.demo.dataset("sentiment", 80)]
probes = rw.train_probes(model, reviews, kind="mean_diff")
px = rw.explore(model, prompt(rw.demo.dataset("sentiment", 1, seed=9)[0], "sentiment"), probes=[probes])
px""",
    # the IPython extension: a Run shown in a cell becomes its explorer
    """%load_ext repwidget
model.run("one two three four one two three")""",
    """%explore -o mx two days after monday is""",
    # the probe accuracy chart (altair, offline Vega), linked both ways to the probes explorer
    """pc = px.probe_chart()
pc""",
    # the first explorer shown a second time: two views of one widget
    "ex",
    # a real model (SmolLM2-135M, 30 layers x 9 heads; the GPT-2-small shape where it is not installed) on 2,048
    # tokens with the default options: no pattern is held whole
    """path = rw.demo.smollm2_gguf()
if path is not None:
    real = rw.load(path)
else:
    torch.manual_seed(0)
    real = rw.load(GPT2LMHeadModel(GPT2Config(n_positions=2048)).eval())
bx = rw.explore(real, random.Random(1).choices(range(100, real.vocab_size - 100), k=2048))
bx""",
]


@pytest.fixture(scope="module")
def lab_page(lab):
    (lab.root / "explorer.ipynb").write_text(json.dumps(notebook(CELLS)))
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: dialogs.append(f"page error: {e}"))
        try:
            kernel_id = open_and_run(page, lab, "explorer.ipynb", workspace="explorer")
            # the notebook's cells run before this view fills: 47 s idle, 110 s in a loaded whole-suite run; 180 s
            # ran out when several other jobs shared the 2 cores
            page.locator(".rw-root").nth(4).locator(".rw-probes-view .rw-token").first.wait_for(timeout=300_000)
            page.locator(".rw-root").nth(7).wait_for(timeout=60_000)
            page.locator(".vega-embed svg").first.wait_for(timeout=60_000)
            kernel = Kernel(lab, kernel_id)
            try:
                yield page, kernel, dialogs
            finally:
                kernel.close()
        finally:
            end_sessions(lab, "explorer.ipynb")


def _explorer(page, index: int):
    root = page.locator(".rw-root").nth(index)
    root.scroll_into_view_if_needed()
    return root


def test_a_click_selects_a_head_and_shift_click_ablates_it_in_the_kernel(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = _explorer(page, 0)
    intervened = root.locator('[data-rw-column="intervened"]')
    expect(intervened).to_contain_text("paris", timeout=30_000)
    expect(root.locator('[data-rw-column="clean"]')).to_have_count(0)  # nothing intervened: one table
    before = intervened.inner_text()
    screenshot(root, "explorer-clean")

    root.locator('[data-rw-head="1.2"]').click()  # selects: its pattern, no ablation
    expect(root.locator("canvas[data-rw-pattern='1.2']")).to_have_count(1, timeout=30_000)
    state = kernel.wait_for("print(ex.selection['head_layer'], ex.selection['head'])", "1 2")
    assert state.strip() == "1 2" and kernel.run("print(ex.interventions)").strip() == "[]"
    expect(root.locator('[data-rw-head="1.2"]')).to_have_attribute("aria-label", re.compile(r"^head 1\.2, \w"))

    root.locator('[data-rw-head="0.0"]').click(modifiers=["Shift"])  # the intervening gesture
    state = kernel.wait_for("print(ex.interventions)", "rw.Ablate(layer=0, head=0)")
    assert state.strip() == "[rw.Ablate(layer=0, head=0)]"
    expect(intervened).not_to_have_text(before, timeout=30_000)
    clean_row = root.locator('[data-rw-column="clean"] tr').nth(1).inner_text().split("\t")
    assert clean_row[0] == "paris" and float(clean_row[2].rstrip("%")) < float(clean_row[1].rstrip("%"))  # p -> now
    assert not intervened.inner_text().split("\n")[1].startswith("paris")  # paris lost its place
    assert "pp" in intervened.inner_text()  # changes in percentage points
    expect(root.locator('[data-rw-head="0.0"]')).to_have_class(
        re.compile(r"^(?=.*\brw-selected\b)(?=.*\brw-ablated\b)rw-head\b")
    )
    expect(root.locator('[data-rw-head="0.0"]')).to_have_attribute("aria-label", re.compile(r", ablated$"))
    expect(root.locator(".rw-iv")).to_contain_text("ablate head 0.0 (zero)")
    paris = "model.tokenizer.convert_tokens_to_ids('paris')"
    p_paris = float(kernel.run(f"print(ex.run.logits[-1].softmax(-1)[{paris}].item())"))
    assert p_paris < 0.5
    screenshot(root, "explorer-head-ablated")

    root.locator('[data-rw-head="2.1"]').click()  # browsing other heads adds no ablation
    expect(root.locator("canvas[data-rw-pattern='2.1']")).to_have_count(1, timeout=30_000)
    assert kernel.run("print(ex.interventions)").strip() == "[rw.Ablate(layer=0, head=0)]"
    root.locator('[data-rw-remove="0"]').click()
    assert kernel.wait_for("print(ex.interventions)", "[]").strip() == "[]"
    expect(root.locator('[data-rw-column="clean"]')).to_have_count(0, timeout=30_000)


def test_the_ablate_button_beside_a_selected_neuron_and_a_python_assignment_reach_the_other_side(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = _explorer(page, 0)
    neuron = root.locator("[data-rw-neuron]").first
    neuron.wait_for()
    layer, index = neuron.get_attribute("data-rw-neuron").split(".")
    neuron.click()  # selects: its activation colours the tokens
    expect(root.locator(".rw-tokens-view .rw-legend")).to_contain_text(f"neuron {layer}.{index}", timeout=30_000)
    assert kernel.run("print(ex.interventions)").strip() == "[]"
    button = root.locator('[data-rw-ablate="neuron"]')
    expect(button).to_have_text(f"ablate neuron {layer}.{index}")
    button.click()
    expected = f"rw.Ablate(layer={layer}, neuron={index})"
    assert expected in kernel.wait_for("print(ex.interventions)", expected)
    listed = root.locator(f'[data-rw-neuron="{layer}.{index}"]')  # still listed, marked
    expect(listed).to_have_class(re.compile("rw-ablated"), timeout=30_000)
    # shown in the run without its own ablation: here the clean run, its ablation being the only intervention
    expect(root.locator(".rw-tokens-view .rw-legend")).to_contain_text("in the clean run (its ablation is the only")
    kernel.run("ex.interventions = [rw.Ablate(2, head=1)]")
    expect(root.locator(".rw-iv")).to_have_text(["ablate head 2.1 (zero)\u00d7"], timeout=30_000)
    expect(root.locator('[data-rw-head="2.1"]')).to_have_class(re.compile("rw-ablated"))
    kernel.run("ex.interventions = []")
    expect(root.locator(".rw-empty")).to_be_visible()


def test_choosing_a_neuron_layer_or_a_lens_cell_leaves_the_attention_head_alone(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = _explorer(page, 0)
    root.locator('[data-rw-head="1.3"]').click()
    expect(root.locator("canvas[data-rw-pattern='1.3']")).to_have_count(1, timeout=30_000)
    root.locator('.rw-neurons-view [data-rw-layer="3"]').click()
    root.locator('.rw-lens-view td[data-rw-token="2"][data-rw-layer="0"]').click()
    state = kernel.wait_for("print(ex.selection)", "'token': 2")
    selection = eval(state)
    assert (selection["token"], selection["layer"], selection["head_layer"], selection["head"]) == (2, 0, 1, 3)
    expect(root.locator("canvas[data-rw-pattern='1.3']")).to_have_count(1)
    kernel.run("ex.select(token=5)")


def test_the_lens_toggle_reads_through_the_tuned_lens_in_the_kernel(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    view = _explorer(page, 0).locator(".rw-lens-view")
    cells = view.locator("td.rw-lens-cell")
    cells.first.wait_for()
    expect(view.locator('[data-rw-lens-kind="logit"]')).to_have_attribute("aria-pressed", "true")
    titles = "els => els.map(e => e.title).join('|')"
    before = cells.evaluate_all(titles)
    view.locator('[data-rw-lens-kind="tuned"]').click()
    assert kernel.wait_for("print(ex.selection['lens_kind'])", "tuned").strip() == "tuned"
    expect(view.locator('[data-rw-lens-kind="tuned"]')).to_have_attribute("aria-pressed", "true")
    for _ in range(150):  # the cells repaint from the kernel's tuned answer
        if cells.evaluate_all(titles) != before:
            break
        page.wait_for_timeout(100)
    # layer 0 at the selected token, as the tuned lens reads it in the kernel
    want = kernel.run(
        "t = ex.selection['token']\n"
        "tl = rw.analyses.logit_lens(ex.run, range(t, t + 1), lens=ex.session.state['lens'])\n"
        "print(t, model.to_str_tokens([int(tl.ids[0, 0, 0])])[0], float(tl.probs[0, 0, 0]))"
    ).split()
    title = view.locator(f'td[data-rw-layer="0"][data-rw-token="{want[0]}"]').get_attribute("title")
    word, p = re.search(r'"(.*)" p=([0-9.]+)', title).groups()
    assert word == want[1] and abs(float(p) - float(want[2])) < 2e-3, (title, want)  # float16 on the wire
    assert cells.evaluate_all(titles) != before
    view.locator('[data-rw-lens-kind="logit"]').click()
    assert kernel.wait_for("print(ex.selection['lens_kind'])", "logit").strip() == "logit"
    expect(cells.first).to_have_attribute("title", before.split("|")[0], timeout=30_000)


def test_modes_that_cannot_run_are_disabled_with_the_reason_and_a_refused_click_shows_an_error(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = _explorer(page, 0)
    mean = root.locator('[data-rw-mode] option[value="mean"]')
    expect(mean).to_be_enabled()  # the demo model comes with reference texts
    root.locator("[data-rw-mode]").select_option("mean")
    root.locator('[data-rw-head="1.2"]').click(modifiers=["Shift"])
    state = kernel.wait_for("print(ex.interventions)", "mode='mean'")
    assert state.strip() == "[rw.Ablate(layer=1, head=2, mode='mean')]"
    kernel.run("ex.interventions = []")
    root.locator("[data-rw-mode]").select_option("zero")

    other = _explorer(page, 1)  # a random model without reference texts
    mean = other.locator('[data-rw-mode] option[value="mean"]')
    expect(mean).to_be_disabled()
    expect(mean).to_contain_text("reference texts")
    kernel.run("evil.mode = 'mean'")  # set from Python anyway: the kernel refuses the click
    other.locator('[data-rw-head="1.2"]').click(modifiers=["Shift"])
    expect(other.locator("[data-rw-error]")).to_contain_text("reference", timeout=30_000)
    assert kernel.run("print(evil.interventions, evil.mode)").strip() == "[] mean"
    other.locator("[data-rw-mode]").select_option("zero")
    expect(other.locator("[data-rw-error]")).to_be_hidden()  # the error went with the mode that caused it
    other.locator('[data-rw-ablate="head"]').click()
    assert "head=2" in kernel.wait_for("print(evil.interventions)", "head=2")
    expect(other.locator("[data-rw-error]")).to_be_hidden()
    kernel.run("evil.interventions = []")


def test_markup_in_a_prompt_shows_as_text_and_runs_nothing(lab_page):
    page, _, dialogs = lab_page
    root = _explorer(page, 1)
    tokens = root.locator(".rw-token-line .rw-token").all_inner_texts()  # one flex item per token: they wrap
    text = "".join(tokens).replace("\u00a0", " ").replace("\u00b7", " ")
    assert "<img src=x onerror=alert(1)>" in text and "<script>alert(2)</script>" in text
    assert root.locator("img").count() == 0 and root.locator("script").count() == 0
    assert page.evaluate("window.__rw_pwned === undefined") and dialogs == []
    screenshot(root, "explorer-markup")


def test_a_2048_token_prompt_opens_responds_and_zooms(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = _explorer(page, 2)
    assert root.locator(".rw-token").count() == 2048
    caption = root.locator("[data-rw-pattern-title]")
    expect(caption).to_contain_text("2048 x 2048 (pooled; click to zoom)", timeout=60_000)
    root.locator('[data-rw-head="3.1"]').click(modifiers=["Shift"])
    assert "head=1" in kernel.wait_for("print(long.interventions)", "rw.Ablate(layer=3, head=1)")
    root.locator("[data-rw-pattern]").click(position={"x": 300, "y": 200})
    expect(caption).to_contain_text("queries", timeout=60_000)
    screenshot(root, "explorer-2048-tokens")


def test_a_real_model_on_2048_tokens_opens_and_a_head_click_reaches_the_kernel_and_shows_that_head(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = page.locator(".rw-root").nth(8)
    root.wait_for(timeout=300_000)
    root.scroll_into_view_if_needed()
    expect(root.locator(".rw-token")).to_have_count(2048, timeout=120_000)
    layers, heads = (int(x) for x in kernel.run("print(real.n_layers, real.n_heads)").split())
    caption = root.locator("[data-rw-pattern-title]")
    expect(caption).to_contain_text("2048 x 2048 (pooled; click to zoom)", timeout=120_000)
    layer, head = layers // 2, heads - 1
    root.locator(f'[data-rw-head="{layer}.{head}"]').click()  # select: the kernel hears it, the pattern follows
    expected = f"'head_layer': {layer}, 'head': {head}"
    assert expected in kernel.wait_for("print(bx.selection)", expected, timeout=120)
    expect(root.locator(f'[data-rw-pattern="{layer}.{head}"]')).to_have_count(1, timeout=120_000)
    root.locator(f'[data-rw-head="{layer}.{head}"]').click(modifiers=["Shift"])  # ablate: a re-run at 2,048 tokens
    state = kernel.wait_for("print(bx.interventions)", f"rw.Ablate(layer={layer}, head={head})", timeout=120)
    assert state.strip() == f"[rw.Ablate(layer={layer}, head={head})]"
    expect(root.locator(f'[data-rw-pattern="{layer}.{head}"]')).to_have_count(1, timeout=120_000)
    screenshot(root, "explorer-2048-tokens-real-model")


def test_a_click_selects_an_sae_feature_its_button_ablates_it_and_the_slider_steers_with_it(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = _explorer(page, 3)
    feature = root.locator("[data-rw-feature]").first
    index = feature.get_attribute("data-rw-feature")
    feature.click()
    expect(root.locator(".rw-context")).to_have_count(5, timeout=60_000)  # its top contexts over the texts
    expect(root.locator(".rw-tokens-view .rw-legend")).to_contain_text(f"SAE feature {index}")
    assert kernel.run("print(fx.interventions)").strip() == "[]"  # looking is not ablating
    root.locator('[data-rw-ablate="feature"]').click()
    expected = f"feature={index})"
    state = kernel.wait_for("print(fx.interventions)", expected)
    assert state.strip().startswith("[rw.Ablate(sae=rw.SAE.load(") and expected in state
    expect(root.locator(f'.rw-features-view [data-rw-feature="{index}"]')).to_have_class(
        re.compile("rw-ablated"), timeout=30_000
    )
    legend = root.locator(".rw-tokens-view .rw-legend")
    expect(legend).to_contain_text("in the clean run (no interventions; it is ablated)")
    root.locator("[data-rw-steer]").fill("-8")
    expect(root.locator("[data-rw-steer] + .rw-num")).to_have_text("\u00d7 -8")
    root.locator("[data-rw-steer-apply]").click()
    state = kernel.wait_for("print(fx.interventions)", "rw.Steer(")
    assert f"feature={index}, scale=-8.0)" in state
    expect(root.locator(".rw-iv").nth(1)).to_contain_text("\u00d7 -8")  # the chip's unit is the slider's
    screenshot(root, "explorer-sae-features")
    kernel.run("fx.interventions = []")


def test_a_selected_neuron_shows_its_top_contexts_over_the_explorers_texts(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = _explorer(page, 3)  # fx: given texts=
    neuron = root.locator(".rw-neurons-view [data-rw-neuron]").first
    neuron.wait_for()
    layer, index = neuron.get_attribute("data-rw-neuron").split(".")
    neuron.click()
    lines = root.locator(".rw-neuron-examples .rw-example")
    expect(lines).to_have_count(5, timeout=60_000)
    shown = [lines.nth(i).get_attribute("title") for i in range(5)]
    expected = kernel.run(
        f"top = rw.top_examples(model, fx.session.texts, rw.units.Neuron({layer}, {index}), k=5, progress=False)\n"
        "print([f'text {e.text_index}' for e in top.examples(0)])"
    )
    assert expected.strip() == str(shown)
    assert kernel.run("print(fx.interventions)").strip() == "[]"  # looking is not ablating
    screenshot(root, "explorer-neuron-examples")
    # a head selected in the attention view: its top contexts by output norm, as the kernel computes them
    root.locator('.rw-attention-view [data-rw-head="1.2"]').click()
    head_lines = root.locator(".rw-head-examples .rw-example")
    caption = root.locator(".rw-head-examples .rw-caption")
    expect(caption).to_have_text("head 1.2 (out_norm): top contexts", timeout=60_000)
    expect(head_lines).to_have_count(5)
    expected = kernel.run(
        "top = rw.top_examples(model, fx.session.texts, rw.units.Head(1, 2), k=5, progress=False)\n"
        "print([f'text {e.text_index}' for e in top.examples(0)])"
    )
    assert expected.strip() == str([head_lines.nth(i).get_attribute("title") for i in range(5)])


def test_a_click_on_a_probe_layer_and_the_steer_button_reach_python(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    root = _explorer(page, 4)
    root.locator('.rw-probes-view [data-rw-layer="2"]').click()
    assert kernel.wait_for("print(px.selection['layer'])", "2").strip() == "2"
    expect(root.locator(".rw-probes-view .rw-legend")).to_contain_text("layer 2")
    expect(root.locator('.rw-probes-view [data-rw-layer="2"]')).to_contain_text("%")  # its held-out accuracy
    root.locator("[data-rw-probe-class]").select_option("negative")
    root.locator("[data-rw-probe-steer]").click()
    state = kernel.wait_for("print(px.interventions == [probes.steering(2, 'negative', 2.0)])", "True")
    assert state.strip() == "True"
    expect(root.locator(".rw-iv")).to_contain_text("steer layer 2 toward negative, strength 2 (class gaps)")
    expect(root.locator("[data-rw-probe-strength] + .rw-num")).to_have_text("strength 2 (class gaps)")
    expect(root.locator('[data-rw-column="intervened"] tr').nth(1)).to_contain_text("negative")  # verdict flipped
    screenshot(root, "explorer-probes")
    kernel.run("px.interventions = []")
    expect(root.locator(".rw-empty")).to_be_visible()
    root.locator("[data-rw-probe-project]").click()  # toggles projecting the direction out
    assert kernel.wait_for("print(px.interventions == [probes.projection(2)])", "True").strip() == "True"
    expect(root.locator(".rw-iv")).to_contain_text("project out a direction at layer 2")
    root.locator("[data-rw-probe-project]").click()
    assert kernel.wait_for("print(px.interventions)", "[]").strip() == "[]"


def test_the_extension_shows_a_run_and_the_magic_as_explorers_that_take_clicks(lab_page):
    page, kernel, _ = lab_page
    shown = _explorer(page, 5)
    assert shown.locator(".rw-token").count() == 8
    shown.locator('[data-rw-head="1.1"]').click(modifiers=["Shift"])
    find = (
        "import ipywidgets; print([w.interventions for w in list(ipywidgets.Widget.widgets.values())"
        " if isinstance(w, rw.Explorer) and len(w.run.token_ids) == 8])"
    )
    assert "[[rw.Ablate(layer=1, head=1)]]" in kernel.wait_for(find, "head=1")
    magic = _explorer(page, 6)
    assert magic.locator(".rw-token").count() == 6
    magic.locator('[data-rw-head="0.3"]').click(modifiers=["Shift"])
    assert kernel.wait_for("print(mx.interventions)", "head=3").strip() == "[rw.Ablate(layer=0, head=3)]"


def test_a_click_on_the_probe_chart_selects_the_layer_in_the_explorer_and_back(lab_page):
    from playwright.sync_api import expect

    page, kernel, _ = lab_page
    chart = page.locator(".vega-embed").first
    chart.scroll_into_view_if_needed()
    ring = chart.locator("g.ring_marks path")  # the layer ringed as the explorer's selection
    expect(chart.locator("svg").first).to_be_visible(timeout=30_000)
    assert chart.locator("details, .vega-actions").count() == 0  # no menu whose editor link leaves for the internet
    kernel.run("px.select(layer=0)")
    assert kernel.run("print(int(pc.params.current))").strip() == "0"
    expect(ring).to_have_attribute("aria-label", re.compile("^layer: 0;"), timeout=30_000)
    chart.locator('g.points_marks path[aria-label^="layer: 2;"]').click()
    assert kernel.wait_for("print(px.selection['layer'])", "2").strip() == "2"
    expect(_explorer(page, 4).locator(".rw-probes-view .rw-legend")).to_contain_text("layer 2", timeout=30_000)
    expect(ring).to_have_attribute("aria-label", re.compile("^layer: 2;"), timeout=30_000)
    kernel.run("px.select(layer=1)")
    expect(ring).to_have_attribute("aria-label", re.compile("^layer: 1;"), timeout=30_000)
    screenshot(chart, "probe-chart")


def test_one_explorer_shown_twice_answers_each_view_and_takes_clicks_from_both(lab_page):
    from playwright.sync_api import expect

    page, kernel, dialogs = lab_page
    first, second = _explorer(page, 0), _explorer(page, 7)
    kernel.run("ex.interventions = []")
    first.locator('[data-rw-head="1.0"]').click(modifiers=["Shift"])
    assert "head=0" in kernel.wait_for("print(ex.interventions)", "rw.Ablate(layer=1, head=0)")
    second.scroll_into_view_if_needed()
    second.locator('[data-rw-head="2.3"]').click(modifiers=["Shift"])  # the second view's first click (its seq 1)
    state = kernel.wait_for("print(ex.interventions)", "rw.Ablate(layer=2, head=3)")
    assert state.strip() == "[rw.Ablate(layer=1, head=0), rw.Ablate(layer=2, head=3)]"
    for view in (first, second):  # each view shows the selected head's pattern, neither stays busy
        expect(view.locator("canvas[data-rw-pattern='2.3']")).to_have_count(1, timeout=30_000)
        expect(view.locator('[data-rw-head="1.0"]')).to_have_class(
            re.compile(r"^(?!.*\brw-selected\b)rw-head\b.*\brw-ablated\b")
        )
        expect(view).not_to_have_attribute("data-rw-busy", "", timeout=30_000)
        expect(view.locator(".rw-iv")).to_have_count(2)
    expect(second.locator(".rw-lens-view td").first).to_be_visible()
    assert not [d for d in dialogs if d.startswith("page error")], dialogs
    screenshot(second, "explorer-shown-twice")
    kernel.run("ex.interventions = []")
