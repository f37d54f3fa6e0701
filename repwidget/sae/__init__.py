"""Sparse autoencoders: load (SAELens format), train, read features, dashboards."""

from .dashboard import FeatureDashboard, feature_dashboard, feature_dashboards
from .model import SAE
from .train import train_sae

__all__ = ["SAE", "FeatureDashboard", "feature_dashboard", "feature_dashboards", "train_sae"]
