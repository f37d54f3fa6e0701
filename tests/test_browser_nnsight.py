"""The explorer on the nnsight backend, in a real JupyterLab under headless Chromium: every pass the page asks
for (predictions, thumbnails, a head's pattern, a click's rerun) runs as an nnsight trace."""

from __future__ import annotations

import pytest
from browser import notebook_page, screenshot

pytest.importorskip("nnsight")

CELLS = [
    """import repwidget as rw
demo = rw.demo_model()
model = rw.load(demo.hf, demo.tokenizer, backend="nnsight")
model.reference = demo.reference
ex = rw.explore(model, "the capital of france is")
ex""",
]


@pytest.fixture(scope="module")
def lab_page(lab):
    with notebook_page(lab, "nnsight.ipynb", CELLS, ".rw-root", height=1800) as opened:
        yield opened


def test_the_explorer_runs_on_the_nnsight_backend(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").first
    assert kernel.run("print(type(ex.run.model.executor).__name__)").strip() == "NNsightExecutor"
    intervened = root.locator('[data-rw-column="intervened"]')
    expect(intervened).to_contain_text("paris", timeout=60_000)
    expect(root.locator('[data-rw-head="1.0"]')).to_be_visible()  # thumbnails: summaries read in a trace
    lens = root.locator('.rw-lens-view td[data-rw-token="2"][data-rw-layer="0"]')  # read in the trace, top-1 only
    expect(lens).not_to_be_empty(timeout=30_000)
    assert kernel.run("print(any(h.endswith('resid_post') for h in ex.session.capture))").strip() == "False"
    root.locator('[data-rw-head="1.2"]').click()  # a head's pattern: replayed through a trace
    expect(root.locator("canvas[data-rw-pattern='1.2']")).to_have_count(1, timeout=30_000)

    root.locator('[data-rw-head="0.0"]').click(modifiers=["Shift"])  # a click: a rerun through a trace
    state = kernel.wait_for("print(ex.interventions)", "rw.Ablate(layer=0, head=0)")
    assert state.strip() == "[rw.Ablate(layer=0, head=0)]"
    expect(root.locator(".rw-iv")).to_contain_text("ablate head 0.0 (zero)", timeout=30_000)
    expect(root.locator('[data-rw-column="clean"]')).to_have_count(1, timeout=30_000)
    # the page shows what the hook executor computes for the same click
    same = kernel.run(
        "print(float((ex.run.logits - demo.run(ex.run.token_ids, ex.interventions).logits).abs().max()) < 1e-5)"
    )
    assert same.strip() == "True"
    root.locator("[data-rw-mode]").select_option("mean")  # mean ablation: reference statistics, then a trace
    root.locator('[data-rw-head="1.0"]').click(modifiers=["Shift"])
    kernel.wait_for("print(ex.interventions)", "mode='mean'")
    assert kernel.run("print(repr(ex.error))").strip() == "''"
    expect(root.locator(".rw-iv")).to_have_count(2, timeout=30_000)
    screenshot(root, "explorer-nnsight")
    assert not errors, errors
