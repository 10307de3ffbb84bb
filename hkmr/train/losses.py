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

Each term is a mean over valid entries, so the weights carry over from SPIN's defaults; in a
DDP run over the valid entries of the global batch (all ranks' shares, ``denominators``).
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


Tensor = torch.Tensor


def _weighted_l1(pred: Tensor, target: Tensor, weight: Tensor,
                 denominator: Tensor | None = None) -> Tensor:
    """Σ w |pred - target| / (Σ w * dims); zero when nothing is annotated. ``denominator``:
    given instead of this batch's (a DDP rank's, :func:`total_loss`)."""
    if denominator is None:
        denominator = (weight.sum() * pred.shape[-1]).clamp(min=1)
    return (weight[..., None] * (pred - target).abs()).sum() / denominator


def _weight_3d(gt: Tensor, has_3d: Tensor) -> Tensor:
    return gt[..., 3] * has_3d[:, None]


def joints_3d_loss(pred: Tensor, gt: Tensor, has_3d: Tensor,
                   denominator: Tensor | None = None) -> Tensor:
    """pred (B, 24, 3), gt (B, 24, 4) with confidence; pelvis-aligned (joint 0)."""
    pred = pred - pred[:, :1]
    target = gt[..., :3] - gt[:, :1, :3]
    return _weighted_l1(pred, target, _weight_3d(gt, has_3d), denominator)


def keypoints_2d_loss(pred_2d: Tensor, gt: Tensor, denominator: Tensor | None = None) -> Tensor:
    """pred (B, 24, 2), gt (B, 24, 3) with confidence."""
    return _weighted_l1(pred_2d, gt[..., :2], gt[..., 2], denominator)


def smpl_losses(out: RegressorOutput, gt_pose: Tensor, gt_betas: Tensor, has_smpl: Tensor,
                n: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Squared L2 on rotation matrices and on β, averaged over samples with SMPL truth
    (``n``: their number, given instead of this batch's)."""
    n = has_smpl.sum().clamp(min=1) if n is None else n
    gt_rot = axis_angle_to_matrix(gt_pose.reshape(-1, 24, 3))
    pose = ((out.pose - gt_rot).pow(2).sum((1, 2, 3)) * has_smpl).sum() / n / 24
    betas = ((out.betas - gt_betas).pow(2).sum(1) * has_smpl).sum() / n
    return pose, betas


def vertices_loss(pred: Tensor, gt: Tensor, has_smpl: Tensor,
                  denominator: Tensor | None = None) -> Tensor:
    """L1 per vertex, (B, V, 3) each, over samples with SMPL ground truth."""
    return _weighted_l1(pred, gt, has_smpl[:, None].expand(pred.shape[:2]), denominator)


def annotation_counts(outputs: list[RegressorOutput], batch: dict[str, Tensor],
                      weights: LossConfig) -> dict[str, Tensor]:
    """What each mean of Eq. 3 divides by, in this batch: Σ confidence x dims of the 3D
    joints, the 2D keypoints (and OpenPose's), the samples with SMPL truth and their vertex
    coordinates."""
    has_smpl = batch["has_smpl"].sum()
    zero = has_smpl.new_zeros(())
    vertices = outputs[0].vertices
    return {"3d": _weight_3d(batch["joints3d"], batch["has_joints3d"]).sum() * 3,
            "2d": batch["keypoints"][..., 2].sum() * 2,
            "openpose": batch["openpose"][..., 2].sum() * 2
            if weights.w_openpose > 0 and "openpose" in batch else zero,
            "smpl": has_smpl,
            "vertices": has_smpl * vertices.shape[1] * 3 if vertices is not None else zero}


def prior_loss(prior: PoseVAE | PoseDiscriminator | None, out: RegressorOutput) -> torch.Tensor:
    if prior is None:
        return out.betas.new_zeros(())
    if isinstance(prior, PoseVAE):
        return prior.prior_loss(out.pose_aa if out.pose_aa is not None else out.pose)
    return prior.generator_loss(out.pose, out.betas)


def total_loss(outputs: list[RegressorOutput], batch: dict[str, torch.Tensor],
               joints_of: JointsFn, weights: LossConfig,
               prior: PoseVAE | PoseDiscriminator | None = None,
               denominators: Callable[[Tensor], Tensor] | None = None
               ) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. 3. Returns the total and each weighted term summed over t (for logging and for
    naming the term when a loss is not finite).

    ``denominators``: in a DDP run, maps this rank's :func:`annotation_counts` (stacked) to what
    it divides by — the global batch's counts over the number of ranks
    (:meth:`hkmr.train.distributed.Ranks.loss_denominators`) — so the ranks' average gradient
    is the gradient of the one-process loss; None: this batch's own counts."""
    den: dict[str, Tensor | None] = dict.fromkeys(("3d", "2d", "openpose", "smpl", "vertices"))
    if denominators is not None:
        counts = annotation_counts(outputs, batch, weights)
        den = dict(zip(counts, denominators(torch.stack(list(counts.values())))))
    terms = dict.fromkeys(("3d", "2d", "smpl_pose", "smpl_shape", "prior"), 0.0)
    for out in outputs:
        joints = joints_of(out)
        terms["3d"] = terms["3d"] + weights.w_3d * joints_3d_loss(
            joints, batch["joints3d"], batch["has_joints3d"], den["3d"])
        pred_2d = weak_perspective(joints, out.cam)
        l2d = weights.w_gt_2d * keypoints_2d_loss(pred_2d, batch["keypoints"], den["2d"])
        if weights.w_openpose > 0 and "openpose" in batch:  # SPIN's two 2D keypoint sets
            l2d = l2d + weights.w_openpose * keypoints_2d_loss(pred_2d, batch["openpose"],
                                                               den["openpose"])
        terms["2d"] = terms["2d"] + weights.w_2d * l2d
        pose, shape = smpl_losses(out, batch["pose"], batch["betas"], batch["has_smpl"],
                                  den["smpl"])
        terms["smpl_pose"] = terms["smpl_pose"] + weights.w_smpl * pose
        terms["smpl_shape"] = terms["smpl_shape"] + weights.w_shape * shape
        if prior is not None and weights.w_prior > 0:
            terms["prior"] = terms["prior"] + weights.w_prior * prior_loss(prior, out)
        if out.vertices is not None:
            terms["vertices"] = terms.get("vertices", 0.0) + weights.w_vertices * vertices_loss(
                out.vertices, batch["vertices"], batch["has_smpl"], den["vertices"])
    terms = {k: torch.as_tensor(v, dtype=outputs[0].betas.dtype) for k, v in terms.items()}
    return sum(terms.values()), terms
