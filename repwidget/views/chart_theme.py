"""altair's chart widget in the page's colours: a transparent background, and text, axes and legends in the text
colour where the chart is drawn (read in the browser when it draws, and again when the page's theme changes), so
that charts are not white boxes in JupyterLab's dark theme. Vega is inlined from vl-convert: no CDN."""

from __future__ import annotations

import functools

import altair as alt

#: the line of altair's widget script that reads vega-embed's options (the page's colours are merged in after it),
#: and the line after which the render function starts following the theme
READ_OPTIONS = 'let embedOptions = structuredClone(model.get("embed_options")) ?? undefined;'
LISTENING = "model.on('change:max_wait', reembed);"

#: the browser side: a Vega config in the colour of the text around the chart; embed options' own config wins
THEME_JS = r"""
async function pageColours(el, options) {
  for (let i = 0; i < 120 && !el.isConnected; i++) await new Promise((r) => requestAnimationFrame(r));
  const ink = getComputedStyle(el).color;
  el.dataset.rwInk = ink;
  if (!ink) return options;
  const words = { labelColor: ink, titleColor: ink };
  const config = {
    background: "transparent",
    axis: { ...words, domainColor: ink, tickColor: ink, gridColor: ink, gridOpacity: 0.15 },
    legend: words, header: words, title: { color: ink, subtitleColor: ink }, text: { color: ink },
    view: { stroke: ink, strokeOpacity: 0.2 },
  };
  const own = options ?? {};
  const merged = { ...config, ...(own.config ?? {}) };
  for (const key of ["axis", "legend", "header", "title", "view"]) {
    merged[key] = { ...config[key], ...(own.config?.[key] ?? {}) };
  }
  return { ...own, config: merged };
}

function followTheme(el, reembed) {
  const check = () => {
    if (el.isConnected && el.dataset.rwInk && getComputedStyle(el).color !== el.dataset.rwInk) reembed();
  };
  const later = () => { for (const wait of [50, 300, 1000]) setTimeout(check, wait); };
  const watch = new MutationObserver(later);
  watch.observe(document.body, { attributes: true });
  watch.observe(document.head, { childList: true });
}
"""


@functools.cache
def themed_esm() -> str | None:
    """altair's widget script with the page's colours, bundled offline by vl-convert (once a kernel); None when
    this altair's script no longer has the lines it is patched at (charts then draw in altair's own colours)."""
    from altair.jupyter.jupyter_chart import load_js_src
    from altair.utils._importers import import_vl_convert, vl_version_for_vl_convert

    lines = load_js_src().split("\n")
    while lines and (not lines[0].strip() or lines[0].startswith(("import", "//"))):
        lines.pop(0)  # its CDN imports: vl-convert's bundle provides vega-embed and lodash instead
    src = "\n".join(lines)
    if src.count(READ_OPTIONS) != 1 or src.count(LISTENING) != 1:
        return None
    src = src.replace(READ_OPTIONS, READ_OPTIONS + "\n        embedOptions = await pageColours(el, embedOptions);")
    src = src.replace(LISTENING, LISTENING + "\n    followTheme(el, reembed);") + THEME_JS
    return import_vl_convert().javascript_bundle(src, vl_version=vl_version_for_vl_convert())


class ThemedChart(alt.JupyterChart):
    """An ``alt.JupyterChart`` drawn in the page's colours (see the module); ``rw.charts.offline()`` draws every
    altair chart with it."""

    def __init__(self, *args, **kwargs) -> None:
        esm = themed_esm()
        if esm is None:
            alt.JupyterChart.enable_offline()
            esm = alt.JupyterChart._esm
        type(self)._esm = esm
        super().__init__(*args, **kwargs)


#: a spec's top-level key and the altair class it is (any other spec is a single view: ``alt.Chart``)
TOP_LEVEL = {
    "vconcat": alt.VConcatChart, "hconcat": alt.HConcatChart, "concat": alt.ConcatChart,
    "layer": alt.LayerChart, "repeat": alt.RepeatChart, "facet": alt.FacetChart,
}  # fmt: skip


def chart_of(spec: dict) -> alt.TopLevelMixin:
    """The altair chart of ``spec`` (the renderer's dict, which altair validated when it made it), built without
    validating it again: ``alt.Chart.from_dict`` re-validates every data row with jsonschema (17 s of a 20 s grid of
    16 small heatmaps, 0.1 s without), and with ``validate=False`` it takes any spec for a single view. (A repeat
    chart is still validated once, by altair choosing between its two schemas.)"""
    kind = next((cls for key, cls in TOP_LEVEL.items() if key in spec), alt.Chart)
    with alt.utils.schemapi.debug_mode(False):  # nor each nested object as it is made
        return kind.from_dict(spec, validate=False)


def render(spec: dict, **metadata) -> dict:
    """altair renderer ``repwidget``: each chart a :class:`ThemedChart` (``embed_options`` as altair's)."""
    return ThemedChart(chart=chart_of(spec), embed_options=metadata.get("embed_options"))._repr_mimebundle_()
