"""The explorer in the other front ends a workshop uses: Notebook 7 and marimo (both on 127.0.0.1, the network cut).
In each: the widget is styled (marimo mounts it in a shadow root), a click selects a head, shift+click ablates one,
and the kernel's state is read back."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser import ARTIFACTS, Kernel, Lab, chromium, free_port, notebook, open_and_run, require_browser, screenshot
from ui_checks import contrast, worst

CELL = """import repwidget as rw
ex = rw.explore(rw.demo_model(), "the capital of france is")
ex"""

#: a marimo app: the explorer, and a thread writing the kernel's state to a file the test reads
MARIMO_APP = """import marimo

app = marimo.App()


@app.cell
def _():
    import json
    import os
    import threading
    import time

    import marimo as mo

    import repwidget as rw

    ex = rw.explore(rw.demo_model(), "the capital of france is")

    def report():
        while True:
            state = {"interventions": repr(ex.interventions), "selection": ex.selection}
            with open(os.environ["RW_STATE"] + ".tmp", "w") as f:
                json.dump(state, f)
            os.replace(os.environ["RW_STATE"] + ".tmp", os.environ["RW_STATE"])
            time.sleep(0.2)

    threading.Thread(target=report, daemon=True).start()
    widget = mo.ui.anywidget(ex)
    widget
    return (widget,)


if __name__ == "__main__":
    app.run()
"""


def _offline(context) -> list[str]:
    """Abort (and record) every request the page makes to another host than 127.0.0.1."""
    blocked: list[str] = []

    def only_loopback(route) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    return blocked


def _styled(root) -> dict:
    """What the widget's root looks like: laid out by its own CSS (a flex column with the theme's colours), or not."""
    return root.evaluate(
        """(el) => { const s = getComputedStyle(el);
           return {display: s.display, direction: s.flexDirection, layout: el.dataset.rwLayout,
                   pattern: el.querySelector('.rw-pattern').getBoundingClientRect().width,
                   token: getComputedStyle(el.querySelector('.rw-token')).fontFamily,
                   input: getComputedStyle(el.querySelector('.rw-target')).borderTopStyle}; }"""
    )


def test_notebook_7_selects_and_ablates_a_head_and_the_kernel_sees_it(tmp_path):
    from playwright.sync_api import expect

    require_browser()
    (tmp_path / "explorer.ipynb").write_text(json.dumps(notebook([CELL])))
    lab = Lab(tmp_path, app="notebook")
    try:
        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            blocked = _offline(context)
            page = context.new_page()
            kernel = Kernel(lab, open_and_run(page, lab, "explorer.ipynb"))
            try:
                root = page.locator(".rw-root").first
                expect(root.locator('[data-rw-column="intervened"]')).to_contain_text("paris", timeout=120_000)
                style = _styled(root)
                assert style["display"] == "flex" and style["direction"] == "column" and style["pattern"] > 150
                root.locator('[data-rw-head="1.2"]').click()
                state = kernel.wait_for(
                    "print(ex.selection['head_layer'], ex.selection['head'], ex.interventions)", "1 2"
                )
                assert state.strip() == "1 2 []"
                root.locator('[data-rw-head="1.0"]').click(modifiers=["Shift"])
                assert kernel.wait_for("print(ex.interventions)", "head=0").strip() == "[rw.Ablate(layer=1, head=0)]"
                expect(root.locator('[data-rw-column="clean"]')).to_contain_text("paris", timeout=30_000)
                measured = [m for m in worst(contrast(root)) if m["ratio"] < 4.5]
                assert not measured, measured
                screenshot(page, "notebook7-explorer-head-ablated")
                assert not blocked, blocked
            finally:
                kernel.close()
    finally:
        lab.close()


@pytest.fixture
def marimo_app(tmp_path):
    require_browser()
    # found, not imported: marimo runs in its own process, and importing it here after nnsight (which the nnsight
    # backend's tests import) fails inside marimo's config dataclasses (nnsight 0.8.1 with marimo 0.25.2)
    if importlib.util.find_spec("marimo") is None:
        pytest.skip("marimo is not installed")
    (tmp_path / "app.py").write_text(MARIMO_APP)
    state = tmp_path / "state.json"
    port = free_port()
    env = {**os.environ, "RW_STATE": str(state), "MARIMO_SKIP_UPDATE_CHECK": "1"}
    log = open(tmp_path / "marimo.log", "w")  # noqa: SIM115
    command = [sys.executable, "-m", "marimo", "run", str(tmp_path / "app.py"), "--headless", "--host", "127.0.0.1",
               "--port", str(port), "--no-token", "--no-sandbox"]  # fmt: skip
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        yield f"http://127.0.0.1:{port}/", state, log.name
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _kernel_state(path: Path, expected: str, timeout: float = 60) -> dict:
    """The marimo kernel's state as its thread last wrote it, once it holds ``expected``."""
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        if path.exists():
            text = path.read_text()
            if expected in text:
                return json.loads(text)
        time.sleep(0.2)
    raise AssertionError(f"the kernel never reported {expected!r}; last: {text}")


def test_marimo_renders_the_explorer_styled_and_takes_clicks(marimo_app):
    from playwright.sync_api import expect

    url, state, log = marimo_app
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        blocked = _offline(context)
        page = context.new_page()
        deadline = time.time() + 60
        while True:  # the server takes a moment to listen
            try:
                page.goto(url)
                break
            except Exception:
                if time.time() > deadline:
                    raise AssertionError(Path(log).read_text()[-2000:]) from None
                time.sleep(0.5)
        root = page.locator(".rw-root").first  # Playwright's CSS locators pierce shadow roots
        expect(root.locator('[data-rw-column="intervened"]')).to_contain_text("paris", timeout=120_000)
        in_shadow = root.evaluate("(el) => el.getRootNode() instanceof ShadowRoot")
        style = _styled(root)
        # the styles reached the shadow root: a flex column, tokens in a monospace font, a full-size pattern
        assert style["display"] == "flex" and style["direction"] == "column", (in_shadow, style)
        assert "mono" in style["token"].lower() and style["pattern"] > 150, style
        assert style["input"] == "solid", style  # the attribution view's target box is drawn, not a bare line
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "marimo-explorer.png"), full_page=True)
        root.locator('[data-rw-head="1.2"]').click()
        reported = _kernel_state(state, '"head_layer": 1')
        assert reported["selection"]["head"] == 2 and reported["interventions"] == "[]"
        root.locator('[data-rw-head="1.0"]').click(modifiers=["Shift"])
        reported = _kernel_state(state, "head=0")
        assert reported["interventions"] == "[rw.Ablate(layer=1, head=0)]"
        expect(root.locator('[data-rw-column="clean"]')).to_contain_text("paris", timeout=30_000)
        measured = [m for m in worst(contrast(root)) if m["ratio"] < 4.5]
        assert not measured, measured
        page.screenshot(path=str(ARTIFACTS / "marimo-explorer-head-ablated.png"), full_page=True)
        assert in_shadow  # what this test is for: marimo mounts anywidgets in a shadow root
        assert not blocked, blocked
