"""Probes: where in the network a concept becomes linearly readable."""

from .probes import Probes, fit_probes, read_activations, train_probes

__all__ = ["Probes", "fit_probes", "read_activations", "train_probes"]
