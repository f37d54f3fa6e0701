"""What a shipped notebook's outputs must say once run top to bottom, however it was run (nbclient in
tests/test_cli_and_notebooks.py, JupyterLab in tests/test_browser_notebooks.py)."""

from __future__ import annotations

import re
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def committed_without_outputs(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"


def check_outputs(name: str, nb) -> None:
    """``nb`` (an ``nbformat`` notebook named ``name``, run): no error, the insights it promises, and every
    exercise's check ran on its blank answer and said so."""
    text = "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "Error" not in text
    if name == "quickstart.ipynb":  # the first insight: copying breaks when the circuit's head goes
        assert "the induction head is 1.0" in text and "previous-token head 0.0 ablated" in text
        found = re.search(r"clean ([\d.]+) nats, with (?:your clicks|head 1\.0 ablated) ([\d.]+) nats", text)
        clean, clicked = map(float, found.groups())  # (Run All leaves the explorer unclicked: the cell ablates in code)
        assert clean < 0.25 and clicked > clean + 0.5
        assert "nothing ablated in the explorer yet" in text  # Run All leaves the first click to the learner
    if name == "05_real_model.ipynb" and "SmolLM2 is not installed" not in text:  # (tests/smollm2.py: CI has it)
        clean, together = map(float, re.search(r"clean: ([\d.]+) nats.*together: ([\d.]+) nats", text, re.S).groups())
        assert together > clean + 1 and "logit(Mary) - logit(John) = " in text
    checks = sum(c.source.count("exercises.check_") for c in nb.cells if c.cell_type == "code")
    assert text.count("\u2718 not yet") == checks
