"""Encoders, the HKMR regressor, the HMR and CMR baselines, pose priors (Sec. 3.2-3.3)."""

from .estimator import MeshEstimator, build_regressor, pose_body, weak_perspective
from .output import MeanParams, RegressorOutput

__all__ = ["MeshEstimator", "MeanParams", "RegressorOutput", "build_regressor", "pose_body",
           "weak_perspective"]
