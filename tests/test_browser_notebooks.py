"""Every shipped notebook (but workshops 6-8: nbclient, tests/test_workshop_notebooks.py) run once, in JupyterLab
in headless Chromium with the network cut, then checked three ways on that one run: its outputs (no error, the
insights it promises, every exercise's check on its blank answer), its charts drawn (Vega inlined, no CDN) with
nothing but 127.0.0.1 asked for and no console error, and every widget read as a workshop room sees it: light and
dark, on a 1366x768 laptop and a 1920x1080 screen, every text at WCAG AA contrast (4.5:1), each screenshotted
(artifacts/e2e/ui-*.png)."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser import ARTIFACTS, Kernel, Lab, chromium, end_sessions, notebook, open_and_run, screenshot
from notebook_outputs import IN_BROWSER, check_outputs, committed_without_outputs
from ui_checks import contrast, scroll_to_top, set_theme, worst

#: the notebooks that draw altair charts (the quickstart and 05, on the real model, show widgets and tables only)
CHARTED = {"01_attention_and_induction", "02_logit_lens_and_ioi", "03_probes_and_steering", "04_sae_features"}
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
SIZES = ((1366, 768), (1920, 1080))
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
#: every widget's views have painted (the predictions, where there are any, hold rows)
PAINTED = """() => [...document.querySelectorAll('.rw-root')].every(r =>
  !r.querySelector('[data-rw-predictions]') || r.querySelector('[data-rw-predictions] tr td'))"""


@dataclass
class Ran:
    """A shipped notebook after Run All in the session's JupyterLab: its page (still open), a client on its
    kernel, and what the page reported (console errors, page errors, HTTP errors) since it opened."""

    path: Path
    lab: Lab
    page: object
    kernel: Kernel
    blocked: list[str]
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def offline(lab):
    """A Chromium context in which every request that is not to 127.0.0.1 is aborted and recorded."""
    blocked: list[str] = []

    def only_loopback(route) -> None:
        url = route.request.url
        if urlparse(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.route("**/*", only_loopback)
        yield context, blocked


@pytest.fixture(scope="module", params=IN_BROWSER, ids=[p.stem for p in IN_BROWSER])
def ran(request, lab, offline) -> Ran:
    """Each shipped notebook run once (pytest runs every test of one notebook before the next one starts)."""
    path: Path = request.param
    context, blocked = offline
    shutil.copyfile(path, lab.root / path.name)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    try:
        open_and_run(page, lab, path.name, workspace=path.stem)
        page.wait_for_function(ALL_RAN, timeout=300_000, polling=500)
        kernel = Kernel(lab, lab.kernel_ready(page=page, name=path.name))  # after the run: it asks on the busy shell
        try:
            yield Ran(path, lab, page, kernel, blocked, problems)
        finally:
            kernel.close()
    finally:
        end_sessions(lab, path.name)  # the next notebook gets the cores to itself
        page.close()


def test_notebook_runs_top_to_bottom(ran):
    """Its outputs, as JupyterLab saves them with the notebook."""
    import nbformat

    committed_without_outputs(ran.path)
    saved = ran.lab.root / ran.path.name
    before = saved.stat().st_mtime_ns
    ran.page.keyboard.press("Control+s")
    deadline = time.time() + 60
    while saved.stat().st_mtime_ns == before and time.time() < deadline:
        ran.page.wait_for_timeout(300)
    ran.page.wait_for_timeout(300)  # written whole
    nb = nbformat.read(saved, as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "JupyterLab did not save the outputs"
    check_outputs(ran.path.name, nb)


def test_notebook_runs_and_draws_its_charts_offline(ran):
    page, kernel, blocked, problems = ran.page, ran.kernel, ran.blocked, ran.problems
    prompts = page.evaluate(PROMPTS)
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"cells that did not run: {prompts}"
    assert kernel.run("import sys; print(getattr(sys, 'last_value', None))").strip() == "None"
    shown = int(kernel.run(CHARTS_SHOWN))
    if ran.path.stem in CHARTED:
        assert shown >= 2, "every workshop notebook with charts draws them"
    deadline = time.time() + 120  # the charts are drawn, or one asked the network (for Vega, say)
    while page.evaluate(CHARTS_DRAWN) < shown and not blocked and time.time() < deadline:
        page.wait_for_timeout(500)
    assert not blocked, f"requests to other hosts than 127.0.0.1: {blocked}"
    assert FAILED not in page.inner_text("body")
    assert page.evaluate(CHARTS_DRAWN) == shown
    _full_page_screenshot(page, f"notebook-{ran.path.stem}-offline")
    for i, chart in enumerate(page.locator(".jp-OutputArea-output .vega-embed").all()):
        screenshot(chart, f"notebook-{ran.path.stem}-chart-{i + 1}")
    assert not blocked, f"requests to other hosts than 127.0.0.1: {blocked}"
    assert not problems, problems


def test_every_widget_reads_in_both_themes_at_laptop_and_desktop_sizes(ran):
    page, stem = ran.page, ran.path.stem
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    measured: dict[str, list[dict]] = {}
    page.wait_for_function(PAINTED, timeout=120_000, polling=500)
    roots = page.locator(".rw-root")
    page.mouse.move(1, 1)  # not hovering a token (that colours the tokens by attention)
    try:
        for theme, name in THEMES.items():
            set_theme(page, name)
            for width, height in SIZES:
                page.set_viewport_size({"width": width, "height": height})
                for i in range(roots.count()):
                    scroll_to_top(page, roots.nth(i))
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / f"ui-{stem}-{theme}-{width}x{height}-{i + 1}.png"))
                    if (width, height) == SIZES[0]:
                        measured[f"{theme} widget {i + 1}"] = contrast(roots.nth(i))
    finally:
        set_theme(page, THEMES["light"])
    (ARTIFACTS / f"ui-{stem}-contrast.json").write_text(
        json.dumps({k: worst(v, 20) for k, v in measured.items()}, indent=1)
    )
    failing = {key: [m for m in worst(values, 5) if m["ratio"] < 4.5] for key, values in measured.items()}
    assert not any(failing.values()), failing


def test_own_prompt_of_unknown_words_warns_in_the_explorer(lab, offline):
    """A learner's own sentence on the demo model: the words it does not know are named above the tokens."""
    context, _ = offline
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
        end_sessions(lab, "own_prompt.ipynb")
        page.close()


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
