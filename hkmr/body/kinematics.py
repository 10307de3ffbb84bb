"""Joints-only body kinematics: X(M(Θ, β)) for the 24 joints without the 6890-vertex mesh.

SMPL's kinematic joints are J(β) = J_regressor (T + S β) = J_T + (J_regressor S) β, a linear
function of β, posed by forward kinematics along the parent tree; pose blend shapes move
vertices, never joints. So the joints the losses and joint metrics need (Sec. 3.2, L_3D and
L_2D) cost a 24-joint forward kinematics instead of a full skinning pass. The forward
kinematics is smplx's own ``batch_rigid_transform``, so the result equals smplx's first 24
joints; vertex losses, segmentation metrics and the demo still pose the mesh.

A regressor that outputs the mesh itself (CMR) has no kinematic joints: :meth:`joints_of` takes
its joints as X(M̂) = J_regressor @ regressed vertices, as CMR does.
"""

from __future__ import annotations

import torch
from smplx.lbs import batch_rigid_transform
from torch import nn

from .model import BodyModel
from .rotations import axis_angle_to_matrix


class JointKinematics(nn.Module):
    def __init__(self, body: BodyModel):
        super().__init__()
        smpl = body.smpl
        regressor = smpl.J_regressor.double()
        self.register_buffer("joints_template",
                             (regressor @ smpl.v_template.double()).float(), persistent=False)
        self.register_buffer("joint_dirs", torch.einsum("jv,vck->jck", regressor,
                                                        smpl.shapedirs.double()).float(),
                             persistent=False)
        self.register_buffer("parents", body.parents.clone(), persistent=False)
        self.register_buffer("regressor", smpl.J_regressor.float().clone(), persistent=False)

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """J(β): (B, 24, 3)."""
        return self.joints_template + torch.einsum("bk,jck->bjc", betas, self.joint_dirs)

    def forward(self, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """pose (B, 24, 3, 3) rotation matrices or (B, 24, 3)/(B, 72) axis-angle -> (B, 24, 3)."""
        if pose.shape[-2:] != (3, 3):
            pose = axis_angle_to_matrix(pose.reshape(pose.shape[0], 24, 3))
        posed, _ = batch_rigid_transform(pose, self.rest_joints(betas), self.parents,
                                         dtype=pose.dtype)
        return posed

    def joints_of(self, out) -> torch.Tensor:
        """The 24 joints of a :class:`~hkmr.model.RegressorOutput`: regressed from its mesh
        when it has one (CMR), else the forward kinematics of its (Θ, β). (B, 24, 3)."""
        if out.vertices is not None:
            return torch.einsum("jv,bvc->bjc", self.regressor.to(out.vertices.dtype),
                                out.vertices)
        return self(out.pose, out.betas)
