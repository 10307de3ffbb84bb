"""SPIN's preprocessed ``.npz`` annotation files (the real data of paper Sec. 4: Human3.6M,
MPI-INF-3DHP, LSP, MPII, COCO, as SPIN distributes them).

Keys: ``imgname`` (N,) paths relative to an image root, ``center`` (N, 2) and ``scale`` (N,)
(the crop is the square of side ``200 * scale`` px about ``center``; SPIN's scale already holds
its 1.2x margin), and optionally ``part`` (N, 24, 3) 2D joints in pixels with visibility,
``S`` (N, 24, 4) 3D joints in metres with confidence, ``pose`` (N, 72), ``shape`` (N, 10),
``has_smpl`` (N,), ``maskname``/``partname`` (N,) (LSP's masks, Table 5). Extra keys are
ignored. Our one addition, not in SPIN's files: ``part_visible`` (N, 24), 1 where a J24 joint
of ``part`` is annotated visible (MPII's ``is_visible``), for Table 4's invisible joints. Joints are in SPIN's J24 order (:data:`J24_NAMES`)
and are mapped to SMPL's 24 joints by :data:`SMPL_FROM_J24`; SMPL joints with no counterpart
get confidence 0.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..body.joints import JOINT_INDEX, LSP14, NUM_JOINTS

J24_NAMES: tuple[str, ...] = (
    "R ankle", "R knee", "R hip", "L hip", "L knee", "L ankle", "R wrist", "R elbow",
    "R shoulder", "L shoulder", "L elbow", "L wrist", "neck (LSP)", "head top (LSP)",
    "pelvis (MPII)", "thorax (MPII)", "spine (H36M)", "jaw (H36M)", "head (H36M)", "nose",
    "L eye", "R eye", "L ear", "R ear",
)

#: SMPL joint -> J24 joints that stand for it, in order of preference (the first with
#: confidence > 0 is used). LSP's 14 follow ``hkmr.body.joints.LSP14``; the SMPL head is
#: nearer H36M's head centre than LSP's head top, which is the fallback; MPII's thorax stands
#: in for the neck when LSP's neck is missing. No counterpart (confidence 0): spine1-3, collars,
#: feet (toes) and hands. J24's spine, jaw, nose, eyes and ears are unused.
SMPL_FROM_J24: dict[int, tuple[int, ...]] = {
    **{smpl: (k,) for k, smpl in enumerate(LSP14[:12])},
    JOINT_INDEX["neck"]: (12, 15),
    JOINT_INDEX["head"]: (18, 13),
    JOINT_INDEX["pelvis"]: (14,),
}

REQUIRED_KEYS = ("imgname", "center", "scale")
#: file names per row: the image, and LSP's UP-3D mask / part annotation (Table 5)
_NAMES = ("imgname", "maskname", "partname")
_SHAPES = {"center": (2,), "scale": (), "part": (24, 3), "S": (24, 4), "pose": (72,),
           "shape": (10,), "has_smpl": (), "part_visible": (24,), "openpose": (25, 3)}


#: SMPL joint <- OpenPose BODY_25 joint (SPIN's ``openpose`` key, (N, 25, 3) in pixels with
#: confidence): neck, shoulders, elbows, wrists, mid-hip, hips, knees, ankles. The face and
#: foot points have no SMPL joint. OpenPose's joints sit elsewhere than the annotated ones
#: (its hips especially), so they get their own loss weight (``loss.w_openpose``).
SMPL_FROM_OPENPOSE: dict[int, int] = {
    JOINT_INDEX[name]: k for k, name in (
        (1, "neck"), (2, "right_shoulder"), (3, "right_elbow"), (4, "right_wrist"),
        (5, "left_shoulder"), (6, "left_elbow"), (7, "left_wrist"), (8, "pelvis"),
        (9, "right_hip"), (10, "right_knee"), (11, "right_ankle"), (12, "left_hip"),
        (13, "left_knee"), (14, "left_ankle"))}


def openpose_to_smpl(op25: np.ndarray) -> np.ndarray:
    """(25, 3) OpenPose BODY_25 keypoints -> (24, 3) in SMPL order, confidence 0 elsewhere."""
    out = np.zeros((NUM_JOINTS, 3), np.float64)
    for smpl, k in SMPL_FROM_OPENPOSE.items():
        out[smpl] = op25[k]
    return out


def j24_to_smpl(j24: np.ndarray) -> np.ndarray:
    """(24, C) joints in J24 order (last column = confidence) -> (24, C) in SMPL order."""
    out = np.zeros((NUM_JOINTS, j24.shape[1]), np.float64)
    for smpl, candidates in SMPL_FROM_J24.items():
        for k in candidates:
            if j24[k, -1] > 0:
                out[smpl] = j24[k]
                break
    return out


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate a SPIN ``.npz``; errors name the file and the offending key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such SPIN .npz file")
    data, key = {}, None
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                if key in _SHAPES or key in _NAMES:
                    data[key] = npz[key]
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    except ValueError as err:  # object arrays need pickle; refuse rather than execute code
        raise ValueError(f"{path}: key {key!r} holds an object array ({err}); re-save it as a "
                         "plain (e.g. string or float) array") from None
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: missing required key(s) {', '.join(map(repr, missing))} "
                         f"(found {sorted(data)})")
    n = len(data["imgname"])
    for key, shape in _SHAPES.items():
        if key in data and data[key].shape != (n, *shape):
            raise ValueError(f"{path}: key {key!r} has shape {data[key].shape}, expected "
                             f"{(n, *shape)}")
    for key in _NAMES:
        if key in data:
            if data[key].shape != (n,):
                raise ValueError(f"{path}: key {key!r} has shape {data[key].shape}, expected "
                                 f"({n},)")
            data[key] = data[key].astype(str)
    return data


def crop_matrix(center: np.ndarray, scale: float, size: int, linear: np.ndarray) -> np.ndarray:
    """2x3 ``cv2.warpAffine`` matrix from original-image pixel indices to crop pixel indices:
    the ``200 * scale`` square about ``center`` maps onto the S x S crop, then ``linear``
    (augmentation, about the crop centre). Crop coordinates of an original point p are
    ``x = linear @ (p - center) / (100 * scale)``, the same map applied to keypoints."""
    b = size / (200.0 * scale) * linear
    c = size / 2 - 0.5
    return np.hstack([b, (np.array([c, c]) - b @ np.asarray(center, float))[:, None]])


#: Human3.6M camera serials (in SPIN's image names) -> camera index; 60457274 is camera 3.
H36M_CAMERAS = {"54138969": 0, "55011271": 1, "58860488": 2, "60457274": 3}


def view_from_name(name: str) -> int:
    """Camera index of a Human3.6M image name, -1 when the name carries none."""
    for serial, view in H36M_CAMERAS.items():
        if serial in name:
            return view
    return -1


def load_mean_params(path: str | Path) -> dict[str, np.ndarray]:
    """SPIN's ``smpl_mean_params.npz`` (keys ``pose`` (144,): 24 rotations in the 6D form of
    Zhou et al. 2019 as SPIN stores them, each the first two columns of the rotation matrix
    read row-major as (3, 2); ``shape`` (10,); ``cam`` (3,)) -> the regressors' start as
    ``pose`` (72,) axis-angle, ``betas`` (10,), ``cam`` (3,)."""
    from scipy.spatial.transform import Rotation

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such smpl_mean_params.npz (SPIN's data bundle)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            values = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: not a readable plain .npz ({err})") from None
    for key, shape in (("pose", (144,)), ("shape", (10,)), ("cam", (3,))):
        got = values[key].reshape(-1).shape if key in values else None
        if got != shape:
            raise ValueError(f"{path}: key {key!r} has shape {got}, expected {shape}")
    cols = values["pose"].astype(np.float64).reshape(24, 3, 2)
    b1 = cols[..., 0] / np.linalg.norm(cols[..., 0], axis=-1, keepdims=True)
    a2 = cols[..., 1] - (b1 * cols[..., 1]).sum(-1, keepdims=True) * b1
    b2 = a2 / np.linalg.norm(a2, axis=-1, keepdims=True)
    rot = np.stack([b1, b2, np.cross(b1, b2)], axis=-1)  # columns b1, b2, b3
    return {"pose": Rotation.from_matrix(rot).as_rotvec().reshape(72),
            "betas": values["shape"].reshape(10).astype(np.float64),
            "cam": values["cam"].reshape(3).astype(np.float64)}
