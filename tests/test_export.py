"""``ex.save_html``: one self-contained file, opened in headless Chromium with no kernel and no network."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from browser import chromium, require_browser, screenshot

import repwidget as rw
from repwidget.views import codec, export
from repwidget.views.panels.lens import lens_window

PROMPT = "one two three four five one two three four"


@pytest.fixture(scope="module")
def explorer(demo):
    model = demo
    sae = rw.demo.demo_sae()
    texts = [e.text for e in rw.demo.dataset("cycles", 20)]
    ex = rw.explore(model, PROMPT, [rw.Ablate(1, head=2)], saes=[sae], texts=texts)
    ex.select(layer=1, head=2, feature=3)
    return ex


def _saved(path) -> dict:
    text = path.read_text()
    return json.loads(re.search(r'<script type="application/json" id="rw-snapshot">(.*?)</script>', text, re.S)[1])


def test_the_selection_is_always_saved_and_the_rest_within_the_budget(explorer, tmp_path):
    small = _saved(explorer.save_html(tmp_path / "small.html", max_bytes=0))
    asked = [r["request"] for r in small["replies"]]
    sel = explorer.selection
    assert {"what": "pattern", "layer": sel["layer"], "head": sel["head"]} in asked
    assert {"what": "predictions", "position": sel["token"]} in asked
    assert {"what": "dashboard", "sae": 0, "index": 3} in asked
    assert not any(r == {"what": "pattern", "layer": 0, "head": 0} for r in asked)
    full = _saved(explorer.save_html(tmp_path / "full.html"))
    asked = [r["request"] for r in full["replies"]]
    heads = {(r["layer"], r["head"]) for r in asked if r["what"] == "pattern"}
    assert len(heads) == explorer.model.n_layers * explorer.model.n_heads
    assert len({r["position"] for r in asked if r["what"] == "predictions"}) == len(explorer.run.token_ids)
    # the saved answers are the kernel's own: the predictions of the ablated run
    answer = next(r for r in full["replies"] if r["request"] == {"what": "predictions", "position": sel["token"]})
    assert answer["reply"]["gen"] == explorer.generation
    assert full["state"]["intervention_list"] == explorer.intervention_list


def _tensor(answer: dict, key: str) -> np.ndarray:
    header = answer["reply"]["data"][key]
    return codec.decode({**header, "buffer": base64.b64decode(answer["buffers"][header["buffer"]])})


def test_batched_answers_equal_the_kernels_one_by_one(explorer):
    """A saved page computes logits a chunk of positions at a time and one wide logit lens: the same answers."""
    session = explorer.session
    n = len(explorer.run.token_ids)
    requests = [{"what": "predictions", "position": p} for p in (n - 1, 0, 3)]
    requests += [{"what": "lens", "start": a, "stop": b} for a, b in {lens_window(p, n) for p in range(n)}]
    one_by_one = [export.saved_answer(rw.views.Session(explorer.run, explorer.clean_run), r) for r in requests]
    for panel in session.panels:
        panel.prepare(session, explorer.selection)
    for request, expected in zip(requests, one_by_one, strict=True):
        batched = export.saved_answer(session, request)
        assert batched["reply"]["data"].keys() == expected["reply"]["data"].keys()
        for key, value in expected["reply"]["data"].items():
            if isinstance(value, dict) and "buffer" in value:
                got, want = (_tensor(a, key) for a in (batched, expected))
                np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{request} {key}")
            else:
                assert batched["reply"]["data"][key] == value, (request, key)


def test_markup_cannot_end_the_data_script():
    text = export._script_json({"token": "</script><script>alert(1)</script><!--"})
    assert "</" not in text and "<!--" not in text
    assert json.loads(text) == {"token": "</script><script>alert(1)</script><!--"}


def test_lens_window_matches_the_front_end():
    # js/src/views/lens.ts lensWindow: 16 positions centred on the token, clamped to the prompt
    assert lens_window(0, 40) == (0, 16)
    assert lens_window(20, 40) == (12, 28)
    assert lens_window(39, 40) == (24, 40)
    assert lens_window(3, 5) == (0, 5)


def test_saved_page_renders_offline_in_chromium(explorer, tmp_path):
    require_browser()
    path = explorer.save_html(tmp_path / "explorer.html", title="<script>alert('title')</script>")
    size = path.stat().st_size
    assert size < 2_000_000, f"{size} bytes"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 1400})
        requests, dialogs, errors = [], [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.locator("body[data-rw-ready]").wait_for(timeout=20_000)
        root = page.locator(".rw-root")
        assert root.locator(".rw-token").count() == len(explorer.run.token_ids)
        # every view drew its data from the saved answers
        root.locator("canvas[data-rw-pattern='1.2']").wait_for(timeout=10_000)
        assert root.locator(".rw-predictions-view [data-rw-prediction]").count() >= 10
        assert root.locator(".rw-lens-view td").count() > 0
        root.locator(".rw-features-view [data-rw-feature]").first.wait_for(timeout=10_000)
        root.locator(".rw-dashboard").get_by_text("feature 3", exact=False).first.wait_for(timeout=10_000)
        assert not root.locator("[data-rw-steer]").is_visible()  # steering re-runs: not in a snapshot
        assert "ablate head 1.2" in root.locator(".rw-interventions-view").inner_text()
        assert root.locator("[data-rw-static]").count() == 1
        assert root.locator("[data-rw-remove]").count() == 0  # fixed: nothing to remove
        screenshot(page, "static-export")
        # clicking selects (nothing re-runs): another head's pattern, from the snapshot
        root.locator("[data-rw-head='0.0']").click()
        root.locator("canvas[data-rw-pattern='0.0']").wait_for(timeout=10_000)
        assert "ablate head 1.2" in root.locator(".rw-interventions-view").inner_text()
        assert not root.locator("[data-rw-error]").is_visible()  # no error shown in the snapshot
        assert page.title() == "<script>alert('title')</script>"
        # a page saved with only the selection's answers: a click on what it lacks gets a calm note, no red bar
        page.goto(explorer.save_html(tmp_path / "small.html", max_bytes=0).as_uri())
        page.locator("body[data-rw-ready]").wait_for(timeout=20_000)
        page.locator(".rw-root [data-rw-head='0.0']").click()
        notice = page.locator(".rw-root [data-rw-notice]")
        notice.wait_for(timeout=10_000)
        assert notice.get_attribute("role") == "status"
        assert notice.inner_text().startswith("Not saved in this page: the pattern for this selection.")
        assert "ex.save_html(path, max_bytes=" in notice.inner_text()  # how to save more
        assert not page.locator(".rw-root [data-rw-error]").is_visible()
        screenshot(page.locator(".rw-interventions-view"), "static-export-unsaved-click")
    assert not dialogs and not errors, (dialogs, errors)
    assert all(url.startswith(("file:", "blob:", "data:")) for url in requests), requests


def test_embed_saves_the_answers_in_the_widget_state_until_the_next_rerun(explorer):
    explorer.embed(max_bytes=0)
    saved = explorer.get_state()["snapshot"]
    asked = [s["request"] for s in saved]
    assert {"what": "predictions", "position": explorer.selection["token"]} in asked
    assert all(s["reply"]["gen"] == explorer.generation for s in saved)
    before = explorer.interventions
    try:
        explorer.interventions = [rw.Ablate(0, head=1)]
        assert explorer.snapshot == []  # stale answers are never shown
    finally:
        explorer.interventions = before
