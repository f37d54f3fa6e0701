"""The quickstart notebook in a real JupyterLab: run it, click the circuit's heads, read the kernel."""

from __future__ import annotations

import shutil
from pathlib import Path

from browser import Kernel, Lab, chromium, open_and_run, require_browser, screenshot

QUICKSTART = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
LOSS = "print(round(float(rw.analyses.token_losses(ex.run)[11:].mean()), 3))"


def test_the_quickstart_clicks_break_copying_as_it_says(tmp_path):
    from playwright.sync_api import expect

    require_browser()
    shutil.copyfile(QUICKSTART, tmp_path / "quickstart.ipynb")
    lab = Lab(tmp_path)
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            kernel = Kernel(lab, open_and_run(page, lab, "quickstart.ipynb"))
            try:
                root = page.locator(".rw-root").first
                root.locator(".rw-iv").first.wait_for(timeout=120_000)  # the second cell ablated head 1.0
                assert kernel.wait_for("print(ex.interventions)", "head=0").strip() == "[rw.Ablate(layer=1, head=0)]"
                assert float(kernel.run(LOSS)) > 0.5  # copying broken
                root.locator('[data-rw-head="1.0"]').click()  # a click removes it again
                assert kernel.wait_for("print(ex.interventions)", "[]").strip() == "[]"
                assert float(kernel.run(LOSS)) < 0.25
                root.locator('[data-rw-head="0.0"]').click()  # the previous-token head it reads from
                assert kernel.wait_for("print(ex.interventions)", "layer=0").strip() == "[rw.Ablate(layer=0, head=0)]"
                assert float(kernel.run(LOSS)) > 0.5
                root.locator('[data-rw-head="0.0"]').click()
                root.locator('[data-rw-head="1.0"]').click()  # the induction head, as the quickstart says
                assert kernel.wait_for("print(ex.interventions)", "layer=1").strip() == "[rw.Ablate(layer=1, head=0)]"
                expect(root.locator(".rw-iv")).to_have_count(1, timeout=30_000)
                root.locator('.rw-tokens-view [data-rw-token="15"]').click()  # a word of the second copy
                expect(root.locator(".rw-predictions-view")).to_contain_text("position 15", timeout=30_000)
                screenshot(root, "quickstart-induction-head-ablated")
            finally:
                kernel.close()
    finally:
        lab.close()
