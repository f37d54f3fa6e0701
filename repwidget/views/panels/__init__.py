"""Every view's kernel side, one module each, mirrored by ``js/src/views/<name>.ts``; registered here in the
order the explorer lays them out."""

from __future__ import annotations

from ..panel import Panel
from . import (
    attention,
    attribution,
    continuation,
    features,
    interventions,
    lens,
    neurons,
    patching,
    predictions,
    probes,
    projector,
    tokens,
)  # fmt: skip

PANELS: dict[str, Panel] = {
    panel.name: panel
    for panel in (
        interventions.PANEL,
        tokens.PANEL,
        attention.PANEL,
        neurons.PANEL,
        features.PANEL,
        probes.PANEL,
        projector.PANEL,
        lens.PANEL,
        predictions.PANEL,
        continuation.PANEL,
        attribution.PANEL,
        patching.PANEL,
    )
}

__all__ = ["PANELS"]
