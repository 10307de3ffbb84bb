"""The HMR regressor with iterative error feedback: the baseline of Tables 1 and 4.

As in HMR (Kanazawa et al.) and SPIN (Kolotouros et al.): starting from the mean pose, shape
and camera, each of ``hmr_iters`` (3) iterations feeds [Φ, Θ, β, cam] through two 1024-unit
fully-connected layers with dropout (ReLU between them as in HMR) and adds the decoded
residuals. The pose is kept in the continuous 6D rotation representation, as SPIN does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..body.rotations import axis_angle_to_matrix, matrix_to_sixd
from ..config import ModelConfig
from .output import MeanParams, RegressorOutput


class HMRRegressor(nn.Module):
    def __init__(self, feat_dim: int, cfg: ModelConfig, mean: MeanParams, num_betas: int = 10):
        super().__init__()
        self.iters = cfg.hmr_iters
        npose = 24 * 6
        self.fc1 = nn.Linear(feat_dim + npose + num_betas + 3, cfg.hmr_hidden)
        self.fc2 = nn.Linear(cfg.hmr_hidden, cfg.hmr_hidden)
        self.drop1, self.drop2 = nn.Dropout(cfg.dropout), nn.Dropout(cfg.dropout)
        self.dec_pose = nn.Linear(cfg.hmr_hidden, npose)
        self.dec_shape = nn.Linear(cfg.hmr_hidden, num_betas)
        self.dec_cam = nn.Linear(cfg.hmr_hidden, 3)
        for layer in (self.dec_pose, self.dec_shape, self.dec_cam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        init_pose = matrix_to_sixd(axis_angle_to_matrix(mean.pose.reshape(24, 3))).flatten()
        self.register_buffer("init_pose", init_pose)
        self.register_buffer("init_betas", mean.betas.clone())
        self.register_buffer("init_cam", mean.cam.clone())

    def forward(self, phi: torch.Tensor) -> list[RegressorOutput]:
        B = phi.shape[0]
        pose = self.init_pose.expand(B, -1)
        betas = self.init_betas.expand(B, -1)
        cam = self.init_cam.expand(B, -1)
        outputs = []
        for _ in range(self.iters):
            x = torch.cat([phi, pose, betas, cam], dim=1)
            x = self.drop1(F.relu(self.fc1(x)))
            x = self.drop2(F.relu(self.fc2(x)))
            pose = pose + self.dec_pose(x)
            betas = betas + self.dec_shape(x)
            cam = cam + self.dec_cam(x)
            outputs.append(RegressorOutput(betas=betas, cam=cam, pose_6d=pose.view(B, 24, 6)))
        return outputs
