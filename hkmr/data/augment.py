"""Training augmentation with consistently transformed ground truth (the HMR/SPIN recipe the
paper follows in Sec. 4: flip, rotation, scale, colour noise).

A sample is a dict of numpy arrays (see :func:`hkmr.data.datasets.make_item` for the keys).
The geometric part of an augmentation is a 2x2 linear map ``A`` of crop coordinates
``x in [-1, 1]^2`` about the crop centre: ``A = R(θ) F / scale`` with ``F = diag(-1, 1)`` for a
horizontal flip. In 3D this is exact: the flip is the reflection x -> -x of the camera frame
(the procedural body is mirror symmetric, so the mirrored body is the body with the mirrored
pose, :func:`~hkmr.body.joints.flip_pose`, and left/right joints swap), the rotation is a
rotation about the optical axis (applied to the global orientation, the 3D joints and the
translation), and the scale only changes the focal length.

SPIN's defaults: flip with probability 0.5; rotation ~ N(0, 30°) clipped to ±60° in 40 % of
samples; scale 1 + N(0, 0.25) clipped to ±0.25; per-channel colour gain U(0.6, 1.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..body.joints import FLIP_PERMUTATION, flip_pose

_PERM = np.asarray(FLIP_PERMUTATION)
#: part-label lookup for a flipped label map (0 background stays 0)
_LABEL_FLIP = np.concatenate([[0], _PERM + 1]).astype(np.uint8)


@dataclass(frozen=True)
class AugParams:
    flip: bool = False
    rot_deg: float = 0.0
    scale: float = 1.0  # > 1 zooms out (the crop covers more of the scene)
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def linear(self) -> np.ndarray:
        """The 2x2 map of crop coordinates (y grows downwards; θ > 0 turns x towards y)."""
        t = np.deg2rad(self.rot_deg)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        return rot @ np.diag([-1.0 if self.flip else 1.0, 1.0]) / self.scale

    def rotation3d(self) -> np.ndarray:
        """The rotation about the camera's z axis that matches the image rotation."""
        t = np.deg2rad(self.rot_deg)
        return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0],
                         [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Augment:
    """Random :class:`AugParams` as in SPIN; ``Augment()`` gives SPIN's defaults."""

    flip_prob: float = 0.5
    rot_factor: float = 30.0
    rot_prob: float = 0.4
    scale_factor: float = 0.25
    noise_factor: float = 0.4

    def sample(self, rng: np.random.Generator) -> AugParams:
        flip = bool(rng.random() < self.flip_prob)
        rot = float(np.clip(rng.standard_normal() * self.rot_factor, -2 * self.rot_factor,
                            2 * self.rot_factor))
        rot = rot if rng.random() < self.rot_prob else 0.0
        scale = 1.0 + float(np.clip(rng.standard_normal() * self.scale_factor,
                                    -self.scale_factor, self.scale_factor))
        gain = tuple(float(g) for g in rng.uniform(1 - self.noise_factor, 1 + self.noise_factor, 3))
        return AugParams(flip=flip, rot_deg=rot, scale=scale, gain=gain)


def crop_warp(linear: np.ndarray, size: int) -> np.ndarray:
    """2x3 ``cv2.warpAffine`` matrix applying ``linear`` about the centre of an S x S crop
    (pixel indices; pixel i's centre is the continuous coordinate i + 0.5)."""
    c = size / 2 - 0.5
    return np.hstack([linear, ((np.eye(2) - linear) @ [c, c])[:, None]])


def _rotate_orient(rot: np.ndarray, aa: np.ndarray) -> np.ndarray:
    from ..body.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    mat = torch.as_tensor(rot) @ axis_angle_to_matrix(torch.as_tensor(aa, dtype=torch.float64))
    return matrix_to_axis_angle(mat).numpy()


def transform_targets(sample: dict, params: AugParams) -> dict:
    """Apply ``params`` to everything but the image pixels (and the part map)."""
    out = dict(sample)
    lin = params.linear()
    kp = sample["keypoints"].astype(np.float64).copy()
    vis = sample["visible"].astype(np.float64).copy()
    j3d = sample["joints3d"].astype(np.float64).copy()
    pose = sample["pose"].astype(np.float64).reshape(24, 3)
    transl = sample.get("transl")
    # camera-frame joints = body-model joints + transl, and the model keeps its root joint
    # where it rests whatever the global orientation: so transl follows the root joint
    rest_root = None if transl is None else j3d[0, :3] - transl
    if params.flip:
        kp, vis, j3d = kp[_PERM], vis[_PERM], j3d[_PERM]
        j3d[:, 0] *= -1.0
        pose = flip_pose(torch.as_tensor(pose)).numpy()
    kp[:, :2] = kp[:, :2] @ lin.T
    inside = (np.abs(kp[:, :2]) <= 1.0).all(1)
    kp[:, 2] *= inside
    vis *= inside
    rot = params.rotation3d()
    if params.rot_deg != 0.0:
        j3d[:, :3] = j3d[:, :3] @ rot.T
        if sample["has_smpl"]:
            pose[0] = _rotate_orient(rot, pose[0])
    out.update(keypoints=kp.astype(np.float32), visible=vis.astype(np.float32),
               joints3d=j3d.astype(np.float32), pose=pose.reshape(-1).astype(np.float32))
    if transl is not None:
        out["transl"] = (j3d[0, :3] - rest_root).astype(np.float32)
    if "focal" in sample:
        out["focal"] = np.float32(sample["focal"] / params.scale)
    # what was done, so fits made in this frame can be stored un-augmented (hkmr/train/fits.py)
    out["flip"], out["rot_deg"] = float(params.flip), float(params.rot_deg)
    return out


def apply_gain(img: np.ndarray, gain) -> np.ndarray:
    """Per-channel colour gain on a uint8 RGB image."""
    if tuple(gain) == (1.0, 1.0, 1.0):
        return img
    return np.clip(img.astype(np.float32) * np.asarray(gain, np.float32), 0, 255).astype(np.uint8)


def augment_crop(sample: dict, params: AugParams) -> dict:
    """Augment a sample whose ``img`` (and optional ``parts``) is already the S x S crop."""
    out = transform_targets(sample, params)
    size = sample["img"].shape[0]
    warp = crop_warp(params.linear(), size)
    identity = params.rot_deg == 0.0 and params.scale == 1.0
    if identity:
        img = cv2.flip(sample["img"], 1) if params.flip else sample["img"]
    else:
        img = cv2.warpAffine(sample["img"], warp, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out["img"] = apply_gain(img, params.gain)
    if "parts" in sample:
        parts = sample["parts"]
        if identity:
            parts = cv2.flip(parts, 1) if params.flip else parts
        else:
            parts = cv2.warpAffine(parts, warp, (size, size), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out["parts"] = _LABEL_FLIP[parts] if params.flip else parts
    return out
