"""Charts of what was fitted over a dataset (``rw.charts`` re-exports them): sparse probing's accuracy against k, the
logit and tuned lenses' KL to the output per layer, transcoders' quality per layer."""

from __future__ import annotations

import math

import altair as alt


def sparse_probing(result) -> alt.LayerChart:
    """A sparse-probing curve (``rw.probes.sparse_probing``): held-out accuracy of the probe on the top k units
    against k (log scale), with the dense probe on all units and the majority-class baseline as rules."""
    unit = "neurons" if result.over == "neurons" else "SAE features"
    rows = [{"k": k, "accuracy": acc} for k, acc in zip(result.ks, result.accuracy, strict=True)]
    names = {"sparse": f"top-k {unit}", "dense": f"dense (all {result.n_units})", "baseline": "majority class"}
    key = alt.Scale(domain=list(names.values()), range=["#4a78b5", "#e67e22", "grey"])

    def legend() -> alt.Color:
        return alt.Color("line:N", scale=key, legend=alt.Legend(title=None, orient="bottom"))

    curve = (
        alt.Chart(alt.Data(values=rows), title=f"sparse probing over {unit} ({result.hook})")
        .mark_line(point=True)
        .encode(
            x=alt.X("k:Q", scale=alt.Scale(type="log", base=2), title="k (units read)"),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="held-out accuracy"),
            color=legend(),
            tooltip=["k:Q", alt.Tooltip("accuracy:Q", format=".3f")],
        )
        .transform_calculate(line=repr(names["sparse"]))
    )
    rules = [
        alt.Chart(alt.Data(values=[{"accuracy": value}]))
        .mark_rule(strokeDash=dash)
        .encode(y="accuracy:Q", color=legend(), tooltip=[alt.Tooltip("accuracy:Q", format=".3f")])
        .transform_calculate(line=repr(names[name]))
        for name, value, dash in (("dense", result.dense, [6, 3]), ("baseline", result.baseline, [2, 3]))
    ]
    return alt.layer(curve, *rules).properties(width=320, height=200)


def lens_kl(logit, tuned=None) -> alt.Chart:
    """The mean KL to the model's output per layer (``rw.analyses.lens_kl``) of the logit lens and, given, of the
    tuned lens: one line each against depth, with the values in the tooltip."""
    curves = {"logit lens": logit} if tuned is None else {"logit lens": logit, "tuned lens": tuned}
    lengths = {len(values) for values in curves.values()}
    if len(lengths) != 1:
        raise ValueError(f"the logit and tuned curves must have one value per layer each, got {sorted(lengths)}")
    values = [
        {"lens": name, "layer": layer, "kl": float(v)}
        for name, series in curves.items()
        for layer, v in enumerate(series)
    ]
    return (
        alt.Chart(alt.Data(values=values))
        .mark_line(point=alt.OverlayMarkDef(filled=True, size=50))
        .encode(
            x=alt.X("layer:O"),
            y=alt.Y("kl:Q", title="KL to the output (nats)"),
            color=alt.Color("lens:N", title=None, sort=list(curves)),
            tooltip=["lens:N", "layer:O", alt.Tooltip("kl:Q", format=".4f")],
        )
        .properties(width=max(160, 28 * lengths.pop()), height=180)
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
