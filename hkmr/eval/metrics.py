"""Evaluation metrics of Sec. 4 and Tables 1-5, vectorised in torch; errors per sample.

* MPJPE: mean per-joint position error after aligning the pelvis, no Procrustes (the paper's
  metric, Tables 1-5), in mm.
* PA-MPJPE: after a similarity Procrustes alignment (roma's Umeyama solver), in mm.
* 2D MPJPE (pixels) and PCK on a chosen joint mask (Table 4's "invisible joints").
* Foreground/background and part segmentation accuracy and F1 (Table 5).

Joint sets: the 24 SMPL joints are pelvis-aligned on joint 0; the 14 LSP-style evaluation
joints (:data:`hkmr.body.joints.LSP14`) are aligned on the mid-point of the hips, as SPIN
does for its 14 evaluation joints.
"""

from __future__ import annotations

import roma
import torch

from ..body.joints import JOINT_INDEX, LSP14

_HIPS_IN_LSP14 = [LSP14.index(JOINT_INDEX["left_hip"]), LSP14.index(JOINT_INDEX["right_hip"])]


def _centre(joints: torch.Tensor) -> torch.Tensor:
    if joints.shape[-2] == 14:
        return joints[..., _HIPS_IN_LSP14, :].mean(-2, keepdim=True)
    return joints[..., :1, :]


def joint_errors(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) metres -> (B, J) mm per joint, aligned as :func:`mpjpe`."""
    return 1000 * ((pred - _centre(pred)) - (gt - _centre(gt))).norm(dim=-1)


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) metres -> (B,) mm, pelvis-aligned (J = 24) or hip-centre-aligned (J = 14)."""
    return joint_errors(pred, gt).mean(-1)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJPE after the similarity transform that best aligns pred to gt, (B,) mm."""
    pred, gt = pred.double(), gt.double()
    rot, trans, scale = roma.rigid_points_registration(pred, gt, compute_scaling=True)
    aligned = scale[:, None, None] * pred @ rot.transpose(-1, -2) + trans[:, None]
    return (1000 * (aligned - gt).norm(dim=-1).mean(-1)).float()


def select_eval_joints(joints: torch.Tensor) -> torch.Tensor:
    """The 14 LSP-style joints of SMPL-order joints (B, 24, ·)."""
    return joints[:, list(LSP14)]


def mpjpe_2d(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean pixel distance over masked joints per sample, (B,) (NaN where the mask is empty)."""
    dist = (pred - gt).norm(dim=-1)
    return (dist * mask).sum(-1) / mask.sum(-1)


def pck(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, threshold: float
        ) -> torch.Tensor:
    """Per-sample fraction of masked joints within ``threshold`` (same units as the points)."""
    hit = ((pred - gt).norm(dim=-1) <= threshold).float()
    return (hit * mask).sum(-1) / mask.sum(-1)
