"""SMPLify in torch: fit SMPL pose, shape and camera translation to 2D keypoints, batched.

The optimiser of SPIN's encoder-regressor-optimizer loop (Kolotouros et al., ICCV 2019), which
the paper's HKMR_MF uses with the HKMR regressor in place of HMR's (Sec. 3.4, Table 4). It is
SMPLify (Bogo et al., ECCV 2016) as SPIN runs it: started from the regressor's estimate, 2D
keypoints only, two stages of Adam with a fixed number of iterations,

1. global orientation and camera translation, on the torso joints (hips, shoulders), with a
   term keeping the depth near its starting value;
2. body pose, shape and global orientation (camera fixed), on all joints, with the priors:

    E = Σ_j c_j² ρ(r_j) + λ_θ² E_pose(θ) + λ_a² Σ exp(±θ_bend)² + λ_β² ‖β‖²

* ρ is Geman-McClure, ρ(x) = x²σ²/(x²+σ²), on the residual r_j (per coordinate);
* E_pose is the pose prior: the max-mixture GMM (:mod:`hkmr.train.gmm`, SMPLify's and SPIN's
  choice) or the KL term of our VAE, KL(q(z|θ) ‖ N(0, I)) (``train.smplify_prior``);
* the angle prior penalises elbows and knees bent the unnatural way: exp(θ) of the left elbow's
  y-rotation, exp(-θ) of the right elbow's y and both knees' x (SMPL's joint frames, which the
  procedural body shares);
* weights as SPIN: λ_θ = 4.78, λ_a = 15.2, λ_β = 5, depth 100, σ = 100, Adam lr 1e-2,
  100 iterations per stage.

Units. Keypoints are in normalised crop units x ∈ [-1, 1]. SPIN's σ and weights are for
residuals in pixels of a 224-pixel crop, so residuals here are r = 112·(x̂ - x) ("SPIN pixels"):
the balance of terms is SPIN's whatever our crop size.

Camera. The regressor's weak perspective x̂ = s·X + (t_x, t_y) becomes a perspective camera
with a fixed focal length, as SPIN does (f = 5000 px for a 224 px crop, t_z = 2f / (224 s)).
In normalised units the focal length is f_n = 2f / crop = 5000 / 112 ≈ 44.6 for every crop
size (for our 64 px crops that is a 1,429 px lens): projection x̂ = f_n (X + T)_xy / (X + T)_z
with T = (t_x / s, t_y / s, f_n / s) gives x̂ ≈ s·X + t for a body whose depth extent is small
against f_n / s (≈ 50 m), i.e. the weak perspective the regressor predicts. (Our weak
perspective adds t after scaling, SPIN's before, hence t / s where SPIN has t.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..body.kinematics import JointKinematics
from ..body.joints import JOINT_INDEX

#: normalised focal length: SPIN's 5000 px at a 224 px crop, f_n = 2 f / crop
FOCAL = 2 * 5000.0 / 224
#: normalised crop units -> pixels of SPIN's 224 px crop
SPIN_PIXELS = 224 / 2
SIGMA = 100.0
POSE_WEIGHT, ANGLE_WEIGHT, SHAPE_WEIGHT, DEPTH_WEIGHT = 4.78, 15.2, 5.0, 100.0
TORSO = tuple(JOINT_INDEX[n] for n in ("left_hip", "right_hip", "left_shoulder",
                                       "right_shoulder"))
#: (SMPL joint, axis, sign): exp(sign * θ) grows when the joint bends the unnatural way
_BENDS = ((JOINT_INDEX["left_elbow"], 1, 1.0), (JOINT_INDEX["right_elbow"], 1, -1.0),
          (JOINT_INDEX["left_knee"], 0, -1.0), (JOINT_INDEX["right_knee"], 0, -1.0))

PosePrior = Callable[[torch.Tensor], torch.Tensor]  # (B, 69) body pose -> (B,) energy


def weak_to_translation(cam: torch.Tensor, focal: float = FOCAL) -> torch.Tensor:
    """Weak perspective (s, t_x, t_y) -> camera translation (t_x/s, t_y/s, f/s), (B, 3)."""
    s = cam[:, :1].clamp(min=1e-2)
    return torch.cat([cam[:, 1:] / s, focal / s], dim=1)


def project(joints: torch.Tensor, transl: torch.Tensor, focal: float = FOCAL) -> torch.Tensor:
    """Perspective projection to normalised crop units: (B, J, 3), (B, 3) -> (B, J, 2)."""
    p = joints + transl[:, None]
    return focal * p[..., :2] / p[..., 2:].clamp(min=1e-3)


def gmof(x: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """Geman-McClure ρ(x) = x²σ² / (x² + σ²)."""
    x2 = x.pow(2)
    return x2 * sigma**2 / (x2 + sigma**2)


def angle_prior(body_pose: torch.Tensor) -> torch.Tensor:
    """(B, 69) -> (B,): Σ exp(sign θ)² over elbows (y) and knees (x)."""
    pose = body_pose.reshape(-1, 23, 3)
    terms = [torch.exp(sign * pose[:, j - 1, axis]).pow(2) for j, axis, sign in _BENDS]
    return torch.stack(terms, 1).sum(1)


def reprojection_loss(joints: torch.Tensor, transl: torch.Tensor, keypoints: torch.Tensor,
                      focal: float = FOCAL, joint_ids=None, reduce: str = "sum") -> torch.Tensor:
    """Σ_j c_j² ρ(112 (x̂_j - x_j)) summed over coordinates, per sample (B,); ``reduce="mean"``
    divides by the number of annotated joints (the per-sample fit loss the fits store keeps:
    SPIN averages over joints, here over the annotated ones)."""
    if joint_ids is not None:
        joints, keypoints = joints[:, list(joint_ids)], keypoints[:, list(joint_ids)]
    residual = SPIN_PIXELS * (project(joints, transl, focal) - keypoints[..., :2])
    conf2 = keypoints[..., 2].pow(2)
    per_joint = conf2 * gmof(residual).sum(-1)
    if reduce == "mean":
        return per_joint.sum(1) / (keypoints[..., 2] > 0).sum(1).clamp(min=1)
    return per_joint.sum(1)


def estimate_translation(joints: torch.Tensor, keypoints: torch.Tensor,
                         focal: float = FOCAL) -> torch.Tensor:
    """The camera translation T minimising the confidence-weighted algebraic error of the
    projection of ``joints`` onto ``keypoints``: f(X + T_x) = x (Z + T_z) is linear in T, two
    equations per joint, solved by weighted least squares (B, 3). For scoring a stored fit
    under a new sample's keypoints, as SPIN's ``estimate_translation``."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    w = keypoints[..., 2].clamp(min=0)
    zeros, f = torch.zeros_like(x), torch.full_like(x, focal)
    rows = torch.cat([torch.stack([f, zeros, -x], -1), torch.stack([zeros, f, -y], -1)], 1)
    rhs = torch.cat([x * joints[..., 2] - focal * joints[..., 0],
                     y * joints[..., 2] - focal * joints[..., 1]], 1)
    weight = torch.cat([w, w], 1)[..., None]
    a = (rows * weight).transpose(1, 2) @ rows
    b = (rows * weight).transpose(1, 2) @ rhs[..., None]
    a = a + 1e-6 * torch.eye(3, dtype=a.dtype, device=a.device)
    return torch.linalg.solve(a, b)[..., 0]


@dataclass
class Fit:
    """SMPLify's result: ``pose`` (B, 72) axis-angle, ``betas`` (B, 10), ``transl`` (B, 3)
    and ``loss`` (B,), the reprojection loss per annotated joint in SPIN pixels² units."""

    pose: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    loss: torch.Tensor


class SMPLify:
    """``SMPLify(kinematics, prior)(pose, betas, cam, keypoints)`` fits a batch; see the
    module docstring. Only joints are needed, so it poses them with the joints-only
    kinematics (no mesh)."""

    def __init__(self, kinematics: JointKinematics, pose_prior: PosePrior | None,
                 iters: int = 100, lr: float = 1e-2, focal: float = FOCAL):
        self.kinematics, self.pose_prior = kinematics, pose_prior
        self.iters, self.lr, self.focal = iters, lr, focal

    def joints(self, global_orient, body_pose, betas) -> torch.Tensor:
        return self.kinematics(torch.cat([global_orient, body_pose], 1), betas)

    def body_energy(self, global_orient, body_pose, betas, transl, keypoints) -> torch.Tensor:
        """Stage 2's objective per sample, (B,)."""
        energy = reprojection_loss(self.joints(global_orient, body_pose, betas), transl,
                                   keypoints, self.focal)
        energy = energy + ANGLE_WEIGHT**2 * angle_prior(body_pose)
        energy = energy + SHAPE_WEIGHT**2 * betas.pow(2).sum(1)
        if self.pose_prior is not None:
            energy = energy + POSE_WEIGHT**2 * self.pose_prior(body_pose)
        return energy

    def fitting_loss(self, pose: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor,
                     keypoints: torch.Tensor) -> torch.Tensor:
        """The per-sample fit loss of given parameters (pose (B, 72) axis-angle)."""
        with torch.no_grad():
            joints = self.kinematics(pose, betas)
            return reprojection_loss(joints, transl, keypoints, self.focal, reduce="mean")

    def __call__(self, pose: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor,
                 keypoints: torch.Tensor) -> Fit:
        """Fit from ``pose`` (B, 72) axis-angle, ``betas`` (B, 10), weak-perspective ``cam``
        (B, 3) to ``keypoints`` (B, 24, 3) (normalised units, confidence last)."""
        pose, betas, keypoints = pose.detach().float(), betas.detach().float(), \
            keypoints.detach().float()
        global_orient = pose[:, :3].clone().requires_grad_(True)
        body_pose = pose[:, 3:].clone()
        betas = betas.clone()
        transl = weak_to_translation(cam.detach().float(), self.focal).requires_grad_(True)
        depth0 = transl[:, 2].detach().clone()
        with torch.enable_grad():
            opt = torch.optim.Adam([global_orient, transl], lr=self.lr, betas=(0.9, 0.999))
            for _ in range(self.iters):  # stage 1: orientation and camera, torso joints
                joints = self.joints(global_orient, body_pose, betas)
                loss = (reprojection_loss(joints, transl, keypoints, self.focal, TORSO)
                        + DEPTH_WEIGHT**2 * (transl[:, 2] - depth0).pow(2)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            transl = transl.detach()
            body_pose.requires_grad_(True)
            betas.requires_grad_(True)
            opt = torch.optim.Adam([body_pose, betas, global_orient], lr=self.lr,
                                   betas=(0.9, 0.999))
            for _ in range(self.iters):  # stage 2: pose, shape, orientation; camera fixed
                loss = self.body_energy(global_orient, body_pose, betas, transl, keypoints).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        pose = torch.cat([global_orient, body_pose], 1).detach()
        betas = betas.detach()
        return Fit(pose, betas, transl, self.fitting_loss(pose, betas, transl, keypoints))


def make_pose_prior(kind: str, cfg, device: torch.device | str = "cpu") -> PosePrior:
    """SMPLify's pose prior for ``train.smplify_prior``: ``gmm`` (fitted to the pose corpus)
    or ``vae`` (the VAE of ``model.vae_checkpoint``, or the default one, as the regressor's)."""
    if kind == "gmm":
        from .gmm import default_gmm

        return default_gmm(cfg.train.prior_corpus).to(device)
    if kind == "vae":
        from ..model.priors import PoseVAE, default_vae

        vae = (PoseVAE.load(cfg.model.vae_checkpoint) if cfg.model.vae_checkpoint
               else default_vae(cfg.train.prior_corpus)).to(device)
        return lambda body_pose: vae.kl(*vae.encode(body_pose))
    raise ValueError(f"train.smplify_prior={kind!r}: choose vae or gmm")
