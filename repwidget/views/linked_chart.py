"""The probe accuracy chart as a live widget linked to an explorer: click a layer in either, both follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .explorer import Explorer


def probe_chart(explorer: Explorer, probe: int = 0) -> Any:
    """An ``alt.JupyterChart`` of probe ``probe``'s accuracy by layer, linked to ``explorer``.

    A click on a layer's point selects that layer in the explorer (every view follows); a layer
    selected in the explorer (or with ``ex.select(layer=...)``) is ringed in the chart. Vega is
    inlined from vl-convert: no CDN.
    """
    from .charts import probe_accuracy

    probes = explorer.session.probes
    if not probes:
        raise ValueError("this explorer has no probes; pass probes=[p] to rw.explore")
    if type(probe) is not int or not 0 <= probe < len(probes):
        raise ValueError(f"probe must be an index into the explorer's {len(probes)} probes, got {probe!r}")
    return linked(explorer, probe_accuracy(probes[probe], current=explorer.selection["layer"]))


def linked(explorer: Explorer, chart: Any) -> Any:
    """An ``alt.JupyterChart`` of ``chart`` linked to ``explorer``'s layer: any altair chart with a point selection
    named ``layer`` (over a field holding layer numbers) and a parameter named ``current`` (the charts of
    ``rw.charts``: probe accuracy, layer similarity, layer measures). Vega is inlined: no CDN."""
    names = [getattr(p, "name", None) for p in _params(chart)]
    if "layer" not in names or "current" not in names:
        raise ValueError("a linked chart needs a point selection named 'layer' and a parameter named 'current'")
    from .chart_theme import ThemedChart

    # no actions menu: its "Open in Vega Editor" leaves for the internet
    chart = ThemedChart(chart, embed_options={"renderer": "svg", "actions": False})
    chart.params.current = explorer.selection["layer"]

    def from_chart(change: dict[str, Any]) -> None:
        points = change["new"].value
        if points:
            explorer.select(layer=int(next(iter(points[0].values()))))

    def from_explorer(change: dict[str, Any]) -> None:
        chart.params.current = change["new"]["layer"]

    chart.selections.observe(from_chart, ["layer"])
    explorer.observe(from_explorer, "selection")
    return chart


def _params(chart: Any) -> list[Any]:
    """The parameters of ``chart`` and of the charts it layers or facets."""
    import altair as alt

    def field(name: str) -> Any:
        value = getattr(chart, name, alt.Undefined)
        return None if value is alt.Undefined else value

    own = field("params") or []
    inner = list(field("layer") or [])
    if field("spec") is not None:
        inner.append(field("spec"))
    return [*own, *(p for c in inner if not isinstance(c, dict) for p in _params(c))]
