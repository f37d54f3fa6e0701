"""Real-browser test helpers: JupyterLab on 127.0.0.1, headless Chromium through Playwright, and a
second client on the notebook's own kernel to read Python state back."""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from repwidget.cli import QUIET_LAB_FLAGS, QUIET_LAB_SETTINGS

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "e2e"


def require_browser() -> None:
    """Skip where no Chromium is installed, except in CI (``CI`` set), where its absence is a failure."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("the python 'playwright' package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notebook(cells: list[str]) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None} for c in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


#: the session's JupyterLab: every cell in the DOM (JupyterLab 4 otherwise renders only the cells near the
#: viewport) and widget state saved with a notebook (tests/test_browser_saved_state.py)
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
}


class Lab:
    """A JupyterLab (or, with ``app="notebook"``, a Notebook 7) server with a token, on 127.0.0.1 only."""

    def __init__(self, root: Path, settings: dict[str, dict] | None = None, app: str = "jupyterlab") -> None:
        """``settings``: JupyterLab settings by plugin path, e.g. ``{"@jupyterlab/x-extension/plugin": {...}}``."""
        self.app = app
        self.root, self.port, self.token = root, free_port(), "e2e-token"
        self.runtime = root / ".runtime"
        settings_dir = root / ".settings"
        for plugin, values in {**QUIET_LAB_SETTINGS, **(settings or {})}.items():  # news off: no popup over the views
            path = settings_dir / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        settings = settings_dir
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.runtime),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            # its own workspaces (open tabs, sidebar widths): none leaks in from another test or run
            "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
        command = [
            sys.executable, "-m", app, "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}", *QUIET_LAB_FLAGS,
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        self.log = open(root / "jupyterlab.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=root)
        self.api("/api/status", timeout=120)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    def api(self, path: str, timeout: float = 10):
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url(path), timeout=5) as r:
                    return json.load(r)
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"JupyterLab did not answer {path}; see {self.log.name}") from None
                time.sleep(0.3)

    def kernel_ready(self, timeout: float = 120, page=None, name: str | None = None) -> str:
        """Wait until the kernel of notebook ``name`` (of any notebook, without it) exists, is idle and has a
        connection; return its id. In a shared JupyterLab other notebooks' kernels may be open: name it.

        With ``page``, wait through Playwright: Python route handlers (``page.route``) only run while
        Playwright has control, and a request they hold would stall the page."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for session in self.api("/api/sessions"):
                kernel = session.get("kernel") or {}
                if name is not None and session.get("path") != name:
                    continue
                if kernel.get("execution_state") == "idle" and kernel.get("connections", 0) > 0:
                    return kernel["id"]
            if page is None:
                time.sleep(0.5)
            else:
                page.wait_for_timeout(500)
        raise RuntimeError("the notebook's kernel never became idle with a connection")

    def close(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Kernel:
    """A second client on the notebook's kernel: runs code there and returns what it printed."""

    def __init__(self, lab: Lab, kernel_id: str) -> None:
        from jupyter_client import BlockingKernelClient

        self.client = BlockingKernelClient(connection_file=str(lab.runtime / f"kernel-{kernel_id}.json"))
        self.client.load_connection_file()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=30)

    def run(self, code: str, timeout: float = 60) -> str:
        out: list[str] = []

        def collect(msg) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                out.append("\n".join(content["traceback"]))

        reply = self.client.execute_interactive(code, output_hook=collect, timeout=timeout, store_history=False)
        text = "".join(out)
        assert reply["content"]["status"] == "ok", text
        return text

    def wait_for(self, code: str, expected: str, timeout: float = 60) -> str:
        """Run ``code`` until what it prints contains ``expected``."""
        deadline = time.time() + timeout
        while True:
            text = self.run(code)
            if expected in text or time.time() > deadline:
                return text
            time.sleep(0.2)

    def close(self) -> None:
        self.client.stop_channels()


class SharedChromium:
    """One headless Chromium for a whole test session, started when first asked for.

    ``close`` ends it: the tiers (``tests/tiers.py``) do so when the run leaves the e2e tests, because while
    Playwright's sync API is open it keeps an asyncio loop running in this thread (``asyncio.run`` then refuses)."""

    def __init__(self) -> None:
        self._playwright = self._browser = None

    def browser(self):
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        return self._browser

    def close(self) -> None:
        playwright, browser, self._playwright, self._browser = self._playwright, self._browser, None, None
        if playwright is not None:
            try:
                browser.close()
            finally:
                playwright.stop()


SHARED = SharedChromium()
atexit.register(SHARED.close)


class Pages:
    """The pages and contexts a test opens in the shared Chromium, all closed by ``close``."""

    def __init__(self, browser) -> None:
        self.browser, self.opened = browser, []

    def new_page(self, **options):
        self.opened.append(self.browser.new_page(**options))
        return self.opened[-1]

    def new_context(self, **options):
        self.opened.append(self.browser.new_context(**options))
        return self.opened[-1]

    def close(self) -> None:
        for each in reversed(self.opened):
            each.close()
        self.opened.clear()


@contextmanager
def chromium() -> Iterator[Pages]:
    """New pages in the session's Chromium (``SHARED``), closed at the end of the ``with``."""
    pages = Pages(SHARED.browser())
    try:
        yield pages
    finally:
        pages.close()


def run_all_cells(page) -> None:
    """Run every cell of the open notebook through JupyterLab's own Run menu."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def open_and_run(page, lab: Lab, name: str, workspace: str | None = None) -> str:
    """Open notebook ``name`` of ``lab`` in ``page``, wait for its kernel (idle, connected), run every
    cell; return the kernel's id. ``workspace``: a JupyterLab workspace of that name, so that notebooks
    opened earlier in the same Lab are not reopened beside this one."""
    if lab.app == "notebook":
        page.goto(lab.url(f"/notebooks/{name}"))
    else:
        page.goto(lab.url(f"/lab/workspaces/{workspace}/tree/{name}" if workspace else f"/lab/tree/{name}"))
    page.locator(".jp-Notebook").wait_for(timeout=120_000)
    kernel_id = lab.kernel_ready(page=page, name=name)
    run_all_cells(page)
    return kernel_id


@contextmanager
def notebook_page(
    lab: Lab,
    name: str,
    cells: list[str],
    ready: str,
    height: int,
    timeout: float = 180_000,
    blocked: list | None = None,
) -> Iterator:
    """Notebook ``name`` of ``cells`` opened in ``lab`` (the session's, ``tests/conftest.py``) in its own workspace
    and run in Chromium (1400 px wide, ``height`` high); once the CSS selector ``ready`` shows, yields
    ``(page, kernel, errors)``: the page, a client on its kernel and the page errors seen. Its kernel and page are
    closed afterwards. With ``blocked`` (a list), every request not to 127.0.0.1 is aborted and its URL put there."""
    (lab.root / name).write_text(json.dumps(notebook(cells)))
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": height})
        if blocked is not None:

            def only_loopback(route) -> None:
                if urllib.parse.urlparse(route.request.url).hostname == "127.0.0.1":
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", only_loopback)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        try:
            kernel_id = open_and_run(page, lab, name, workspace=Path(name).stem)
            page.locator(ready).first.wait_for(timeout=timeout)
            kernel = Kernel(lab, kernel_id)
            try:
                yield page, kernel, errors
            finally:
                kernel.close()
        finally:
            end_sessions(lab, name)


def end_sessions(lab: Lab, name: str | None = None) -> None:
    """Shut the kernel of notebook ``name`` (of every notebook without it) down: the next one gets the cores."""
    for session in lab.api("/api/sessions"):
        if name is None or session.get("path") == name:
            request = urllib.request.Request(lab.url(f"/api/sessions/{session['id']}"), method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()


def screenshot(target, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    target.screenshot(path=str(path))
    return path
