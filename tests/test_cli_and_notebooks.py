"""The `repwidget` command and the notebooks (executed top to bottom, offline)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _repwidget(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repwidget", *args], capture_output=True, text=True, **kwargs)


def test_help_and_version():
    out = _repwidget("--help")
    assert out.returncode == 0 and all(c in out.stdout for c in ("demo", "notebooks", "info"))
    assert _repwidget("--version").stdout.startswith("repwidget ")
    assert _repwidget("nonsense").returncode == 2


def test_notebooks_are_copied_and_never_overwritten(tmp_path):
    out = _repwidget("notebooks", str(tmp_path / "nb"))
    assert out.returncode == 0, out.stderr
    copied = sorted(p.name for p in (tmp_path / "nb").glob("*.ipynb"))
    assert copied == [p.name for p in NOTEBOOKS] and len(copied) == 6
    (tmp_path / "nb" / "quickstart.ipynb").write_text("mine")
    again = _repwidget("notebooks", str(tmp_path / "nb"))
    assert "kept" in again.stdout and (tmp_path / "nb" / "quickstart.ipynb").read_text() == "mine"


def test_info_prints_what_was_found():
    out = _repwidget("info", "demo")
    assert out.returncode == 0, out.stderr
    assert "attn_proj" in out.stdout and "attn.c_proj" in out.stdout
    bad = _repwidget("info", "./missing-model")
    assert bad.returncode == 2 and "no such directory" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "Error" not in text
    if path.name == "quickstart.ipynb":  # the first insight: copying breaks when the circuit's head goes
        assert "the induction head is 1.0" in text and "previous-token head 0.0 ablated" in text
        clean, clicked = map(float, re.search(r"clean ([\d.]+) nats, with your clicks ([\d.]+) nats", text).groups())
        assert clean < 0.25 and clicked > clean + 0.5
    if path.name == "05_real_model.ipynb" and "SmolLM2 is not installed" not in text:  # (tests/smollm2.py: CI has it)
        clean, together = map(float, re.search(r"clean: ([\d.]+) nats.*together: ([\d.]+) nats", text, re.S).groups())
        assert together > clean + 1 and "logit(Mary) - logit(John) = " in text
    # every exercise's check ran on its blank answer and said so
    checks = sum(c.source.count("exercises.check_") for c in nb.cells if c.cell_type == "code")
    assert text.count("\u2718 not yet") == checks
