"""Workshops 6-8 (attribution graphs, concepts at dataset scale, vision) run top to bottom by nbclient, without a
browser (they add nothing to the shared JupyterLab's tests), and what each promises read from its outputs
(`notebook_outputs.check_workshop_insights`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from notebook_outputs import NBCLIENT_ONLY, check_outputs, committed_without_outputs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", NBCLIENT_ONLY)
def test_workshop_notebook_runs_top_to_bottom_and_shows_what_it_promises(name):
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / name
    committed_without_outputs(path)
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the kernel's torch on one thread, as the test workers'
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute(env=env)
    check_outputs(name, nb)
    print(f"{name}: {time.perf_counter() - start:.1f} s")
