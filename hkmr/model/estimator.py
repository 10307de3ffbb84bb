"""The encoder-regressor (Fig. 2): image -> Φ -> per-iteration (Θ, β, cam).

The body model is not a submodule: its large constant buffers would bloat every checkpoint.
Pose an output with :func:`pose_body`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..body.mesh_sampling import body_mesh_sampling
from ..body.model import BodyModel, BodyOutput
from ..config import ModelConfig
from .cmr import CMRRegressor
from .encoder import build_encoder
from .hkmr import HKMRRegressor
from .hmr import HMRRegressor
from .output import MeanParams, RegressorOutput


def build_regressor(cfg: ModelConfig, feat_dim: int, mean: MeanParams,
                    body_path: str | None = None) -> nn.Module:
    """``body_path``: the body model (None = procedural) whose mesh CMR's graph is made from."""
    if cfg.regressor == "hkmr":
        return HKMRRegressor(feat_dim, cfg, mean)
    if cfg.regressor == "hmr":
        return HMRRegressor(feat_dim, cfg, mean)
    if cfg.regressor == "cmr":
        return CMRRegressor(feat_dim, cfg, mean, body_mesh_sampling(body_path, cfg.cmr_downsample))
    raise ValueError(f"model.regressor={cfg.regressor!r}: choose hkmr, hmr or cmr")


class MeshEstimator(nn.Module):
    """``model(img)`` runs encoder and regressor; ``model(features=Φ)`` the regressor alone
    (the frozen-features regime, :mod:`hkmr.features`, feeds cached Φ). ``body_path``: the
    config's ``body.model_path`` (CMR's graph is made from that body model's mesh)."""

    def __init__(self, cfg: ModelConfig, mean: MeanParams | None = None,
                 body_path: str | None = None):
        super().__init__()
        self.encoder, self.feat_dim = build_encoder(cfg.encoder, cfg.pretrained)
        self.regressor = build_regressor(cfg, self.feat_dim, mean or MeanParams.default(),
                                         body_path)
        self.encoder_frozen = False

    def forward(self, img: torch.Tensor | None = None, features: torch.Tensor | None = None
                ) -> list[RegressorOutput]:
        """``img``: the encoder's input (images, or keypoints (B, 24, 3) under
        ``encoder=keypoints``); ``features``: Φ itself."""
        if (img is None) == (features is None):
            raise ValueError("MeshEstimator: pass either img or features")
        return self.regressor(self.encoder(img) if features is None else features)

    def freeze_encoder(self, state: dict | None = None) -> None:
        """Load encoder weights (optional), stop their gradients and keep the encoder in
        eval mode (its batch-norm statistics are those the cached features were made with)."""
        if state is not None:
            self.encoder.load_state_dict(state)
        self.encoder.requires_grad_(False)
        self.encoder_frozen = True
        self.encoder.eval()

    def train(self, mode: bool = True) -> "MeshEstimator":
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self


def encoder_input(batch: dict) -> torch.Tensor:
    """The encoder's input in a batch: the image, or the keypoint regime's keypoints."""
    return batch["keypoint_input"] if "keypoint_input" in batch else batch["img"]


def pose_body(body: BodyModel, out: RegressorOutput) -> BodyOutput:
    """The mesh and joints of one regressor output: its regressed mesh when it has one (CMR,
    joints by the joint regressor), else the body model posed by its (Θ, β)."""
    if out.vertices is not None:
        return BodyOutput(vertices=out.vertices, joints=body.regress_joints(out.vertices))
    return body.forward(out.pose[:, :1], out.pose[:, 1:], out.betas)


def weak_perspective(joints: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """x̂ = s Π(X) + ρ (Sec. 3.2, camera estimation): (B, J, 3), (B, 3) -> (B, J, 2)."""
    return cam[:, None, :1] * joints[..., :2] + cam[:, None, 1:]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
