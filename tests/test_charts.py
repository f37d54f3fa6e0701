"""rw.charts: the colour scale holds every value, and rw.charts.offline() draws charts with nothing from a CDN
(tests/test_browser_notebooks.py draws them in JupyterLab with the network cut)."""

from __future__ import annotations

import altair as alt
import pytest
import torch

import repwidget as rw


@pytest.fixture
def restore_renderer():
    before = alt.renderers.active
    yield
    alt.renderers.enable(before)


def test_head_grid_scale_holds_values_beyond_one():
    probabilities = rw.charts.head_grid(torch.tensor([[0.2, 0.9]])).to_dict()
    assert probabilities["encoding"]["color"]["scale"]["domain"] == [0.0, 1.0]  # scores stay comparable
    nats = rw.charts.head_grid(torch.tensor([[-0.25, 5.5], [1.38, 0.0]])).to_dict()
    assert nats["encoding"]["color"]["scale"]["domain"] == [-0.25, 5.5]


def test_import_leaves_altair_alone():
    import subprocess
    import sys

    code = "import altair as alt, repwidget as rw; rw.charts.head_grid; print(alt.renderers.active)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "default"


def test_offline_charts_are_widgets_with_vega_inlined(restore_renderer):
    chart = rw.charts.head_grid(torch.rand(2, 3), "score")
    assert "cdn.jsdelivr.net" in str(chart._repr_mimebundle_())  # altair's default: Vega from a CDN
    rw.charts.offline()
    bundle, _ = chart._repr_mimebundle_()
    assert "cdn.jsdelivr.net" not in str(bundle)
    widget = alt.JupyterChart.widgets[bundle["application/vnd.jupyter.widget-view+json"]["model_id"]]
    assert isinstance(widget, alt.JupyterChart)
    assert len(widget._esm) > 500_000 and "https://" not in widget._esm.split("\n", 1)[0]  # Vega itself, inlined
    assert widget.embed_options == {"renderer": "canvas", "actions": False}  # no menu linking to the Vega editor
    assert "pageColours" in widget._esm and "followTheme" in widget._esm  # drawn in the page's colours (N8)
    assert list(widget.chart.to_dict()["datasets"].values()) == [chart.to_dict()["data"]["values"]]


def test_offline_static_charts_are_svg(restore_renderer):
    rw.charts.offline(interactive=False)
    bundle = (rw.charts.head_grid(torch.rand(2, 3)) | rw.charts.head_grid(torch.rand(2, 3)))._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"] and bundle["image/svg+xml"].startswith("<svg")


def _svg(chart) -> str:
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_json())


def test_similarity_heatmap_renders_offline_with_its_numbers():
    matrix = torch.tensor([[1.0, 0.25, 0.1], [0.25, 1.0, 0.7], [0.1, 0.7, 1.0]])
    chart = rw.charts.similarity_heatmap(matrix, current=1)
    spec = chart.to_dict()
    values = {(v["layer"], v["other layer"]): v["similarity"] for v in spec["data"]["values"]}
    assert values == {(r, c): float(matrix[r, c]) for r in range(3) for c in range(3)}
    assert [p["name"] for p in spec["params"]] == ["layer", "current"] and spec["params"][1]["value"] == 1
    svg = _svg(chart)
    assert svg.startswith("<svg") and "0.25" in svg and "0.70" in svg  # cells labelled, drawn with no network


def test_layer_measures_chart_renders_offline_one_panel_per_measure():
    from repwidget.analyses import LayerMeasures

    t = torch.tensor
    measures = LayerMeasures(
        update=t([0.5, 0.25]), cosine=t([0.9, 0.95]), lens_kl=t([2.5, 0.0]), prompt_entropy=t([1.0, 1.5]),
        effective_rank=t([3.0, 4.0]), skip_loss=t([1.25, 0.125]), loss=2.0, tokens=10,
    )  # fmt: skip
    chart = rw.charts.layer_measures(measures, current=0)
    values = chart.to_dict()["data"]["values"]
    assert len(values) == 12 and {"measure": rw.charts.MEASURES["skip_loss"], "layer": 0, "value": 1.25} in values
    svg = _svg(chart)
    assert svg.startswith("<svg") and all(title in svg for title in ("effective rank", "prompt entropy (nats)"))


def test_geometry_charts_link_to_the_explorers_layer(demo):
    from repwidget.analyses import LayerMeasures

    ex = rw.explore(demo, "review : the film was superb .")
    four = torch.arange(4.0)
    measures = LayerMeasures(four, four, None, four, four, None, None, 4)
    charts = [rw.charts.similarity_heatmap(torch.eye(4)), rw.charts.probe_accuracy(_FakeProbes())]
    for chart in [*charts, rw.charts.layer_measures(measures)]:
        widget = ex.linked_chart(chart)
        assert int(widget.params.current) == ex.selection["layer"]
        widget._vl_selections = {"layer": {"value": {"vlPoint": {"or": [{"layer": 3}]}}, "store": []}}
        assert ex.selection["layer"] == 3  # a click in the chart selects the layer in the explorer
        ex.select(layer=1)
        assert widget.params.current == 1  # and the explorer's layer is ringed in the chart
    with pytest.raises(ValueError, match="needs a point selection named 'layer'"):
        ex.linked_chart(rw.charts.head_grid(torch.rand(2, 2)))


class _FakeProbes:
    kind, site, layers, accuracy, baseline = "logistic", "resid_post", [0, 1, 2, 3], [0.5, 0.6, 0.9, 1.0], 0.5
    control = (0.5, 0.25, 0.5, 0.75)


def test_the_probe_chart_shows_the_control_task():
    spec = rw.charts.probe_accuracy(_FakeProbes()).to_dict()
    control = next(layer for layer in spec["layer"] if layer.get("name") == "control")
    assert [v["control"] for v in control["data"]["values"]] == list(_FakeProbes.control)
    assert _svg(rw.charts.probe_accuracy(_FakeProbes())).startswith("<svg")


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


@pytest.mark.parametrize("cols", [3, 30, 40])
def test_similarity_heatmap_labels_cells_only_where_a_label_fits_and_always_has_tooltips(cols):
    from repwidget.views import charts

    matrix = torch.rand(4, cols, generator=torch.Generator().manual_seed(cols))
    spec = rw.charts.similarity_heatmap(matrix, names=("demo layer", "SmolLM2 layer")).to_dict()
    cell_width = spec["width"] / cols
    texts = [layer for layer in _layers(spec) if layer["mark"]["type"] == "text"]
    assert bool(texts) == (cell_width >= charts.LABEL_PX)  # numbers only where "0.85" fits in its cell
    assert cols > 30 or texts  # 4 x 30 (notebook 04's SmolLM2 comparison) is widened to keep its numbers
    rects = [layer for layer in _layers(spec) if layer["mark"]["type"] == "rect" and "tooltip" in layer["encoding"]]
    assert [t["field"] for t in rects[0]["encoding"]["tooltip"]] == ["demo layer", "SmolLM2 layer", "similarity"]
    best = {(v["demo layer"], v["SmolLM2 layer"]) for v in spec["data"]["values"] if v["best"]}
    assert best == {(r, int(matrix[r].argmax())) for r in range(4)}  # each row's best, outlined (Exercise 3)
    if texts:
        svg = _svg(rw.charts.similarity_heatmap(matrix))
        assert f"{float(matrix[0, 0]):.2f}" in svg


def test_charts_name_what_they_measure():
    grid = rw.charts.head_grid(torch.rand(2, 2), "loss increase on the repeat (nats)").to_dict()
    assert grid["encoding"]["color"]["title"] == "loss increase on the repeat (nats)"  # not "score"
    assert grid["encoding"]["tooltip"][2]["title"] == "loss increase on the repeat (nats)"
    spec = rw.charts.probe_accuracy(_FakeProbes()).to_dict()
    colours = [la["encoding"]["color"] for la in spec["layer"] if la["encoding"].get("color", {}).get("field")]
    assert colours[0]["scale"]["domain"] == ["held-out accuracy", "control (shuffled labels)", "majority class"]
    svg = _svg(rw.charts.probe_accuracy(_FakeProbes()))
    assert all(name in svg for name in colours[0]["scale"]["domain"])  # the three lines have a legend
    assert "accuracy, baseline" not in svg  # one y-axis title


def test_the_renderer_rebuilds_every_kind_of_chart_without_validating_it_again(monkeypatch):
    from repwidget.views.chart_theme import chart_of

    base = alt.Chart(alt.Data(values=[{"x": 1, "y": 3}, {"x": 2, "y": 4}])).mark_point().encode(x="x:Q", y="y:Q")
    charts = [base, base + base, base | base, base & base, alt.concat(base, base), base.facet(row="x:O")]
    # (a repeat chart is left out: altair picks between its two schemas by validating the spec against each)

    validate, specs = alt.utils.schemapi.validate_jsonschema, [chart.to_dict(validate=False) for chart in charts]
    expected = [alt.Chart.from_dict(spec).to_dict(validate=False) for spec in specs]  # altair's own rebuild

    def refuse_whole_specs(instance, *args, **kwargs):  # (choosing a nested object's class validates that object)
        if any(instance is spec for spec in specs):
            raise AssertionError("validated again")
        return validate(instance, *args, **kwargs)

    monkeypatch.setattr(alt.utils.schemapi, "validate_jsonschema", refuse_whole_specs)
    for chart, spec, reference in zip(charts, specs, expected, strict=True):
        rebuilt = chart_of(spec)
        assert type(rebuilt) is type(chart) and rebuilt.to_dict(validate=False) == reference
