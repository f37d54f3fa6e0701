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
    import altair as alt

    from ..charts import probe_accuracy

    probes = explorer.session.probes
    if not probes:
        raise ValueError("this explorer has no probes; pass probes=[p] to rw.explore")
    if type(probe) is not int or not 0 <= probe < len(probes):
        raise ValueError(f"probe must be an index into the explorer's {len(probes)} probes, got {probe!r}")
    alt.JupyterChart.enable_offline()
    # no actions menu: its "Open in Vega Editor" leaves for the internet
    chart = alt.JupyterChart(
        probe_accuracy(probes[probe], current=explorer.selection["layer"]),
        embed_options={"renderer": "svg", "actions": False},
    )

    def from_chart(change: dict[str, Any]) -> None:
        points = change["new"].value
        if points:
            explorer.select(layer=int(points[0]["layer"]))

    def from_explorer(change: dict[str, Any]) -> None:
        chart.params.current = change["new"]["layer"]

    chart.selections.observe(from_chart, ["layer"])
    explorer.observe(from_explorer, "selection")
    return chart
