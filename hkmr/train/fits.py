"""The fits store of the in-the-loop optimisation: one best SMPLify fit per training sample.

SPIN (Kolotouros et al., ICCV 2019) keeps, for every training image, the best SMPL fit found
so far and supervises the regressor with it (the paper's HKMR_MF, Sec. 3.4, Table 4). The
store holds N x (72 pose + 10 shape) and the fit's loss, in the **un-augmented** frame of the
sample, because the image a sample shows differs from epoch to epoch:

* augmentation (:mod:`hkmr.data.augment`) mirrors first (``flip_pose``: swap left and right,
  negate the y and z of every axis-angle), then rotates the global orientation about the
  camera's z axis by the angle θ of the image rotation (R(θ) · R_orient);
* so a fit made on an augmented sample is stored after ``R(-θ) · R_orient`` and then the
  mirror (its own inverse), and read back for a sample with another augmentation by applying
  that one (:func:`augment_pose`, :func:`unaugment_pose`). Scale changes only the camera,
  which the store does not keep.

Initially every fit is the regressors' mean pose with loss +inf ("no fit yet"). A sample with
SMPL ground truth (``has_smpl``) stores that with loss 0, and no fit replaces it.

On disk: ``fits.npz`` (``pose`` (N, 72), ``betas`` (N, 10), ``loss`` (N,) float32, ``step``)
next to the run's ``checkpoint.pt``, written atomically with every checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..body.joints import flip_pose
from ..body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..io import atomic_path

FITS = "fits.npz"


def _rotate_orient(pose: torch.Tensor, rot_deg: torch.Tensor) -> torch.Tensor:
    """Rotate the global orientation of (B, 72) poses about the camera's z axis."""
    t = torch.deg2rad(rot_deg.to(pose.dtype))
    c, s, z, o = t.cos(), t.sin(), torch.zeros_like(t), torch.ones_like(t)
    rot = torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(-1, 3, 3)
    orient = matrix_to_axis_angle(rot @ axis_angle_to_matrix(pose[:, :3]))
    return torch.cat([orient, pose[:, 3:]], 1)


def _flip(pose: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    mirrored = flip_pose(pose.reshape(-1, 24, 3)).reshape(-1, 72)
    return torch.where(flip.bool()[:, None], mirrored, pose)


def augment_pose(pose: torch.Tensor, flip: torch.Tensor, rot_deg: torch.Tensor) -> torch.Tensor:
    """Un-augmented (B, 72) poses -> the frame of samples augmented by (flip, rot_deg)."""
    return _rotate_orient(_flip(pose, flip), rot_deg)


def unaugment_pose(pose: torch.Tensor, flip: torch.Tensor, rot_deg: torch.Tensor
                   ) -> torch.Tensor:
    """Inverse of :func:`augment_pose`."""
    return _flip(_rotate_orient(pose, -rot_deg), flip)


class FitsStore:
    """``n`` fits on the CPU (float32); batches move between it and the device."""

    def __init__(self, n: int, mean_pose: torch.Tensor, num_betas: int = 10):
        self.pose = mean_pose.float().reshape(1, 72).repeat(n, 1)
        self.betas = torch.zeros(n, num_betas)
        self.loss = torch.full((n,), math.inf)

    def __len__(self) -> int:
        return len(self.loss)

    def read(self, keys: torch.Tensor, flip: torch.Tensor, rot_deg: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pose, betas, loss) of samples ``keys`` in their augmented frame."""
        k = keys.cpu()
        device = flip.device
        pose = augment_pose(self.pose[k].to(device), flip, rot_deg.to(device))
        return pose, self.betas[k].to(device), self.loss[k].to(device)

    def update(self, keys: torch.Tensor, pose: torch.Tensor, betas: torch.Tensor,
               loss: torch.Tensor, flip: torch.Tensor, rot_deg: torch.Tensor,
               has_smpl: torch.Tensor | None = None, against: torch.Tensor | None = None
               ) -> torch.Tensor:
        """Store the fits (augmented frame) of samples ``keys`` where ``loss`` is lower than
        ``against`` (default: the stored losses) and the sample has no ground truth; samples
        with ``has_smpl`` store the given parameters (their ground truth) with loss 0.
        Returns the mask of samples whose fit was replaced by a better one. A key given twice
        in one call (a mixture may repeat an item) keeps one of its rows."""
        k = keys.cpu()
        loss = loss.detach().float().cpu()
        gt = (torch.zeros_like(loss, dtype=torch.bool) if has_smpl is None
              else has_smpl.detach().cpu() > 0)
        against = self.loss[k] if against is None else against.detach().float().cpu()
        better = (loss < against) & ~gt & (self.loss[k] > 0)  # loss 0: ground truth stored
        write = better | gt
        if write.any():
            flat = unaugment_pose(pose.detach().float(), flip, rot_deg.to(pose.device)).cpu()
            kw = k[write]
            self.pose[kw] = flat[write]
            self.betas[kw] = betas.detach().float().cpu()[write]
            self.loss[kw] = torch.where(gt, torch.zeros_like(loss), loss)[write]
        return better

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"pose": self.pose.clone(), "betas": self.betas.clone(), "loss": self.loss.clone()}

    def save(self, path: str | Path, step: int) -> Path:
        with atomic_path(path) as tmp:
            np.savez(tmp, pose=self.pose.numpy(), betas=self.betas.numpy(),
                     loss=self.loss.numpy(), step=np.int64(step))
        return Path(path)

    def load(self, path: str | Path) -> int:
        """Read ``path`` into this store (same size); returns the step it was saved at."""
        with np.load(path) as blob:
            if blob["pose"].shape != tuple(self.pose.shape):
                raise ValueError(f"{path}: fits for {blob['pose'].shape[0]} samples, but the "
                                 f"training set has {len(self)}")
            self.pose = torch.from_numpy(blob["pose"].copy())
            self.betas = torch.from_numpy(blob["betas"].copy())
            self.loss = torch.from_numpy(blob["loss"].copy())
            return int(blob["step"])
