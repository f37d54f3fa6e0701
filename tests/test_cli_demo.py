"""`repwidget demo`: JupyterLab on the user's own copies of the notebooks (never the checkout's, never
overwriting an edited one), with Jupyter's news pop-up and update check off."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from browser import free_port

NOTEBOOKS = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_demo_runs_from_a_work_copy_with_news_off(tmp_path):
    work = tmp_path / "repwidget-notebooks"
    work.mkdir()
    edited = json.dumps({"cells": [], "metadata": {"mine": True}, "nbformat": 4, "nbformat_minor": 5})
    (work / "quickstart.ipynb").write_text(edited)  # a learner's edited copy from an earlier demo
    port, token = free_port(), "test-token-123"
    server = subprocess.Popen(
        [sys.executable, "-m", "repwidget", "demo", "--no-browser", "--port", str(port), "--token", token],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in server.stdout], daemon=True).start()
    output: list[str] = []
    try:
        deadline, url = time.time() + 120, None
        while url is None and time.time() < deadline and server.poll() is None:
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                continue
            url = next(iter(re.findall(r"Open this address in a browser: (\S+)", output[-1])), None)
        assert url == f"http://127.0.0.1:{port}/lab/tree/quickstart.ipynb?token={token}", "".join(output)
        page = _get(url)  # the address is printed once the server answers: it works at once

        config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S).group(1))
        assert Path(config["serverRoot"]) == work  # the work copy is served, not the checkout's notebooks/
        assert config["news"] == {"disabled": True}  # --LabApp.news_url=None: nothing fetched
        settings = json.loads(
            _get(f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}")
        )
        assert settings["settings"]["fetchNews"] == "false"  # no "Would you like to get notified..." pop-up
        assert settings["settings"]["checkForUpdates"] is False

        served = json.loads(_get(f"http://127.0.0.1:{port}/api/contents/?token={token}"))
        assert sorted(c["name"] for c in served["content"] if c["type"] == "notebook") == NOTEBOOKS
        assert sorted(p.name for p in work.glob("*.ipynb")) == NOTEBOOKS
        assert (work / "quickstart.ipynb").read_text() == edited  # kept as the learner left it
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert "kept as you left them: quickstart.ipynb" in "".join(output)


#: the old gesture ("click to ablate") and a hard-coded notebook count, as the README, docs and help once said
OLD_WORDING = re.compile(
    r"click(?:ing)?[- ]to[- ]ablate|toggles? its ablation|click a feature to ablate|four workshop", re.I
)


def test_readme_docstring_and_help_say_click_selects_and_shift_click_ablates(capsys):
    import pytest

    import repwidget as rw
    from repwidget.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["notebooks", "--help"])
    main([])  # no command: the commands' one-line help
    listing = capsys.readouterr().out
    root = Path(__file__).resolve().parents[1]
    texts = {
        "repwidget --help": top + listing,
        "rw.explore": rw.explore.__doc__,
        "rw.Explorer": rw.Explorer.__doc__,
        **{p.name: p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))]},
    }
    assert {name: OLD_WORDING.findall(text) for name, text in texts.items() if OLD_WORDING.search(text)} == {}
    for name in ("repwidget --help", "rw.explore", "README.md"):
        assert "shift+click" in " ".join(texts[name].split()), name
    workshops = len(NOTEBOOKS) - 1  # all but the quickstart
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert f"{words[workshops]} workshop notebooks" in listing


def test_copied_notebooks_hold_what_the_kernel_reports_so_they_open_unmodified(tmp_path):
    """JupyterLab writes the kernel's display name and language_info into a notebook when its kernel starts and
    marks the tab modified (●) if they differ: the copies already hold them (checked in Chromium by hand)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    from repwidget.cli import main

    assert main(["notebooks", str(tmp_path)]) == 0
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        reported = kc.kernel_info(reply=True, timeout=60)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    name = KernelSpecManager().get_kernel_spec("python3").display_name
    for path in sorted(tmp_path.glob("*.ipynb")):
        metadata = json.loads(path.read_text())["metadata"]
        assert metadata["language_info"] == reported, path.name
        assert metadata["kernelspec"]["display_name"] == name, path.name
