"""The continuation view in a real JupyterLab under headless Chromium: steered by an SAE feature and a probe
direction, both continuations stream in, the stop button ends them midway, and a generated token clicked is
selected in the kernel (the views now show prompt + continuation)."""

from __future__ import annotations

import pytest
from browser import notebook_page, screenshot

PROMPT = "review : the food was great and the staff were lovely . verdict :"
CELLS = [
    f"""import time
import repwidget as rw
from repwidget.demo.evaluate import prompt
from repwidget.generation import Stream
step = Stream.step
def slow_step(self):  # a token every 0.2 s, so that the stop button lands midway
    time.sleep(0.2)
    return step(self)
Stream.step = slow_step
model = rw.demo_model()
sae = rw.demo.demo_sae()
reviews = [(prompt(e, "sentiment"), e.target) for e in rw.demo.dataset("sentiment", 80)]
probes = rw.train_probes(model, reviews, kind="mean_diff")
steers = [rw.Steer(sae=sae, feature=3, scale=6.0), probes.steering(2, toward="negative", strength=4.0)]
n_prompt = len(model.to_ids({PROMPT!r}))
gx = rw.explore(model, {PROMPT!r}, steers, saes=[sae], probes=[probes], continuation=True)
gx""",
]


@pytest.fixture(scope="module")
def lab_page(lab):
    with notebook_page(lab, "continuation.ipynb", CELLS, ".rw-continuation-view", height=1400) as opened:
        yield opened


def test_steered_continuations_stream_stop_midway_and_a_token_clicked_is_selected(lab_page):
    from playwright.sync_api import expect

    page, kernel, errors = lab_page
    root = page.locator(".rw-root").first
    view = root.locator(".rw-continuation-view")
    clean = view.locator('[data-rw-column="clean"] [data-rw-gen]')
    steered = view.locator('[data-rw-column="intervened"] [data-rw-gen]')
    expect(steered.nth(2)).to_be_visible(timeout=60_000)  # streaming: tokens arrive before the end
    expect(clean.nth(2)).to_be_visible(timeout=60_000)
    assert view.locator('[data-rw-column="intervened"]').get_attribute("title").count("steer") == 2
    view.locator("[data-rw-stop]").click()
    statuses = view.locator("[data-rw-gen-status]")
    expect(statuses.nth(0)).to_contain_text("(stopped)", timeout=30_000)
    expect(statuses.nth(1)).to_contain_text("(stopped)", timeout=30_000)
    n_clean, n_steered = clean.count(), steered.count()
    assert 3 <= n_clean < 32 and 3 <= n_steered < 32, (n_clean, n_steered)
    stopped = kernel.run(
        "print(sorted(s.generation.stopped for _, s in gx.session.state['continuation'].streams.values()))"
    )
    assert stopped.strip() == "['stopped', 'stopped']"
    texts = [view.locator(f'[data-rw-column="{c}"] .rw-gen-text').inner_text() for c in ("clean", "intervened")]
    assert texts[0] != texts[1], texts  # the steers change what the model writes
    screenshot(root, "continuation-stopped")

    n_prompt = int(kernel.run("print(n_prompt)"))
    steered.nth(1).click()  # the second generated token of the steered continuation
    state = kernel.wait_for("print(gx.selection['token'], len(gx.token_ids))", f"{n_prompt + 1} ", timeout=60)
    assert state.split() == [str(n_prompt + 1), str(n_prompt + n_steered)]
    expect(root.locator(".rw-tokens-view .rw-token")).to_have_count(n_prompt + n_steered, timeout=30_000)
    expect(root.locator(f'.rw-tokens-view [data-rw-token="{n_prompt + 1}"]')).to_have_attribute(
        "aria-selected", "true", timeout=30_000
    )
    assert kernel.run("print(len(gx.interventions), gx.run.token_ids == gx.token_ids)").split() == ["2", "True"]
    # the views were built again for the new tokens: the continuation shows the same (stopped) text, the token marked
    selected = root.locator('.rw-continuation-view [data-rw-column="intervened"] .rw-selected')
    expect(selected).to_have_count(1, timeout=30_000)
    assert selected.get_attribute("data-rw-gen") == str(n_prompt + 1)
    expect(root.locator(".rw-predictions-view tr")).not_to_have_count(0, timeout=30_000)
    screenshot(root, "continuation-token-selected")
    assert not errors, errors
