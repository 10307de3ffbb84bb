"""The SMPL body model M(Θ, β) and joint regressor X(·) of Sec. 3.1, through ``smplx``.

:class:`BodyModel` is an ``nn.Module`` around ``smplx.SMPL``. Its source is either hkmr's
procedural SMPL-format body (the default, see :mod:`hkmr.body.procedural`) or a real SMPL file
given by path (see :mod:`hkmr.body.smpl_file`). Either way the real smplx code path poses it.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import smplx
import torch
from smplx.utils import Struct
from torch import nn

from ..digest import array_digest
from .joints import LSP14, NUM_JOINTS
from .procedural import procedural_model_path
from .smpl_file import load_smpl_file


@dataclass
class BodyOutput:
    """Posed mesh and the 24 kinematic joints (SMPL order), metres, root not translated."""

    vertices: torch.Tensor  # (B, V, 3)
    joints: torch.Tensor  # (B, 24, 3)

    @property
    def eval_joints(self) -> torch.Tensor:
        """The 14 LSP-style evaluation joints, (B, 14, 3)."""
        return self.joints[:, list(LSP14)]


class BodyModel(nn.Module):
    """SMPL through smplx. ``model_path=None`` uses the procedural model (built and cached on
    first use); otherwise the ``.pkl``/``.npz`` at that path, validated on load."""

    def __init__(self, model_path: str | Path | None = None, num_betas: int = 10):
        super().__init__()
        self.source = str(model_path) if model_path else "procedural"
        arrays = load_smpl_file(model_path or procedural_model_path())
        self.digest = array_digest(arrays)
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note on 10 betas
            self.smpl = smplx.SMPL(
                model_path="", data_struct=Struct(**arrays), num_betas=num_betas,
                create_betas=False, create_global_orient=False, create_body_pose=False,
                create_transl=False,
            )
        self.num_betas = num_betas
        parents = arrays["kintree_table"][0].astype(np.int64)
        parents[0] = -1
        self.register_buffer("parents", torch.as_tensor(parents), persistent=False)
        self.register_buffer("faces", torch.as_tensor(arrays["f"]), persistent=False)

    @property
    def num_vertices(self) -> int:
        return self.smpl.v_template.shape[0]

    def forward(self, global_orient: torch.Tensor, body_pose: torch.Tensor,
                betas: torch.Tensor) -> BodyOutput:
        """Pose the body. Axis-angle: ``global_orient (B, 3)``, ``body_pose (B, 69)`` or
        ``(B, 23, 3)``; rotation matrices: ``(B, 1, 3, 3)`` / ``(B, 3, 3)`` and ``(B, 23, 3, 3)``.
        ``betas (B, num_betas)``. Any batch size, all inputs at the same one."""
        batch = betas.shape[0]
        rotmat = body_pose.shape[-2:] == (3, 3)
        if rotmat:
            global_orient = global_orient.reshape(batch, 1, 3, 3)
            body_pose = body_pose.reshape(batch, NUM_JOINTS - 1, 3, 3)
        else:
            global_orient = global_orient.reshape(batch, 3)
            body_pose = body_pose.reshape(batch, (NUM_JOINTS - 1) * 3)
        out = self.smpl(global_orient=global_orient, body_pose=body_pose, betas=betas,
                        pose2rot=not rotmat)
        return BodyOutput(vertices=out.vertices, joints=out.joints[:, :NUM_JOINTS])

    def forward_pose(self, pose: torch.Tensor, betas: torch.Tensor) -> BodyOutput:
        """Pose from the full Θ in SMPL order: ``(B, 72)``/``(B, 24, 3)`` or ``(B, 24, 3, 3)``."""
        if pose.shape[-2:] == (3, 3):
            return self.forward(pose[:, :1], pose[:, 1:], betas)
        pose = pose.reshape(pose.shape[0], NUM_JOINTS, 3)
        return self.forward(pose[:, 0], pose[:, 1:], betas)

    def regress_joints(self, vertices: torch.Tensor) -> torch.Tensor:
        """X(M): the joint regressor applied to (posed) vertices, (B, 24, 3)."""
        return torch.einsum("jv,bvc->bjc", self.smpl.J_regressor, vertices)
