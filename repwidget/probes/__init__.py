"""Probes: where in the network a concept becomes linearly readable (or sparsely: a few neurons or features)."""

from .probes import ProbeConfig, Probes, fit_probes, train_probes
from .read import read_activations, read_at_hooks
from .regression import RegressionProbes, fit_regression, train_regression
from .sparse import SparseProbing, sparse_curve, sparse_probing

__all__ = [
    "ProbeConfig",
    "Probes",
    "RegressionProbes",
    "SparseProbing",
    "fit_probes",
    "fit_regression",
    "read_activations",
    "read_at_hooks",
    "sparse_curve",
    "sparse_probing",
    "train_probes",
    "train_regression",
]
