"""The `repwidget` command, and the quickstart notebook run top to bottom by nbclient."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from notebook_outputs import NOTEBOOKS, check_outputs, committed_without_outputs

ROOT = Path(__file__).resolve().parents[1]


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
    assert copied == [p.name for p in NOTEBOOKS] and len(copied) == 9
    (tmp_path / "nb" / "quickstart.ipynb").write_text("mine")
    again = _repwidget("notebooks", str(tmp_path / "nb"))
    assert "kept" in again.stdout and (tmp_path / "nb" / "quickstart.ipynb").read_text() == "mine"


def test_info_prints_what_was_found():
    out = _repwidget("info", "demo")
    assert out.returncode == 0, out.stderr
    assert "attn_proj" in out.stdout and "attn.c_proj" in out.stdout
    bad = _repwidget("info", "./missing-model")
    assert bad.returncode == 2 and "no such directory" in bad.stderr and "Traceback" not in bad.stderr


def test_the_quickstart_runs_top_to_bottom_in_nbclient():
    """A smoke test without a browser (every notebook runs in JupyterLab in tests/test_browser_notebooks.py)."""
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / "quickstart.ipynb"
    committed_without_outputs(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    check_outputs(path.name, nb)
