"""The encoder-regressor (Fig. 2): image -> Φ -> per-iteration (Θ, β, cam).

The body model is not a submodule: its large constant buffers would bloat every checkpoint.
Pose an output with :func:`pose_body`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..body.model import BodyModel, BodyOutput
from ..config import ModelConfig
from .encoder import build_encoder
from .hkmr import HKMRRegressor
from .hmr import HMRRegressor
from .output import MeanParams, RegressorOutput


def build_regressor(cfg: ModelConfig, feat_dim: int, mean: MeanParams) -> nn.Module:
    if cfg.regressor == "hkmr":
        return HKMRRegressor(feat_dim, cfg, mean)
    if cfg.regressor == "hmr":
        return HMRRegressor(feat_dim, cfg, mean)
    raise ValueError(f"model.regressor={cfg.regressor!r}: choose hkmr or hmr")


class MeshEstimator(nn.Module):
    def __init__(self, cfg: ModelConfig, mean: MeanParams | None = None):
        super().__init__()
        self.encoder, self.feat_dim = build_encoder(cfg.encoder, cfg.pretrained)
        self.regressor = build_regressor(cfg, self.feat_dim, mean or MeanParams.default())

    def forward(self, img: torch.Tensor) -> list[RegressorOutput]:
        return self.regressor(self.encoder(img))


def pose_body(body: BodyModel, out: RegressorOutput) -> BodyOutput:
    """The mesh and joints of one regressor output."""
    return body.forward(out.pose[:, :1], out.pose[:, 1:], out.betas)


def weak_perspective(joints: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """x̂ = s Π(X) + ρ (Sec. 3.2, camera estimation): (B, J, 3), (B, 3) -> (B, J, 2)."""
    return cam[:, None, :1] * joints[..., :2] + cam[:, None, 1:]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
