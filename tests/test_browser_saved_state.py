"""``ex.embed()``: JupyterLab saves the explorer's answers with the notebook's widget state.

Front ends that restore saved widget state (nbclassic, nbconvert's HTML with the widget manager)
then show the views with data and no kernel: the front end answers its requests from the saved
answers first (js/tests/static.test.ts). JupyterLab 4 itself does not restore saved widget state
yet (jupyterlab/jupyterlab#15361, jupyter-widgets/ipywidgets#3888); ``ex.save_html`` is the way
to share a view that opens anywhere (tests/test_export.py).
"""

from __future__ import annotations

import json
import time

from browser import chromium, end_sessions, notebook, open_and_run

CELL = """import repwidget as rw
ex = rw.explore(rw.demo_model(), "the capital of france is", [rw.Ablate(0, head=0)])
ex.embed()
ex"""


def test_jupyterlab_saves_the_embedded_answers_with_the_notebook(lab):
    path = lab.root / "saved.ipynb"
    path.write_text(json.dumps(notebook([CELL])))
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            open_and_run(page, lab, "saved.ipynb", workspace="saved")
            page.locator('.rw-root [data-rw-column="intervened"] tr').nth(1).wait_for(timeout=60_000)
            page.keyboard.press("Control+s")
            deadline, saved = time.time() + 30, {}
            while time.time() < deadline and not saved.get("metadata", {}).get("widgets"):
                time.sleep(0.5)
                saved = json.loads(path.read_text())
    finally:
        end_sessions(lab, "saved.ipynb")
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    ours = [m["state"] for m in state.values() if m["state"].get("_anywidget_id", "").endswith("Explorer")]
    assert len(ours) == 1, [m["state"].get("_anywidget_id") for m in state.values()]
    explorer = ours[0]
    asked = [s["request"] for s in explorer["snapshot"]]
    assert {"what": "predictions", "position": 5} in asked and {"what": "overview"} in asked
    assert explorer["intervention_list"][0]["head"] == 0 and explorer["tokens"][-1] == "is"
    # the view in the saved output points at that model
    outputs = saved["cells"][0]["outputs"]
    views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for o in outputs if "data" in o]
    assert views and views[0] in state
