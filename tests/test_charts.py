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
    assert list(widget.chart.to_dict()["datasets"].values()) == [chart.to_dict()["data"]["values"]]


def test_offline_static_charts_are_svg(restore_renderer):
    rw.charts.offline(interactive=False)
    bundle = (rw.charts.head_grid(torch.rand(2, 3)) | rw.charts.head_grid(torch.rand(2, 3)))._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"] and bundle["image/svg+xml"].startswith("<svg")
