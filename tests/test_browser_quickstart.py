"""The quickstart notebook in a real JupyterLab: run it, select and ablate the circuit's heads, read the kernel, and
see the effect where the explorer opens (a word of the second copy): in the predictions, the lens and the tokens."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from browser import Kernel, chromium, end_sessions, open_and_run, screenshot

QUICKSTART = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
LOSS = "print(round(float(rw.analyses.token_losses(ex.run)[11:].mean()), 3))"


def test_the_quickstart_clicks_break_copying_as_it_says(lab):
    from playwright.sync_api import expect

    shutil.copyfile(QUICKSTART, lab.root / "quickstart-clicks.ipynb")
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            kernel = Kernel(lab, open_and_run(page, lab, "quickstart-clicks.ipynb", workspace="quickstart-clicks"))
            try:
                root = page.locator(".rw-root").first
                root.locator(".rw-iv-list .rw-empty").wait_for(timeout=120_000)  # Run All leaves the click to us
                page.locator(".jp-OutputArea pre", has_text="nothing ablated in the explorer yet").wait_for(
                    timeout=120_000
                )
                assert kernel.run("print(ex.interventions)").strip() == "[]"
                root.locator('[data-rw-head="1.0"]').click()  # the head the first cell names, then its button
                root.locator('[data-rw-ablate="head"]').click()
                assert kernel.wait_for("print(ex.interventions)", "head=0").strip() == "[rw.Ablate(layer=1, head=0)]"
                assert float(kernel.run(LOSS)) > 0.5  # copying broken
                # it opens where the copy matters: position 15, whose clean prediction the ablation takes away
                predictions = root.locator(".rw-predictions-view")
                expect(predictions).to_contain_text("position 15", timeout=30_000)
                clean = root.locator('[data-rw-column="clean"] tr').nth(1).inner_text().split("\t")
                top = kernel.run("print(model.to_str_tokens([ex.clean_run.logits[15].argmax().item()])[0])").strip()
                assert clean[0] == top and float(clean[1].rstrip("%")) > 80 and float(clean[2].rstrip("%")) < 40
                intervened = root.locator('[data-rw-column="intervened"] tr').nth(1).inner_text().split("\t")
                assert intervened[0] != top  # another word comes first without the head
                # the lens marks the cells whose top token changed, and shows the clean run on request
                expect(root.locator(".rw-lens-view td.rw-changed").first).to_be_visible(timeout=30_000)
                cell = root.locator('.rw-lens-view td[data-rw-token="15"][data-rw-layer="3"]')
                ablated_word = cell.inner_text()
                root.locator('[data-rw-lens-run="clean"]').click()
                expect(cell).to_have_text(top)
                assert ablated_word != top
                root.locator('[data-rw-lens-run="intervened"]').click()
                # the tokens say how each position's clean top prediction changed
                legend = root.locator(".rw-tokens-view .rw-legend")
                expect(legend).to_contain_text("how the interventions changed", timeout=30_000)
                expect(root.locator('.rw-token[data-rw-token="15"]')).to_have_attribute(
                    "title", re.compile(f'clean top next "{top}"')
                )
                root.locator('[data-rw-head="1.0"]').click()  # selects it: its pattern shows (README's picture)
                expect(root.locator('canvas[data-rw-pattern="1.0"]')).to_have_count(1, timeout=30_000)
                screenshot(root, "quickstart-induction-head-ablated")

                # selected, the button beside it removes the ablation
                root.locator('[data-rw-ablate="head"]').click()
                assert kernel.wait_for("print(ex.interventions)", "[]").strip() == "[]"
                assert float(kernel.run(LOSS)) < 0.25
                root.locator('[data-rw-head="0.0"]').click(modifiers=["Shift"])  # the previous-token head it reads
                assert kernel.wait_for("print(ex.interventions)", "layer=0").strip() == "[rw.Ablate(layer=0, head=0)]"
                assert float(kernel.run(LOSS)) > 0.5
                root.locator('[data-rw-ablate="head"]').click()  # head 0.0 is selected: restore it
                root.locator('[data-rw-head="1.0"]').click()
                root.locator('[data-rw-ablate="head"]').click()  # the induction head, as the quickstart says
                assert kernel.wait_for("print(ex.interventions)", "layer=1").strip() == "[rw.Ablate(layer=1, head=0)]"
                expect(root.locator(".rw-iv")).to_have_count(1, timeout=30_000)
                root.locator('.rw-tokens-view [data-rw-token="14"]').click()  # another word of the second copy
                expect(predictions).to_contain_text("position 14", timeout=30_000)
                page.keyboard.press("ArrowRight")  # the focused token line moves the selection
                expect(predictions).to_contain_text("position 15", timeout=30_000)
                assert kernel.wait_for("print(ex.selection['token'])", "15").strip() == "15"
            finally:
                kernel.close()
    finally:
        end_sessions(lab, "quickstart-clicks.ipynb")
