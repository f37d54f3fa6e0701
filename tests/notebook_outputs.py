"""What a shipped notebook's outputs must say once run top to bottom, however it was run (nbclient in
tests/test_cli_and_notebooks.py and tests/test_workshop_notebooks.py, JupyterLab in tests/test_browser_notebooks.py)."""

from __future__ import annotations

import re
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: run by nbclient only (tests/test_workshop_notebooks.py): they add no time to the shared JupyterLab's critical path
NBCLIENT_ONLY = ("06_attribution_graphs.ipynb", "07_concepts_at_scale.ipynb", "08_vision.ipynb")
#: the notebooks run in JupyterLab (tests/test_browser_notebooks.py)
IN_BROWSER = [p for p in NOTEBOOKS if p.name not in NBCLIENT_ONLY]


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
    if name in NBCLIENT_ONLY:
        check_workshop_insights(name, text)
    checks = sum(c.source.count("exercises.check_") for c in nb.cells if c.cell_type == "code")
    assert text.count("\u2718 not yet") == checks


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"the notebook did not print {pattern!r}"
    return float(found.group(1))


def check_workshop_insights(name: str, text: str) -> None:
    """What workshops 6-8 promise, read from what they printed (each value computed by the notebook)."""
    if name == "06_attribution_graphs.ipynb":
        # the graph's edges are exact direct effects: the replacement model agrees to rounding
        assert _number(r"largest relative gap ([\d.e+-]+)", text) < 1e-3
        assert _number(r"replacement score ([\d.]+)", text) > 0.5
        assert _number(r"completeness score ([\d.]+)", text) > 0.9
        # induction: the word the graph's top logit predicts is the key the induction head attends to most
        predicted = re.search(r"predicted: '(\w+)'", text).group(1)
        assert re.search(r"key \d+ '(\w+)'", text).group(1) == predicted
    if name == "07_concepts_at_scale.ipynb":
        assert "tuned lens below the logit lens at every layer before the last: True" in text
        rows = re.findall(r"^\s+(\d)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", text, re.M)  # layer, test, OOD, control
        assert len(rows) == 4 and float(rows[-1][1]) >= 0.9 and float(rows[-1][1]) > float(rows[-1][3]) + 0.3
        assert _number(r"neurons: +\['([\d.]+)'", text) >= 0.9  # one neuron reads it (k = 1)
        assert re.search(r"top 8 contexts are \{'(positive|negative)': [678]", text)
        assert "reads 'negative'" in text and "-> 100%>" in text  # some strength flips every held-out review
    if name == "08_vision.ipynb":
        top = _number(r"lowers the predicted class's logit by ([\d.]+)", text)
        assert top > _number(r"a random channel by (-?[\d.]+)", text) + 1.0
        assert _number(r"completeness error ([\d.]+)%", text) < 1.0
        assert _number(r"class lens after block 3: right on (\d+)%", text) >= 90
        assert "significant: True" in text
