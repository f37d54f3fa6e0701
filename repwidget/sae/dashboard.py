"""A feature's dashboard: its top-activating contexts over a dataset, its activation histogram, and
the output tokens its decoder direction boosts and suppresses."""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..analyses.directions import logit_effects
from .model import SAE


@dataclass(frozen=True)
class Context:
    """One text where the feature fires: its tokens, the feature's activation on each, and the peak."""

    tokens: list[str]
    activations: list[float]
    position: int
    text_index: int

    @property
    def peak(self) -> float:
        return self.activations[self.position]


@dataclass
class FeatureDashboard:
    """What :func:`feature_dashboard` found; shows itself as HTML (offline, nothing loaded)."""

    feature: int
    sae_name: str
    hook: str
    contexts: list[Context]
    counts: list[int]
    edges: list[float]
    n_tokens: int
    n_active: int
    boosted: list[tuple[str, float]] = field(default_factory=list)
    suppressed: list[tuple[str, float]] = field(default_factory=list)

    @property
    def density(self) -> float:
        """The fraction of tokens on which the feature is active."""
        return self.n_active / max(1, self.n_tokens)

    def _repr_html_(self) -> str:
        return render(self)


def feature_dashboard(
    model: Any, sae: SAE, feature: int, texts: Iterable[Any], k: int = 10, bins: int = 30
) -> FeatureDashboard:
    """Read ``feature`` of ``sae`` over ``texts`` (in padded batches, with progress; memory: the top ``k``
    contexts and the active values only) and return its dashboard."""
    return feature_dashboards(model, sae, [feature], texts, k, bins)[feature]


def feature_dashboards(
    model: Any, sae: SAE, features: Iterable[int], texts: Iterable[Any], k: int = 10, bins: int = 30
) -> dict[int, FeatureDashboard]:
    """The dashboards of many ``features`` of ``sae`` from one harvest of ``texts`` (each text read once,
    in padded batches; the top contexts are :func:`repwidget.top_examples`' with whole texts): ``{feature:
    dashboard}``."""
    sae.check_fits(model)
    hook = sae.hook
    features = list(dict.fromkeys(int(f) for f in features))
    if not features:
        raise ValueError("no features: give at least one feature index")
    for feature in features:
        if not 0 <= feature < sae.d_sae:
            raise ValueError(f"feature {feature} is out of range; {sae.name} has features 0..{sae.d_sae - 1}")
    from ..analyses.top_examples import harvest  # here: it plans passes, and the planner imports the SAEs
    from ..units import Feature

    active: dict[int, list[torch.Tensor]] = {f: [] for f in features}

    def observe(values: torch.Tensor) -> None:  # [tokens, features], <bos> left out
        for j, feature in enumerate(features):
            column = values[:, j]
            active[feature].append(column[column > 0].cpu())

    tops = harvest(model, texts, [Feature(sae, f) for f in features], k, None, True, above=0.0, observe=observe)
    out = {}
    for j, feature in enumerate(features):
        contexts = [Context(e.tokens, e.values, e.peak, e.text_index) for e in tops.examples(j)]
        values = torch.cat(active[feature]) if active[feature] else torch.zeros(0)
        high = float(values.max()) if len(values) else 1.0
        counts = torch.histc(values, bins=bins, min=0.0, max=high).long().tolist() if len(values) else [0] * bins
        edges = torch.linspace(0, high, bins + 1).tolist()
        boosted, suppressed = output_tokens(model, sae, feature)
        out[feature] = FeatureDashboard(
            feature, sae.name, hook, contexts, counts, edges, tops.n_tokens, len(values), boosted, suppressed
        )
    return out


def output_tokens(model: Any, sae: SAE, feature: int, k: int = 8) -> tuple[list, list]:
    """Tokens whose logits the feature's decoder direction raises and lowers most (direct path through
    the unembedding); empty where the SAE does not write the residual stream or there is no unembedding."""
    if not model.has_unembed or sae.d_in != model.d_model or "resid" not in sae.require_hook():
        return [], []
    return logit_effects(model, sae.decoder_vectors()[feature], k)


def _histogram_svg(counts: list[int], edges: list[float], width: int = 320, height: int = 90) -> str:
    peak = max(counts) if counts and max(counts) else 1
    bar = width / max(1, len(counts))
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - 14 - (c / peak) * (height - 20):.1f}" width="{bar - 1:.1f}" '
        f'height="{(c / peak) * (height - 20):.1f}" fill="#4a78b5"><title>{edges[i]:.2f}-{edges[i + 1]:.2f}: {c}'
        "</title></rect>"
        for i, c in enumerate(counts)
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="activation histogram">{rects}'
        f'<text x="0" y="{height - 2}" font-size="10">0</text>'
        f'<text x="{width}" y="{height - 2}" font-size="10" text-anchor="end">{edges[-1]:.2f}</text></svg>'
    )


def render(dash: FeatureDashboard) -> str:
    """Self-contained HTML; every token is escaped."""
    rows = []
    for ctx in dash.contexts:
        peak = max(ctx.peak, 1e-9)
        spans = "".join(
            f'<span title="{a:.3f}" style="background: rgba(230, 126, 34, {max(0.0, a) / peak:.2f}); '
            f'{"outline: 1px solid #333;" if i == ctx.position else ""}">{html.escape(t)}</span> '
            for i, (t, a) in enumerate(zip(ctx.tokens, ctx.activations, strict=True))
        )
        rows.append(f"<tr><td>{ctx.peak:.2f}</td><td style='font-family: monospace'>{spans}</td></tr>")
    logits = "".join(
        f"<tr><td>{html.escape(a)}</td><td>{x:+.2f}</td><td>{html.escape(b)}</td><td>{y:+.2f}</td></tr>"
        for (a, x), (b, y) in zip(dash.boosted, dash.suppressed, strict=True)
    )
    return (
        f"<div class='rw-dashboard' data-rw-feature='{dash.feature}'>"
        f"<h4>feature {dash.feature} of {html.escape(dash.sae_name)} at {html.escape(dash.hook)}</h4>"
        f"<p>active on {dash.n_active} of {dash.n_tokens} tokens ({100 * dash.density:.2f}%)</p>"
        f"{_histogram_svg(dash.counts, dash.edges)}"
        + (f"<table><tr><th>boosts</th><th></th><th>suppresses</th><th></th></tr>{logits}</table>" if logits else "")
        + f"<table><tr><th>peak</th><th>top contexts</th></tr>{''.join(rows)}</table></div>"
    )
