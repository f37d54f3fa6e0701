"""Probes: where in the network a concept becomes linearly readable."""

from .probes import ProbeConfig, Probes, fit_probes, train_probes
from .read import read_activations

__all__ = ["ProbeConfig", "Probes", "fit_probes", "read_activations", "train_probes"]
