"""rw.charts.offline()'s charts in JupyterLab's light and dark themes: no white box in the dark one (the chart's
background is the page's) and its text at WCAG AA contrast (4.5:1) against it, after the theme is switched."""

from __future__ import annotations

from browser import notebook_page, screenshot
from ui_checks import ratio, set_theme

CELLS = [
    """import torch
import repwidget as rw
rw.charts.offline()
rw.charts.head_grid(torch.rand(3, 4, generator=torch.Generator().manual_seed(0)), "induction score")""",
]
#: the chart as painted: whether its corner is transparent, the page's background behind it (the first opaque
#: background up from the chart), and its ink: the commonest opaque colour of the title strip (its top 14 px)
PAINTED = """(embed) => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  let page = [255, 255, 255];
  for (let e = embed; e; e = e.parentElement) {
    const bg = parse(getComputedStyle(e).backgroundColor);
    if (bg && bg[3] >= 1) { page = bg.slice(0, 3); break; }
  }
  const canvas = embed.querySelector('canvas');
  const ctx = canvas.getContext('2d');
  const corner = ctx.getImageData(1, 1, 1, 1).data;
  const strip = ctx.getImageData(0, 0, canvas.width, Math.round(24 * canvas.height / canvas.clientHeight)).data;
  const counts = new Map();
  for (let i = 0; i < strip.length; i += 4) {
    if (strip[i + 3] < 128) continue;
    const key = [strip[i], strip[i + 1], strip[i + 2]].join(',');
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const ink = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
  return { corner: [...corner], page, ink: ink ? ink[0].split(',').map(Number) : null };
}"""


def test_charts_follow_the_page_theme_with_readable_text(lab):
    with notebook_page(lab, "chart_theme.ipynb", CELLS, ".vega-embed canvas", 900) as (page, _, errors):
        embed = page.locator(".jp-OutputArea-output .vega-embed").first
        try:
            for theme in ("JupyterLab Dark", "JupyterLab Light"):
                set_theme(page, theme)
                page.wait_for_timeout(1500)  # the chart redrawn in the theme's colours
                painted = embed.evaluate(PAINTED)
                assert painted["corner"][3] == 0, (theme, painted)  # transparent: the page shows, no white box
                screenshot(embed, f"chart-{theme.split()[-1].lower()}")
                assert painted["ink"] is not None, painted
                measured = ratio(painted["ink"], painted["page"])
                assert measured >= 4.5, (theme, painted, measured)
        finally:
            set_theme(page, "JupyterLab Light")
        assert not errors, errors
