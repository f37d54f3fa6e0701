"""Which components matter: activation patching (exact, or attribution patching's first-order estimate),
ablation sweeps with a control, and the Hydra view of direct against total effects."""

from .ablations import Ablations, Hydra, ablation_sweep, hydra
from .sweeps import METHODS, SWEEP_SITES, Metric, Sweep, attribution, exact, logit_diff, measure, sweep

__all__ = [
    "METHODS", "SWEEP_SITES", "Ablations", "Hydra", "Metric", "Sweep", "ablation_sweep", "attribution", "exact",
    "hydra", "logit_diff", "measure", "sweep",
]  # fmt: skip
