"""What every regressor returns and where it starts from (Sec. 3.2: Θ^0, β^0, cam^0)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..body.rotations import axis_angle_to_matrix, sixd_to_matrix


class RegressorOutput:
    """One (outer) iteration's estimate. ``pose`` (rotation matrices, SMPL order) is made on
    first access from whichever form the regressor produced (axis-angle for HKMR, 6D for HMR),
    so inference pays for the conversion only where it is used.

    ``vertices``: the regressed mesh of a regressor that outputs one (CMR); losses, joints and
    metrics then use it (its joints are ``J_regressor @ vertices``), and Θ, β are a by-product."""

    def __init__(self, betas: torch.Tensor, cam: torch.Tensor, pose: torch.Tensor | None = None,
                 pose_aa: torch.Tensor | None = None, pose_6d: torch.Tensor | None = None,
                 vertices: torch.Tensor | None = None):
        self.betas = betas  # (B, num_betas)
        self.cam = cam  # (B, 3): weak perspective s, tx, ty (2D = s * X[..., :2] + t)
        self.pose_aa = pose_aa  # (B, 24, 3) axis-angle, when the regressor has it
        self.vertices = vertices  # (B, V, 3) regressed mesh, when the regressor has one
        self._pose, self._pose_6d = pose, pose_6d

    def float(self) -> "RegressorOutput":
        """A float32 copy (after mixed-precision forward passes)."""
        def f(x):
            return None if x is None else x.float()
        return RegressorOutput(f(self.betas), f(self.cam), pose=f(self._pose),
                               pose_aa=f(self.pose_aa), pose_6d=f(self._pose_6d),
                               vertices=f(self.vertices))

    @property
    def pose(self) -> torch.Tensor:
        """(B, 24, 3, 3) rotation matrices."""
        if self._pose is None:
            self._pose = (axis_angle_to_matrix(self.pose_aa) if self.pose_aa is not None
                          else sixd_to_matrix(self._pose_6d))
        return self._pose


@dataclass
class MeanParams:
    """The mean pose (axis-angle, SMPL order, global orientation in the camera frame),
    shape and camera every regressor starts from."""

    pose: torch.Tensor  # (72,)
    betas: torch.Tensor  # (num_betas,)
    cam: torch.Tensor  # (3,)

    @classmethod
    def default(cls, num_betas: int = 10) -> "MeanParams":
        """An upright body facing the camera (a half turn about x maps SMPL's y-up to the
        camera's y-down), rest pose elsewhere, mean shape, a camera that fills the crop.
        The data layer's ``mean_params()`` (the mean of the training distribution) is used
        when it is available."""
        pose = torch.zeros(72)
        pose[0] = math.pi
        return cls(pose=pose, betas=torch.zeros(num_betas), cam=torch.tensor([0.9, 0.0, 0.0]))

    @classmethod
    def from_dict(cls, values: dict) -> "MeanParams":
        return cls(**{k: torch.as_tensor(values[k], dtype=torch.float32).flatten()
                      for k in ("pose", "betas", "cam")})
