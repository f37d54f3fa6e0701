"""Attribution and patching in a real JupyterLab under headless Chromium: pick a target from the predictions, see
the heads ranked, then select and apply a patch from the corrupted prompt; click a node of the attribution graph and
shift+click it to ablate its feature, ctrl+click two and ablate them as a group; the kernel's state read back."""

from __future__ import annotations

import re

import pytest
from browser import notebook_page, screenshot

CELLS = [
    # a clean prompt and a corrupted one: the attribution and patching views
    """import repwidget as rw
model = rw.demo_model()
cx = rw.explore(model, "when mary and john went to the store , john gave a drink to",
                corrupted="when mary and john went to the store , mary gave a drink to")
cx""",
    # the attribution graph of a prompt under the demo's transcoders
    """gx = rw.explore(model, "the cat . the cat", transcoders=rw.demo.transcoders())
gx""",
]


@pytest.fixture(scope="module")
def lab_page(lab):
    with notebook_page(lab, "attribution.ipynb", CELLS, ".rw-patching-view", height=1800) as opened:
        yield opened


def test_pick_a_target_see_heads_ranked_then_patch_a_cell_from_the_corrupted_prompt(lab_page):
    from playwright.sync_api import expect

    page, kernel, dialogs = lab_page
    root = page.locator(".rw-root").first
    root.scroll_into_view_if_needed()
    clean = root.locator(".rw-predictions-view [data-rw-column]").first  # nothing intervened: one table
    expect(clean).to_contain_text("mary", timeout=60_000)
    clean.locator("[data-rw-prediction]").first.click()  # the top prediction ("mary") picks the target
    grid = root.locator(".rw-attribution-view .rw-dla-cell")
    expect(grid).to_have_count(16, timeout=60_000)
    state = kernel.wait_for("print(cx.session.state['attribution'].picked)", "(")
    mary = kernel.run("print(model.tokenizer.convert_tokens_to_ids('mary'))").strip()
    assert state.strip().startswith(f"({mary}, None,"), state
    expect(root.locator(".rw-attribution-view .rw-caption").first).to_contain_text('logit("mary")')
    expect(root.locator(".rw-dla-neurons [data-rw-neuron]")).to_have_count(10, timeout=30_000)  # ranked neurons
    clean.locator("[data-rw-prediction]").nth(1).click(modifiers=["Alt"])  # the second prediction: the foil
    state = kernel.wait_for("print(cx.session.state['attribution'].picked)", f"({mary}, ")
    expect(root.locator(".rw-attribution-view .rw-caption").first).to_contain_text("\u2212 logit(", timeout=30_000)
    state = kernel.run("print(cx.session.state['attribution'].picked)")
    second = kernel.run(
        "r = model.run('when mary and john went to the store , john gave a drink to'); "
        "print(int(r.logits[cx.selection['token']].topk(2).indices[1]))"
    ).strip()
    assert state.strip().startswith(f"({mary}, {second},"), (state, second)
    assert not kernel.run("print(cx.interventions)").strip().strip("[]"), "alt+click applies nothing"
    screenshot(root.locator(".rw-attribution-view"), "explorer-attribution")
    # a head in the attribution grid: a click shows its pattern (head_layer, as the head grid does), no ablation
    cell = root.locator('.rw-attribution-view .rw-dla-cell[data-rw-head="2.3"]')
    cell.click()
    state = kernel.wait_for("print(cx.selection['head_layer'], cx.selection['head'])", "2 3")
    assert state.strip() == "2 3" and kernel.run("print(cx.interventions)").strip() == "[]", state
    expect(root.locator("canvas[data-rw-pattern='2.3']")).to_have_count(1, timeout=30_000)
    expect(cell).to_have_class(re.compile("rw-selected"))
    patching = root.locator(".rw-patching-view")
    expect(patching.locator("[data-rw-cell]")).to_have_count(16, timeout=120_000)  # heads: 4 layers x 4 heads
    expect(patching.locator(".rw-caption")).to_contain_text('logit("mary")')
    patching.locator('[data-rw-cell="1.0"]').click()  # a plain click selects head 1.0 and applies nothing
    state = kernel.wait_for("print(cx.selection['head_layer'], cx.selection['head'])", "1 0")
    assert state.strip() == "1 0" and kernel.run("print(cx.interventions)").strip() == "[]", state
    patching.locator('[data-rw-cell="1.0"]').click(modifiers=["Shift"])  # shift+click applies the patch
    state = kernel.wait_for("print(cx.interventions)", "rw.Patch(")
    assert "rw.Patch(hook='blocks.1.attn.hook_z'" in state and "head=0" in state, state
    corrupted = kernel.run("print(model.to_ids('when mary and john went to the store , mary gave a drink to'))")
    assert corrupted.strip().replace(" ", "") in state.replace(" ", ""), (corrupted, state)
    screenshot(patching, "explorer-patching")
    assert not [d for d in dialogs if d.startswith("page error")], dialogs
    kernel.run("cx.interventions = []")


def test_a_graph_node_click_selects_it_and_shift_click_ablates_its_feature(lab_page):
    from playwright.sync_api import expect

    page, kernel, dialogs = lab_page
    view = page.locator(".rw-root").nth(1).locator(".rw-graph-view")
    view.scroll_into_view_if_needed()
    # run alone, the kernel answers the patching view's sweep first
    expect(view.locator('[data-rw-graph-node^="feature."]').first).to_be_attached(timeout=120_000)
    top = kernel.run("print(gx.session.state['graph'].graph.top_nodes(1)[0].index)").strip()
    node = view.locator(f'[data-rw-graph-node^="feature."][data-rw-graph-node$=".{top}"]')
    node.click()
    assert kernel.wait_for("print(gx.selection['graph_node'])", top).strip() == top
    caption = view.locator("[data-rw-graph-caption]")
    expect(caption).to_contain_text("predicted by the graph", timeout=30_000)
    node.click(modifiers=["Shift"])
    state = kernel.wait_for("print(gx.interventions)", "rw.Steer(")
    assert "scale=-1.0" in state and "positions=[" in state, state[-200:]
    expect(caption).to_contain_text("measured", timeout=30_000)
    measured = float(caption.get_attribute("data-rw-graph-measured"))
    real = kernel.run(f"print(gx.session.state['graph'].graph.ablation_effect({top})['real'])")
    assert abs(measured - float(real)) < 1e-4, (measured, real)
    expect(view.locator("[data-rw-graph-contexts] .rw-example").first).to_be_attached(timeout=30_000)  # its contexts
    kernel.run("gx.interventions = []")
    # a supernode: ctrl+click two features, ablate them together; the group and its Steers read back
    second = kernel.run("print(gx.session.state['graph'].graph.top_nodes(2)[1].index)").strip()
    node.click(modifiers=["Control"])
    view.locator(f'[data-rw-graph-node^="feature."][data-rw-graph-node$=".{second}"]').click(modifiers=["Control"])
    group = kernel.wait_for("print(gx.selection['graph_group'])", f"[{top}, {second}]")
    assert group.strip() == f"[{top}, {second}]", group
    view.locator("[data-rw-graph-ablate-group]").click()
    state = kernel.wait_for("print(len(gx.interventions), gx.interventions)", "2 [rw.Steer(")
    assert state.count("scale=-1.0") == 2, state[-300:]
    expect(view.locator("[data-rw-graph-group-caption]")).to_contain_text("measured", timeout=30_000)
    screenshot(view, "explorer-graph")
    assert not [d for d in dialogs if d.startswith("page error")], dialogs
    kernel.run("gx.interventions = []")
