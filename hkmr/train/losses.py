"""The overall learning objective, Eq. 3, summed over the T outer iterations.

L = Σ_t λ_smpl L_smpl^t + λ_3D L_3D^t + λ_2D L_2D^t + λ_prior L_prior^t, where

* L_3D: L1 between pelvis-aligned predicted and ground-truth 3D joints (confidence-weighted,
  samples with 3D ground truth only);
* L_2D: L1 between the weak-perspective projection s Π(X̂) + ρ and the 2D keypoints
  (confidence-weighted; [-1, 1] crop units);
* L_smpl: squared L2 on the pose as rotation matrices (as SPIN does; axis-angle differences
  wrap at π) plus ``w_shape`` times squared L2 on β, where SMPL ground truth exists;
* L_prior: the VAE's KL term (Sec. 3.2) or the discriminator's generator loss (Table 2);
* for a regressor that outputs a mesh (CMR): L1 per vertex against the ground-truth mesh
  ``batch["vertices"]`` where SMPL ground truth exists (``w_vertices``), as CMR's shape loss.

Each term is a mean over valid entries, so the weights carry over from SPIN's defaults.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..config import LossConfig
from ..model.estimator import weak_perspective
from ..model.output import RegressorOutput
from ..model.priors import PoseDiscriminator, PoseVAE
from ..body.rotations import axis_angle_to_matrix

JointsFn = Callable[[RegressorOutput], torch.Tensor]


def _weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ w |pred - target| / (Σ w * dims); zero when nothing is annotated."""
    dims = pred.shape[-1]
    return (weight[..., None] * (pred - target).abs()).sum() / (weight.sum() * dims).clamp(min=1)


def joints_3d_loss(pred: torch.Tensor, gt: torch.Tensor, has_3d: torch.Tensor) -> torch.Tensor:
    """pred (B, 24, 3), gt (B, 24, 4) with confidence; pelvis-aligned (joint 0)."""
    weight = gt[..., 3] * has_3d[:, None]
    pred = pred - pred[:, :1]
    target = gt[..., :3] - gt[:, :1, :3]
    return _weighted_l1(pred, target, weight)


def keypoints_2d_loss(pred_2d: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """pred (B, 24, 2), gt (B, 24, 3) with confidence."""
    return _weighted_l1(pred_2d, gt[..., :2], gt[..., 2])


def smpl_losses(out: RegressorOutput, gt_pose: torch.Tensor, gt_betas: torch.Tensor,
                has_smpl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared L2 on rotation matrices and on β, averaged over samples with SMPL truth."""
    n = has_smpl.sum().clamp(min=1)
    gt_rot = axis_angle_to_matrix(gt_pose.reshape(-1, 24, 3))
    pose = ((out.pose - gt_rot).pow(2).sum((1, 2, 3)) * has_smpl).sum() / n / 24
    betas = ((out.betas - gt_betas).pow(2).sum(1) * has_smpl).sum() / n
    return pose, betas


def vertices_loss(pred: torch.Tensor, gt: torch.Tensor, has_smpl: torch.Tensor) -> torch.Tensor:
    """L1 per vertex, (B, V, 3) each, over samples with SMPL ground truth."""
    return _weighted_l1(pred, gt, has_smpl[:, None].expand(pred.shape[:2]))


def prior_loss(prior: PoseVAE | PoseDiscriminator | None, out: RegressorOutput) -> torch.Tensor:
    if prior is None:
        return out.betas.new_zeros(())
    if isinstance(prior, PoseVAE):
        return prior.prior_loss(out.pose_aa if out.pose_aa is not None else out.pose)
    return prior.generator_loss(out.pose, out.betas)


def total_loss(outputs: list[RegressorOutput], batch: dict[str, torch.Tensor],
               joints_of: JointsFn, weights: LossConfig,
               prior: PoseVAE | PoseDiscriminator | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 3. Returns the total and each weighted term summed over t (for logging and for
    naming the term when a loss is not finite)."""
    terms = dict.fromkeys(("3d", "2d", "smpl_pose", "smpl_shape", "prior"), 0.0)
    for out in outputs:
        joints = joints_of(out)
        terms["3d"] = terms["3d"] + weights.w_3d * joints_3d_loss(
            joints, batch["joints3d"], batch["has_joints3d"])
        pred_2d = weak_perspective(joints, out.cam)
        l2d = weights.w_gt_2d * keypoints_2d_loss(pred_2d, batch["keypoints"])
        if weights.w_openpose > 0 and "openpose" in batch:  # SPIN's two 2D keypoint sets
            l2d = l2d + weights.w_openpose * keypoints_2d_loss(pred_2d, batch["openpose"])
        terms["2d"] = terms["2d"] + weights.w_2d * l2d
        pose, shape = smpl_losses(out, batch["pose"], batch["betas"], batch["has_smpl"])
        terms["smpl_pose"] = terms["smpl_pose"] + weights.w_smpl * pose
        terms["smpl_shape"] = terms["smpl_shape"] + weights.w_shape * shape
        if prior is not None and weights.w_prior > 0:
            terms["prior"] = terms["prior"] + weights.w_prior * prior_loss(prior, out)
        if out.vertices is not None:
            terms["vertices"] = terms.get("vertices", 0.0) + weights.w_vertices * vertices_loss(
                out.vertices, batch["vertices"], batch["has_smpl"])
    terms = {k: torch.as_tensor(v, dtype=outputs[0].betas.dtype) for k, v in terms.items()}
    return sum(terms.values()), terms
