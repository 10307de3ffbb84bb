"""Encoders, the HKMR regressor, the HMR and CMR baselines, pose priors (Sec. 3.2-3.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

#: the names the package exports, by the module that defines them, imported on first use
_EXPORTS = {
    ".estimator": ("MeshEstimator", "build_regressor", "pose_body", "weak_perspective"),
    ".output": ("MeanParams", "RegressorOutput"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from .estimator import MeshEstimator, build_regressor, pose_body, weak_perspective
    from .output import MeanParams, RegressorOutput
