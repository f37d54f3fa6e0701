"""Every shipped notebook run in JupyterLab in headless Chromium with the network cut: each cell runs,
each chart is drawn (Vega inlined, no CDN), and nothing but 127.0.0.1 is ever asked for."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser import ARTIFACTS, Kernel, Lab, chromium, notebook, open_and_run, require_browser, screenshot

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: the notebooks that draw altair charts (the quickstart and 05, on the real model, show widgets and tables only)
CHARTED = {"01_attention_and_induction", "02_logit_lens_and_ioi", "03_probes_and_steering", "04_sae_features"}
#: every cell in the DOM (JupyterLab 4 otherwise renders only the cells near the viewport)
SETTINGS = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}
#: each code cell's prompt: "[3]:" ran, "[*]:" queued or running, "[ ]:" not run
PROMPTS = "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)"
#: Run All has finished: some cell ran, none is queued or running
ALL_RAN = f"""() => {{
  const prompts = ({PROMPTS})();
  return !prompts.some(p => p.includes('*')) && prompts.some(p => /\\[\\d+\\]/.test(p));
}}"""
#: what the kernel displayed as a cell's value: altair charts (any renderer) and JupyterChart widgets
CHARTS_SHOWN = (
    "import altair as _alt\nprint(sum(isinstance(v, (_alt.TopLevelMixin, _alt.JupyterChart)) for v in Out.values()))"
)
#: what altair's default (CDN) output shows when it cannot load Vega
FAILED = "Error loading script"
#: charts drawn: a vega-embed holding an SVG with marks or a canvas with something painted on it
CHARTS_DRAWN = """() => [...document.querySelectorAll('.jp-OutputArea-output .vega-embed')].filter(e => {
  if (e.querySelector('svg .role-mark > *')) return true;
  const canvas = e.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] > 0 && Math.min(px[i], px[i + 1], px[i + 2]) < 200) painted++;
  }
  return painted > 100;
}).length"""


@pytest.fixture(scope="module")
def offline_lab(tmp_path_factory):
    """One JupyterLab for every notebook, and one Chromium context in which every request that is not
    to 127.0.0.1 is aborted and recorded."""
    require_browser()
    root = tmp_path_factory.mktemp("notebooks")
    for path in NOTEBOOKS:
        shutil.copyfile(path, root / path.name)
    lab = Lab(root, settings=SETTINGS)
    blocked: list[str] = []

    def only_loopback(route) -> None:
        url = route.request.url
        if urlparse(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    try:
        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route("**/*", only_loopback)
            yield lab, context, blocked
            context.close()
    finally:
        lab.close()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws_its_charts_offline(offline_lab, path):
    lab, context, blocked = offline_lab
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    open_and_run(page, lab, path.name, workspace=path.stem)
    kernel = None
    try:
        page.wait_for_function(ALL_RAN, timeout=300_000, polling=500)
        kernel = Kernel(lab, lab.kernel_ready(page=page))  # after the run: it asks on the busy shell channel
        prompts = page.evaluate(PROMPTS)
        assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"cells that did not run: {prompts}"
        assert kernel.run("import sys; print(getattr(sys, 'last_value', None))").strip() == "None"
        shown = int(kernel.run(CHARTS_SHOWN))
        if path.stem in CHARTED:
            assert shown >= 2, "every workshop notebook with charts draws them"
        deadline = time.time() + 120  # the charts are drawn, or one asked the network (for Vega, say)
        while page.evaluate(CHARTS_DRAWN) < shown and not blocked and time.time() < deadline:
            page.wait_for_timeout(500)
        assert not blocked, f"requests to other hosts than 127.0.0.1: {blocked}"
        assert FAILED not in page.inner_text("body")
        assert page.evaluate(CHARTS_DRAWN) == shown
        _full_page_screenshot(page, f"notebook-{path.stem}-offline")
        for i, chart in enumerate(page.locator(".jp-OutputArea-output .vega-embed").all()):
            screenshot(chart, f"notebook-{path.stem}-chart-{i + 1}")
        assert not blocked, f"requests to other hosts than 127.0.0.1: {blocked}"
        assert not problems, problems
    finally:
        if kernel is not None:
            kernel.close()
        _end_sessions(lab)
        page.close()


def test_own_prompt_of_unknown_words_warns_in_the_explorer(offline_lab):
    """A learner's own sentence on the demo model: the words it does not know are named above the tokens."""
    lab, context, _ = offline_lab
    own = (
        "import repwidget as rw\nrw.explore(rw.demo_model(), 'my favourite dinosaur is a stegosaurus that eats plants')"
    )
    (lab.root / "own_prompt.ipynb").write_text(json.dumps(notebook([own])))
    page = context.new_page()
    try:
        open_and_run(page, lab, "own_prompt.ipynb", workspace="own_prompt")
        warning = page.locator(".rw-tokens-view [data-rw-warning]")
        warning.wait_for(timeout=120_000)
        assert "'stegosaurus'" in warning.inner_text() and "rw.demo.vocabulary()" in warning.inner_text()
        assert "UnknownWordsWarning" in page.locator(".jp-OutputArea").first.inner_text()  # and in Python
        screenshot(page.locator(".rw-root").first, "explorer-own-prompt-unknown-words")
    finally:
        _end_sessions(lab)
        page.close()


def _end_sessions(lab: Lab) -> None:
    """Shut every notebook's kernel down: the next notebook gets the cores to itself."""
    for session in lab.api("/api/sessions"):
        request = urllib.request.Request(lab.url(f"/api/sessions/{session['id']}"), method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def _full_page_screenshot(page, name: str) -> Path:
    """The whole notebook in one picture: the viewport made as tall as the notebook's content."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('.jp-NotebookPanel .jp-WindowedPanel-outer')]"
        ".map(e => e.scrollHeight))"
    )
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": min(int(height) + 160, 16_000)})
    page.evaluate("() => document.querySelectorAll('.jp-WindowedPanel-outer').forEach(e => e.scrollTop = 0)")
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": width, "height": 1000})
    return path
