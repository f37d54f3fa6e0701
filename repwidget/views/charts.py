"""Pictures of runs and analyses as altair charts, and :func:`offline`, which draws altair charts with no network.

altair's default output loads Vega from a CDN (cdn.jsdelivr.net): offline, every chart reads "Error
loading script". Call ``rw.charts.offline()`` once in a notebook (the workshop notebooks do) and
every altair chart, repwidget's or your own, is drawn with Vega inlined from vl-convert.
"""

from __future__ import annotations

import math

import altair as alt
import torch

from ..run import Run


def offline(interactive: bool = True) -> None:
    """Draw every altair chart of this kernel without the network, from now on (an explicit opt-in).

    ``interactive=True``: each chart is an ``alt.JupyterChart`` widget whose JavaScript (Vega,
    Vega-Lite, vega-embed) vl-convert inlines, drawn on a canvas: tooltips and selections work
    wherever widgets do (JupyterLab is tested); the first chart of a kernel takes a few seconds.
    The charts follow the page's theme: a transparent background, text and axes in the page's text
    colour (``views/chart_theme.py``).
    ``interactive=False``: static SVG rendered in the kernel by vl-convert, for exports and
    front ends without widgets. This switches altair's renderer for the whole kernel
    (``alt.renderers.enable("default")`` switches back); importing repwidget never does.
    """
    if interactive:
        from .chart_theme import render

        # canvas: SVG charts on one page share gradient ids (each widget loads its own Vega), so legends
        # take another chart's colours; no actions menu: its "Open in Vega Editor" leaves for the internet
        alt.renderers.register("repwidget", render)
        alt.renderers.enable("repwidget", embed_options={"renderer": "canvas", "actions": False})
    else:
        alt.renderers.enable("svg")


def head_grid(scores: torch.Tensor, title: str = "head score") -> alt.Chart:
    """A layer x head heatmap of a ``[layer, head]`` score tensor; ``title`` (what is measured) heads the chart,
    its colour legend and its tooltips.

    The colour scale runs from 0 to 1 (scores, probabilities), stretched to the data where it goes
    beyond (a loss in nats, a logit difference), so no value falls off the scale.
    """
    layers, heads = scores.shape
    domain = [min(0.0, float(scores.min())), max(1.0, float(scores.max()))]
    data = alt.Data(
        values=[{"layer": i, "head": h, "score": float(scores[i, h])} for i in range(layers) for h in range(heads)]
    )
    return (
        alt.Chart(data, title=title)
        .mark_rect()
        .encode(
            x=alt.X("head:O"),
            y=alt.Y("layer:O"),
            color=alt.Color("score:Q", scale=alt.Scale(scheme="blues", domain=domain), title=title),
            tooltip=["layer:O", "head:O", alt.Tooltip("score:Q", format=".2f", title=title)],
        )
        .properties(width=40 * heads, height=40 * layers)
    )


def pattern(run: Run, layer: int, head: int) -> alt.Chart:
    """One head's attention pattern, queries down and keys across, labelled with the tokens."""
    probs = run[f"blocks.{layer}.attn.hook_pattern"][head].float().cpu()
    tokens = [f"{i}: {t}" for i, t in enumerate(run.tokens)]
    n = len(tokens)
    data = alt.Data(
        values=[{"query": tokens[q], "key": tokens[k], "p": float(probs[q, k])} for q in range(n) for k in range(n)]
    )
    size = min(16, max(6, 480 // max(n, 1)))
    return (
        alt.Chart(data, title=f"attention pattern, layer {layer} head {head}")
        .mark_rect()
        .encode(
            x=alt.X("key:N", sort=tokens, title="key"),
            y=alt.Y("query:N", sort=tokens, title="query"),
            color=alt.Color("p:Q", scale=alt.Scale(scheme="greys", domain=[0, 1])),
            tooltip=["query:N", "key:N", alt.Tooltip("p:Q", format=".3f")],
        )
        .properties(width=size * n, height=size * n)
    )


def probe_accuracy(probes, current: int | None = None) -> alt.LayerChart:
    """Held-out accuracy of each layer's probe (points and line), with the majority-class baseline dashed and, when
    the probes have one, the control task's accuracy (shuffled labels) dotted grey.

    The chart carries a point selection named ``layer`` (click a point), which
    ``alt.JupyterChart`` reports back to Python, and a parameter ``current``: the layer drawn with
    a ring (``current``, or none), which Python can move.
    """
    rows = zip(probes.layers, probes.accuracy, strict=True)
    data = alt.Data(values=[{"layer": layer, "accuracy": acc} for layer, acc in rows])
    select = alt.selection_point(name="layer", fields=["layer"], on="click")
    base = alt.Chart(data, title=f"{probes.kind} probe accuracy by layer ({probes.site})")
    control = getattr(probes, "control", None)
    names = {"accuracy": "held-out accuracy", "control": "control (shuffled labels)", "baseline": "majority class"}
    shown = [names["accuracy"], *([names["control"]] if control else []), names["baseline"]]
    key = alt.Scale(domain=shown, range=["#4a78b5", *(["#888"] if control else []), "grey"])

    def legend(name: str) -> alt.Color:  # one legend for the three lines: what each one measures
        return alt.Color("line:N", scale=key, legend=alt.Legend(title=None, orient="bottom"))

    line = (
        base.mark_line()
        .encode(
            x=alt.X("layer:O"),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="accuracy"),
            color=legend("accuracy"),
        )
        .transform_calculate(line=repr(names["accuracy"]))
        .properties(name="line")
    )
    points = (
        base.mark_point(filled=True, size=120)
        .encode(
            x="layer:O",
            y="accuracy:Q",
            color=alt.condition(select, alt.value("#e67e22"), alt.value("#4a78b5"), empty=False),  # none until a click
            tooltip=["layer:O", alt.Tooltip("accuracy:Q", format=".3f")],
        )
        .add_params(select)
        .properties(name="points")  # its marks are drawn in g.points_marks
    )
    baseline = (
        alt.Chart(alt.Data(values=[{"baseline": probes.baseline}]))
        .mark_rule(strokeDash=[4, 4])
        .encode(y=alt.Y("baseline:Q", title="accuracy"), color=legend("baseline"))
        .transform_calculate(line=repr(names["baseline"]))
    )
    ring_at = alt.param(name="current", value=-1 if current is None else current)
    ring = (
        base.mark_point(size=420, filled=False, strokeWidth=2.5, color="#e67e22")
        .encode(x="layer:O", y="accuracy:Q")
        .transform_filter("datum.layer == current")
        .add_params(ring_at)
        .properties(name="ring")
    )
    layers = [line, points, ring, baseline]
    if control:  # the same probes on shuffled labels: what they read without the concept
        rows = [{"layer": layer, "control": acc} for layer, acc in zip(probes.layers, control, strict=True)]
        layers.append(
            alt.Chart(alt.Data(values=rows))
            .mark_line(strokeDash=[2, 3], point=True)
            .encode(
                x="layer:O",
                y=alt.Y("control:Q", title="accuracy"),
                color=legend("control"),
                tooltip=["layer:O", alt.Tooltip("control:Q", format=".3f")],
            )
            .transform_calculate(line=repr(names["control"]))
            .properties(name="control")
        )
    return alt.layer(*layers).properties(width=40 * max(4, len(probes.layers)), height=200)


def sweep_heatmap(sweep) -> alt.Chart:
    """A patching sweep's values as a heatmap (layer down, position or head across), a diverging scale around 0."""
    values = sweep.values if sweep.values.dim() == 2 else sweep.values.amax(-1)  # heads x position: the max
    rows, cols = values.shape
    across = sweep.axes[1]
    data = alt.Data(
        values=[{"layer": r, across: c, "value": float(values[r, c])} for r in range(rows) for c in range(cols)]
    )
    limit = max(1e-9, float(values.abs().max()))
    return (
        alt.Chart(data, title=f"{sweep.site} patching ({sweep.method}): {sweep.metric}")
        .mark_rect()
        .encode(
            x=alt.X(f"{across}:O"),
            y=alt.Y("layer:O"),
            color=alt.Color("value:Q", scale=alt.Scale(scheme="redblue", domain=[-limit, limit])),
            tooltip=["layer:O", f"{across}:O", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=min(600, 24 * cols), height=min(400, 24 * rows))
    )


def hydra_scatter(hydra) -> alt.Chart:
    """Each head's direct effect against its total effect: on the diagonal nothing compensates; above it, the rest
    of the model repairs what the head's removal did."""
    layers, heads = hydra.total.shape
    rows = [
        {"head": f"{la}.{he}", "layer": la, "direct": float(hydra.direct[la, he]), "total": float(hydra.total[la, he])}
        for la in range(layers)
        for he in range(heads)
    ]
    low = min(min(r["direct"] for r in rows), min(r["total"] for r in rows))
    high = max(max(r["direct"] for r in rows), max(r["total"] for r in rows))
    points = (
        alt.Chart(alt.Data(values=rows), title=f"direct vs total effect of ablating each head ({hydra.mode})")
        .mark_point(filled=True)
        .encode(
            x=alt.X("direct:Q", title="direct effect"),
            y=alt.Y("total:Q", title="total effect"),
            color=alt.Color("layer:O"),
            tooltip=["head:N", alt.Tooltip("direct:Q", format=".3f"), alt.Tooltip("total:Q", format=".3f")],
        )
    )
    diagonal = (
        alt.Chart(alt.Data(values=[{"x": low, "y": low}, {"x": high, "y": high}]))
        .mark_line(strokeDash=[4, 4], color="grey")
        .encode(x="x:Q", y="y:Q")
    )
    return (points + diagonal).properties(width=320, height=320)


#: the similarity heatmap's labels ("0.85"): font size, and the cell width (px) that holds one without overlap
LABEL_FONT = 9
LABEL_PX = 26
#: the widest the similarity heatmap grows (px) to keep its cells labelled
LABELLED_WIDTH = 900


def similarity_heatmap(
    matrix: torch.Tensor,
    method: str = "cka",
    names: tuple[str, str] = ("layer", "other layer"),
    current: int | None = None,
) -> alt.LayerChart:
    """A layers x layers similarity matrix (``rw.analyses.layer_similarity``), 0 to 1 in colour, each cell
    labelled with its value where the cells are wide enough for the label (they widen up to
    :data:`LABELLED_WIDTH` px in all to make room; wider matrices have tooltips only). Each row's
    largest value is outlined in white. Like :func:`probe_accuracy` it carries a click selection ``layer``
    (the row clicked) and a parameter ``current``: the row of the explorer's layer, outlined in orange."""
    rows, cols = matrix.shape
    size = max(12, min(36, 480 // max(rows, cols)))
    width = size if size >= LABEL_PX or LABEL_PX * cols > LABELLED_WIDTH else LABEL_PX  # room for the labels
    down, across = names
    best = matrix.argmax(dim=1).tolist() if cols else []
    values = [
        {down: r, across: c, "similarity": float(matrix[r, c]), "best": c == best[r]}
        for r in range(rows)
        for c in range(cols)
    ]
    select = alt.selection_point(name="layer", fields=[down], on="click")
    base = alt.Chart(alt.Data(values=values), title=f"{method} similarity between layers")
    cells = (
        base.mark_rect()
        .encode(
            x=alt.X(f"{across}:O"),
            y=alt.Y(f"{down}:O"),
            color=alt.Color("similarity:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1])),
            tooltip=[f"{down}:O", f"{across}:O", alt.Tooltip("similarity:Q", format=".3f")],
        )
        .add_params(select)
    )
    text = base.mark_text(fontSize=LABEL_FONT).encode(
        x=f"{across}:O",
        y=f"{down}:O",
        text=alt.Text("similarity:Q", format=".2f"),
        color=alt.condition("datum.similarity > 0.6", alt.value("black"), alt.value("white")),
    )
    best_cells = (
        base.mark_rect(fillOpacity=0, stroke="white", strokeWidth=1.5)
        .encode(x=f"{across}:O", y=f"{down}:O")
        .transform_filter("datum.best")
    )
    ring_at = alt.param(name="current", value=-1 if current is None else current)
    ring = (
        base.mark_rect(fillOpacity=0, stroke="#e67e22", strokeWidth=2)
        .encode(x=f"{across}:O", y=f"{down}:O")
        .transform_filter(f"datum['{down}'] == current")
        .add_params(ring_at)
    )
    layers = [cells, best_cells, ring] if width < LABEL_PX else [cells, text, best_cells, ring]
    return alt.layer(*layers).properties(width=width * cols, height=size * rows)


#: the per-layer measures drawn by :func:`layer_measures`, with their titles
MEASURES = {
    "update": "|Δ resid| / |resid|",
    "cosine": "cos(resid_pre, resid_post)",
    "lens_kl": "logit lens KL to output (nats)",
    "prompt_entropy": "prompt entropy (nats)",
    "effective_rank": "effective rank",
    "skip_loss": "loss increase when skipped (nats)",
}


def layer_measures(measures, current: int | None = None) -> alt.FacetChart:
    """Each of ``rw.analyses.layer_measures``'s per-layer measures against depth, one panel each (own y scale),
    with a click selection ``layer`` and a rule at the parameter ``current`` (the explorer's layer)."""
    values = [
        {"measure": MEASURES[name], "layer": layer, "value": float(v)}
        for name, series in measures.as_dict().items()
        for layer, v in enumerate(series)
    ]
    select = alt.selection_point(name="layer", fields=["layer"], on="click")
    base = alt.Chart()
    line = base.mark_line(point=alt.OverlayMarkDef(filled=True, size=50)).encode(
        x=alt.X("layer:O"),
        y=alt.Y("value:Q", title=None),
        tooltip=["measure:N", "layer:O", alt.Tooltip("value:Q", format=".3f")],
    )
    points = (
        base.mark_point(size=120, opacity=0)
        .encode(x="layer:O", y="value:Q")
        .add_params(select)  # a wide invisible target for the click
    )
    rule = (
        base.mark_rule(color="#e67e22", strokeWidth=2)
        .encode(x="layer:O")
        .transform_filter("datum.layer == current")
        .add_params(alt.param(name="current", value=-1 if current is None else current))
    )
    n = len(measures.update)
    return (
        alt.layer(line, points, rule, data=alt.Data(values=values))
        .properties(width=max(160, 24 * n), height=110)
        .facet(facet=alt.Facet("measure:N", title=None, sort=list(MEASURES.values())), columns=3)
        .resolve_scale(y="independent")
    )


def transcoder_quality(quality) -> alt.FacetChart:
    """``rw.transcoders.quality``'s per-layer numbers against depth, one panel each: the MLP output's explained
    variance, the loss with that layer's MLP replaced (dashed rules at the clean loss and with every MLP replaced)
    and the error's share of the final logit."""
    names = {
        "explained_variance": "explained variance of the MLP output",
        "loss_replaced": "loss, this MLP replaced (nats)",
        "error_fraction": "error share of the final logit",
    }
    values = [
        {"measure": names[k], "layer": row["layer"], "value": float(row[k]), "line": None}
        for row in quality.rows()
        for k in names
        if math.isfinite(row[k])
    ]
    for line, value in (("clean", quality.loss_clean), ("every MLP replaced", quality.loss_all_replaced)):
        values.append({"measure": names["loss_replaced"], "layer": None, "value": float(value), "line": line})
    tooltip = ["measure:N", "layer:O", alt.Tooltip("value:Q", format=".4f")]
    base = alt.Chart()
    points = (
        base.mark_line(point=True)
        .encode(x=alt.X("layer:O"), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)), tooltip=tooltip)
        .transform_filter("datum.layer != null")
    )
    rules = (
        base.mark_rule(strokeDash=[4, 3])
        .encode(y="value:Q", color=alt.Color("line:N", title=None), tooltip=["line:N", "value:Q"])
        .transform_filter("datum.line != null")
    )
    return (
        alt.layer(points, rules, data=alt.Data(values=values))
        .properties(width=max(160, 24 * len(quality.layers)), height=130)
        .facet(facet=alt.Facet("measure:N", title=None, sort=list(names.values())), columns=3)
        .resolve_scale(y="independent")
    )
