"""Seeded sampling of plausible SMPL poses and shapes (stand-in for the MoSh poses and the
Human3.6M subjects of the paper's Sec. 3.2 "Pose Prior" and Sec. 4 "Datasets").

A pose is built from per-joint Euler angles (intrinsic ``XYZ``, degrees) in SMPL's joint
frames: x is the body's left (flexion/extension), y is up (twist for the trunk and legs;
forward/backward swing for an arm held out sideways), z is forward (abduction). Every joint has
an anatomical range (:data:`JOINT_RANGES`, given for the body's left side and the centre;
the right side is the mirror image, (a, b, c) -> (a, -b, -c), which is exactly the reflection
:func:`hkmr.body.joints.flip_pose` applies). A *style* gives each joint a mean and a spread:
standing, walking, sitting, reaching, crouching, arms raised, and "mixture" (each of the six
chains takes its angles from an independently chosen style; arms are sometimes uniform in
their whole range). All angles get a small jitter and are clipped to the ranges.

The global orientation returned here is in the *world* frame (y up, SMPL's convention): a
heading about the vertical axis plus the style's forward lean. :mod:`hkmr.data.views` turns it
into the camera-frame orientation the datasets carry. Everything is a pure function of a
``numpy.random.Generator``, so a seed fixes every sample.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..body.joints import CHAINS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS

STYLES: tuple[str, ...] = ("standing", "walking", "sitting", "reaching", "crouching",
                           "arms_raised", "mixture")


@dataclass(frozen=True)
class SamplerSettings:
    """Knobs of the training distribution; recorded in every dataset manifest."""

    style_probs: tuple[float, ...] = (0.14, 0.20, 0.14, 0.14, 0.10, 0.10, 0.18)
    heading_deg: float = 45.0  # body heading uniform in +-heading about facing camera 3
    jitter_deg: float = 3.0  # Gaussian jitter added to every joint angle
    beta_std: float = 1.0  # betas ~ N(0, beta_std^2), clipped to +-beta_clip
    beta_clip: float = 2.5
    uniform_arm_prob: float = 0.3  # "mixture": chance an arm is uniform in its range

    def to_dict(self) -> dict:
        return asdict(self)


# --- anatomical ranges, degrees, (x, y, z) each (low, high); left side and centre ----------
_RANGES_LEFT = {
    "pelvis": ((-180, 180), (-180, 180), (-180, 180)),  # global orientation, not clipped
    "hip": ((-125, 30), (-30, 40), (-20, 50)),
    "knee": ((0, 145), (-10, 10), (-5, 5)),
    "ankle": ((-25, 45), (-15, 15), (-20, 20)),
    "foot": ((-20, 25), (-5, 5), (-5, 5)),
    "spine1": ((-15, 35), (-20, 20), (-15, 15)),
    "spine2": ((-15, 30), (-20, 20), (-15, 15)),
    "spine3": ((-15, 30), (-20, 20), (-15, 15)),
    "neck": ((-30, 40), (-40, 40), (-25, 25)),
    "head": ((-30, 30), (-30, 30), (-20, 20)),
    "collar": ((-10, 10), (-20, 15), (-15, 25)),
    "shoulder": ((-70, 70), (-110, 60), (-95, 100)),
    "elbow": ((-70, 70), (-150, 0), (-10, 10)),
    "wrist": ((-40, 40), (-40, 40), (-70, 70)),
    "hand": ((-15, 15), (-15, 15), (-15, 15)),
}
_MIRROR = np.array([1.0, -1.0, -1.0])


def _base(name: str) -> str:
    return name.removeprefix("left_").removeprefix("right_")


def _ranges() -> np.ndarray:
    out = np.zeros((NUM_JOINTS, 3, 2))
    for j, name in enumerate(JOINT_NAMES):
        r = np.array(_RANGES_LEFT[_base(name)], dtype=float)
        if name.startswith("right_"):  # mirror: y and z ranges negate (and swap ends)
            r[1:] = -r[1:, ::-1]
        out[j] = r
    return out


#: (24, 3, 2) per-joint Euler ranges in degrees, SMPL order; row 0 (global) is unbounded.
JOINT_RANGES: np.ndarray = _ranges()


class _Spec:
    """Mean/std Euler angles per joint (degrees) while a style is assembled. Values are
    given for the left side ("left-frame"); :meth:`both` writes the right side mirrored."""

    def __init__(self):
        self.mean = np.zeros((NUM_JOINTS, 3))
        self.std = np.full((NUM_JOINTS, 3), 4.0)
        self.tilt = (0.0, 4.0)  # forward lean of the pelvis (mean, std), degrees

    def set(self, name: str, mean, std) -> None:
        j = JOINT_INDEX[name]
        sign = _MIRROR if name.startswith("right_") else 1.0
        self.mean[j] = np.asarray(mean, float) * sign
        self.std[j] = std

    def both(self, base: str, mean, std) -> None:
        self.set(f"left_{base}", mean, std)
        self.set(f"right_{base}", mean, std)


def _arms_down(s: _Spec) -> None:
    s.both("shoulder", (0, -5, -75), (10, 10, 8))
    s.both("elbow", (0, -15, 0), (10, 10, 3))


def _standing(s: _Spec, rng: np.random.Generator) -> None:
    _arms_down(s)
    s.both("hip", (-3, 0, 5), (4, 6, 3))
    s.both("knee", (5, 0, 0), (4, 2, 1))


def _walking(s: _Spec, rng: np.random.Generator) -> None:
    phase = rng.uniform(-1, 1)  # > 0: left leg forward, right arm forward
    s.set("left_hip", (-5 - 25 * phase, 0, 4), (5, 5, 3))
    s.set("right_hip", (-5 + 25 * phase, 0, 4), (5, 5, 3))
    s.set("left_knee", (10 + 35 * max(-phase, 0), 0, 0), (6, 2, 1))
    s.set("right_knee", (10 + 35 * max(phase, 0), 0, 0), (6, 2, 1))
    s.set("left_shoulder", (0, 20 * phase, -75), (8, 8, 6))
    s.set("right_shoulder", (0, -20 * phase, -75), (8, 8, 6))
    s.both("elbow", (0, -25, 0), (8, 10, 3))
    s.tilt = (4.0, 3.0)


def _sitting(s: _Spec, rng: np.random.Generator) -> None:
    s.both("hip", (-90, 0, 8), (10, 8, 5))
    s.both("knee", (90, 0, 0), (12, 3, 2))
    s.both("ankle", (-5, 0, 0), (10, 4, 4))
    s.both("shoulder", (0, -30, -70), (10, 15, 10))
    s.both("elbow", (0, -60, 0), (10, 20, 3))
    s.tilt = (5.0, 6.0)


def _reaching(s: _Spec, rng: np.random.Generator) -> None:
    _standing(s, rng)
    sides = [("left",), ("right",), ("left", "right")][rng.integers(3)]
    for side in sides:
        s.set(f"{side}_shoulder", (0, -85, -10), (15, 20, 25))
        s.set(f"{side}_elbow", (0, -15, 0), (10, 12, 3))
    for spine in ("spine1", "spine2", "spine3"):
        s.set(spine, (10, 0, 0), (6, 6, 4))
    s.both("hip", (-15, 0, 5), (8, 5, 3))
    s.tilt = (10.0, 6.0)


def _crouching(s: _Spec, rng: np.random.Generator) -> None:
    s.both("hip", (-115, 0, 20), (10, 8, 8))
    s.both("knee", (125, 0, 0), (10, 3, 2))
    s.both("ankle", (-20, 0, 0), (8, 4, 4))
    for spine in ("spine1", "spine2", "spine3"):
        s.set(spine, (12, 0, 0), (6, 5, 4))
    s.both("shoulder", (0, -50, -60), (12, 20, 15))
    s.both("elbow", (0, -50, 0), (10, 25, 3))
    s.tilt = (25.0, 8.0)


def _arms_raised(s: _Spec, rng: np.random.Generator) -> None:
    s.both("hip", (-3, 0, 5), (4, 6, 3))
    s.both("knee", (5, 0, 0), (4, 2, 1))
    s.both("shoulder", (0, -10, 75), (12, 15, 15))
    s.both("elbow", (0, -20, 0), (10, 20, 3))
    s.set("spine3", (-5, 0, 0), (5, 4, 3))


_STYLE_FUNCS = {"standing": _standing, "walking": _walking, "sitting": _sitting,
                "reaching": _reaching, "crouching": _crouching, "arms_raised": _arms_raised}


def _mixture(rng: np.random.Generator, settings: SamplerSettings) -> _Spec:
    mix = _Spec()
    names = list(_STYLE_FUNCS)
    for chain, joints in CHAINS.items():
        part = _Spec()
        _STYLE_FUNCS[names[rng.integers(len(names))]](part, rng)
        idx = list(joints)
        mix.mean[idx], mix.std[idx] = part.mean[idx], 1.5 * part.std[idx]
        if chain == "root":
            mix.tilt = part.tilt
        if chain.endswith("arm") and rng.random() < settings.uniform_arm_prob:
            lo, hi = JOINT_RANGES[idx, :, 0], JOINT_RANGES[idx, :, 1]
            mix.mean[idx], mix.std[idx] = rng.uniform(lo, hi), 0.0
    return mix


def _sample_euler(rng: np.random.Generator, settings: SamplerSettings,
                  style: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Joint Euler angles (24, 3), world angles (heading, lean, side), style; degrees."""
    if style is None:
        style = STYLES[rng.choice(len(STYLES), p=np.asarray(settings.style_probs))]
    if style == "mixture":
        spec = _mixture(rng, settings)
    else:
        spec = _Spec()
        _STYLE_FUNCS[style](spec, rng)
    euler = spec.mean + spec.std * rng.standard_normal((NUM_JOINTS, 3))
    euler += settings.jitter_deg * rng.standard_normal((NUM_JOINTS, 3))
    euler[1:] = np.clip(euler[1:], JOINT_RANGES[1:, :, 0], JOINT_RANGES[1:, :, 1])
    euler[0] = 0.0
    heading = rng.uniform(-settings.heading_deg, settings.heading_deg)
    lean = spec.tilt[0] + spec.tilt[1] * rng.standard_normal()
    side = 4.0 * rng.standard_normal()
    return euler, np.array([heading, lean, side]), style


def _to_axis_angle(euler: np.ndarray, world: np.ndarray) -> np.ndarray:
    """(n, 24, 3) joint Euler and (n, 3) world angles -> (n, 24, 3) axis-angle."""
    n = len(euler)
    pose = Rotation.from_euler("XYZ", euler.reshape(-1, 3), degrees=True).as_rotvec()
    pose = pose.reshape(n, NUM_JOINTS, 3)
    pose[:, 0] = Rotation.from_euler("YXZ", world, degrees=True).as_rotvec()
    return pose


def sample_pose(rng: np.random.Generator, settings: SamplerSettings = SamplerSettings(),
                style: str | None = None) -> tuple[np.ndarray, str]:
    """One pose: ``(24, 3)`` axis-angle in SMPL order, global orientation in the world frame
    (heading about +y, style lean about +x), and the style it came from."""
    euler, world, style = _sample_euler(rng, settings, style)
    return _to_axis_angle(euler[None], world[None])[0], style


def sample_betas(rng: np.random.Generator, settings: SamplerSettings = SamplerSettings(),
                 num_betas: int = 10) -> np.ndarray:
    """Shape coefficients ~ N(0, beta_std^2), clipped to +-beta_clip."""
    betas = settings.beta_std * rng.standard_normal(num_betas)
    return np.clip(betas, -settings.beta_clip, settings.beta_clip)


def sample_poses(n: int, seed: int, settings: SamplerSettings = SamplerSettings()
                 ) -> tuple[np.ndarray, list[str]]:
    """A pose corpus (the MoSh stand-in for the VAE prior): ``(n, 72)`` float32 and styles.
    Pose ``i`` depends only on ``(seed, i)``."""
    draws = [_sample_euler(np.random.default_rng([seed, 7, i]), settings, None)
             for i in range(n)]
    if not draws:
        return np.zeros((0, NUM_JOINTS * 3), np.float32), []
    poses = _to_axis_angle(np.stack([d[0] for d in draws]), np.stack([d[1] for d in draws]))
    return poses.reshape(n, -1).astype(np.float32), [d[2] for d in draws]


@functools.lru_cache(maxsize=4)
def _mean_params(num: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import torch

    from ..body import BodyModel
    from .views import FRONTAL_VIEW, place_views

    settings = SamplerSettings()
    poses, _ = sample_poses(num, seed, settings)
    model = BodyModel()
    poses_t = torch.as_tensor(poses, dtype=torch.float32)
    with torch.no_grad():
        world = model.forward_pose(poses_t, torch.zeros(num, model.num_betas))
    rot = Rotation.from_rotvec(poses.reshape(num, NUM_JOINTS, 3)[:, 1:].reshape(-1, 3))
    mats = rot.as_matrix().reshape(num, NUM_JOINTS - 1, 3, 3)
    body = np.stack([Rotation.from_matrix(mats[:, k]).mean().as_rotvec()
                     for k in range(NUM_JOINTS - 1)])
    orients, cams = [], []
    for i in range(num):
        views = place_views(world.vertices[i].numpy().astype(np.float64),
                            world.joints[i].numpy().astype(np.float64), poses[i, :3])
        orients.append(Rotation.from_rotvec(views[FRONTAL_VIEW].global_orient).as_matrix())
        for v in views:  # weak-perspective camera that best explains the keypoints
            body_frame = v.joints - v.transl
            cams.append(fit_weak_perspective(body_frame, v.keypoints()))
    glob = Rotation.from_matrix(np.stack(orients)).mean().as_rotvec()
    pose = np.concatenate([glob, body.reshape(-1)]).astype(np.float32)
    return pose, np.zeros(10, np.float32), np.mean(cams, 0).astype(np.float32)


def fit_weak_perspective(joints: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Least-squares ``(s, tx, ty)`` with ``keypoints ~ s * joints[:, :2] + (tx, ty)``."""
    xy = joints[:, :2].reshape(-1)
    n = len(joints)
    a = np.zeros((2 * n, 3))
    a[:, 0] = xy
    a[0::2, 1] = 1.0
    a[1::2, 2] = 1.0
    sol, *_ = np.linalg.lstsq(a, keypoints[:, :2].reshape(-1), rcond=None)
    return sol


def mean_params(num: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic mean of the sampler's distribution in the camera frame, where the
    regressors start (the Θ^0, β^0 of Sec. 3.2): ``pose (72,)`` = chordal rotation mean
    (scipy's ``Rotation.mean``) of the frontal view's global orientation (≈ (π, 0, 0)) and
    of each joint over the corpus, ``betas (10,)`` = zeros, ``cam (3,)`` = mean weak-perspective ``(s, tx, ty)`` of the
    crops over all four views. Computed once per process from ``num`` sampled poses."""
    pose, betas, cam = _mean_params(num, seed)
    return {"pose": pose.copy(), "betas": betas.copy(), "cam": cam.copy()}
