"""The shipped notebooks as a workshop room sees them: JupyterLab with its file browser open, light and dark,
on a 1366x768 laptop and a 1920x1080 screen. Every widget is screenshotted in each (artifacts/e2e/ui-*.png)
and every text in it must read at WCAG AA contrast (4.5:1) in both themes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from browser import ARTIFACTS, Lab, chromium, open_and_run, require_browser
from ui_checks import contrast, scroll_to_top, set_theme, worst

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: every cell in the DOM (JupyterLab 4 otherwise renders only the cells near the viewport)
SETTINGS = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}
SIZES = ((1366, 768), (1920, 1080))
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
  return !prompts.some(p => p.includes('*')) && prompts.some(p => /\\[\\d+\\]/.test(p));
}"""
#: every widget's views have painted (the predictions, where there are any, hold rows)
PAINTED = """() => [...document.querySelectorAll('.rw-root')].every(r =>
  !r.querySelector('[data-rw-predictions]') || r.querySelector('[data-rw-predictions] tr td'))"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("workshop")
    for path in NOTEBOOKS:
        shutil.copyfile(path, root / path.name)
    lab = Lab(root, settings=SETTINGS)
    try:
        with chromium() as browser:
            yield lab, browser
    finally:
        lab.close()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_widget_reads_in_both_themes_at_laptop_and_desktop_sizes(lab, path):
    lab, browser = lab
    page = browser.new_page(viewport={"width": SIZES[0][0], "height": SIZES[0][1]})
    measured: dict[str, list[dict]] = {}
    try:
        open_and_run(page, lab, path.name, workspace=path.stem)
        page.wait_for_function(ALL_RAN, timeout=300_000, polling=500)
        page.wait_for_function(PAINTED, timeout=120_000, polling=500)
        roots = page.locator(".rw-root")
        page.mouse.move(1, 1)  # not hovering a token (that colours the tokens by attention)
        for theme, name in THEMES.items():
            set_theme(page, name)
            for width, height in SIZES:
                page.set_viewport_size({"width": width, "height": height})
                for i in range(roots.count()):
                    scroll_to_top(page, roots.nth(i))
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / f"ui-{path.stem}-{theme}-{width}x{height}-{i + 1}.png"))
                    if (width, height) == SIZES[0]:
                        measured[f"{theme} widget {i + 1}"] = contrast(roots.nth(i))
        set_theme(page, THEMES["light"])
    finally:
        page.close()
        for session in lab.api("/api/sessions"):
            import urllib.request

            request = urllib.request.Request(lab.url(f"/api/sessions/{session['id']}"), method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()
    (ARTIFACTS / f"ui-{path.stem}-contrast.json").write_text(
        json.dumps({k: worst(v, 20) for k, v in measured.items()}, indent=1)
    )
    failing = {key: [m for m in worst(values, 5) if m["ratio"] < 4.5] for key, values in measured.items()}
    assert not any(failing.values()), failing
