"""A SPIN-format dataset written from our renderer, shaped like SPIN's real files: original-
image pixel coordinates with ``center``/``scale``, JPEGs in nested folders with Human3.6M
names and camera serials, every key the real files carry (``openpose``, ``gender`` strings,
``maskname``/``partname``), unused extras and our ``part_visible``; plus an H36M-style regressor for the procedural
body. Used by the equivalence and ``hkmr data check`` tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from hkmr.body.joints import JOINT_INDEX as J
from hkmr.data.datasets import SyntheticDataset
from hkmr.data.h36m import H36M17_NAMES, s24_from_h36m17
from hkmr.data.spin import H36M_CAMERAS, SMPL_FROM_J24
from hkmr.eval.segmentation import relabel

SERIAL = {view: serial for serial, view in H36M_CAMERAS.items()}
UPSCALE = 2  # the original holds the crop at twice its resolution (pixel-doubled, so the
#             200 * scale crop resampled back to the crop side reproduces it but for the JPEG)
#: H36M joint -> (SMPL joint, weight) rows of SMPL's joint regressor it mixes. H36M's hips
#: sit away from SMPL's (here a quarter of the way to the pelvis), which is why Table 1 on
#: real data needs the H36M regressor.
_H36M_FROM_SMPL = {
    "pelvis": {"pelvis": 1.0}, "L hip": {"left_hip": 0.75, "pelvis": 0.25},
    "L knee": {"left_knee": 1.0}, "L ankle": {"left_ankle": 1.0},
    "R hip": {"right_hip": 0.75, "pelvis": 0.25}, "R knee": {"right_knee": 1.0},
    "R ankle": {"right_ankle": 1.0}, "spine": {"spine2": 1.0}, "thorax": {"neck": 1.0},
    "neck/nose": {"neck": 0.5, "head": 0.5}, "head": {"head": 1.0},
    "L shoulder": {"left_shoulder": 1.0}, "L elbow": {"left_elbow": 1.0},
    "L wrist": {"left_wrist": 1.0}, "R shoulder": {"right_shoulder": 1.0},
    "R elbow": {"right_elbow": 1.0}, "R wrist": {"right_wrist": 1.0},
}


def h36m_style_regressor(body) -> np.ndarray:
    """(17, V): each H36M joint a convex mix of SMPL joint-regressor rows (vertex weights)."""
    smpl = body.smpl.J_regressor.cpu().numpy()
    return np.stack([sum(w * smpl[J[name]] for name, w in _H36M_FROM_SMPL[h].items())
                     for h in H36M17_NAMES]).astype(np.float32)


def _smpl_to_j24(smpl: np.ndarray) -> np.ndarray:
    """(24, C) SMPL order -> (24, C) J24 order through the loader's map (first candidate)."""
    out = np.zeros_like(smpl)
    for smpl_joint, candidates in SMPL_FROM_J24.items():
        out[candidates[0]] = smpl[smpl_joint]
    return out


def _write_masks(out: Path, r: int, parts: np.ndarray, shape, ox: int, oy: int, side: int):
    """UP-3D-style LSP annotations of row r from the rendered part map: the foreground mask
    and the 6-part labels (our PART_GROUPS order), 255 (ignore) on a 3 px frame."""
    coarse = relabel(torch.from_numpy(parts.astype(np.int64)), "part").numpy().astype(np.uint8)
    big = np.zeros(shape, np.uint8)
    big[oy:oy + side, ox:ox + side] = cv2.resize(coarse, (side, side),
                                                 interpolation=cv2.INTER_NEAREST)
    (out / "masks").mkdir(exist_ok=True)
    assert cv2.imwrite(str(out / f"masks/{r:05d}_segmentation.png"), (big > 0).astype(np.uint8) * 255)
    big[:3], big[-3:], big[:, :3], big[:, -3:] = 255, 255, 255, 255
    assert cv2.imwrite(str(out / f"masks/{r:05d}_part_segmentation.png"), big)


def write_spin_fixture(synth_root: Path, out: Path, body, regressor: np.ndarray | None = None,
                       quality: int = 100) -> Path:
    """Write ``out/h36m_valid.npz`` and ``out/images/S*/...jpg`` from the test split of
    ``synth_root``. Row r is the image with ``image_id`` r (the occluders are keyed by it).
    ``S``: with ``regressor``, the H36M joints of the true mesh as SPIN's preprocessing writes
    them; without, the true SMPL joints (pelvis-centred) in J24 slots."""
    ds = SyntheticDataset(synth_root, "test", "P1")  # its samples carry the part maps
    order = np.argsort([int(ds[i]["image_id"]) for i in range(len(ds))])
    size = ds.sample(0)["img"].shape[0]
    side = UPSCALE * size
    names, centers, parts, s24, poses, shapes, visible = [], [], [], [], [], [], []
    for r, i in enumerate(order):
        s, item = ds.sample(int(i)), ds[int(i)]
        assert int(item["image_id"]) == r, "test split image ids are not 0..N-1"
        subject, frame = 9 + 2 * (r % 2), 5 * r + 1
        name = (f"images/S{subject}/S{subject}_Directions_1.{SERIAL[int(item['view'])]}_"
                f"{frame:06d}.jpg")
        ox, oy = 17 + 13 * (r % 5), 9 + 7 * (r % 3)
        canvas = np.full((oy + side + 40, ox + side + 55, 3), 90, np.uint8)
        canvas[oy:oy + side, ox:ox + side] = cv2.resize(s["img"], (side, side),
                                                        interpolation=cv2.INTER_NEAREST)
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(out / name), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality,  # 4:4:4: our textured
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,  # crops lose ~10 grey levels
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])  # to 4:2:0 chroma

        # the crop is the side x side square at (ox, oy); SPIN's scale holds its 1.2 margin,
        # as our renderer's framing does (the body fills ~1/1.2 of the crop)
        center = np.array([ox + side / 2 - 0.5, oy + side / 2 - 0.5])
        scale = side / 200.0
        kp = s["keypoints"].copy()
        kp[:, :2] = center + 100 * scale * kp[:, :2]
        part = _smpl_to_j24(kp)
        visible.append(_smpl_to_j24(s["visible"][:, None])[:, 0])
        if regressor is None:
            j = s["joints3d"][:, :3] - s["joints3d"][:1, :3]
            S = _smpl_to_j24(np.concatenate([j, np.ones((24, 1))], 1))
        else:
            with torch.no_grad():
                verts = body.forward_pose(torch.as_tensor(s["pose"])[None].float(),
                                          torch.as_tensor(s["betas"])[None].float()).vertices
            S = s24_from_h36m17(regressor @ verts[0].numpy())
        _write_masks(out, r, s["parts"], canvas.shape[:2], ox, oy, side)
        names.append(name), centers.append(center), parts.append(part), s24.append(S)
        poses.append(s["pose"]), shapes.append(s["betas"])
    n = len(names)
    np.savez(out / "h36m_valid.npz", imgname=np.array(names), center=np.array(centers),
             scale=np.full(n, side / 200.0), part=np.array(parts), S=np.array(s24),
             pose=np.array(poses), shape=np.array(shapes), has_smpl=np.ones(n),
             part_visible=np.array(visible), openpose=np.zeros((n, 25, 3)), gender=np.array(["m", "f"] * (n // 2) + ["m"] * (n % 2)),
             maskname=np.array([f"masks/{k:05d}_segmentation.png" for k in range(n)]),
             partname=np.array([f"masks/{k:05d}_part_segmentation.png" for k in range(n)]),
             zoom=np.ones(n), sequence=np.array(["Directions_1"] * n))  # extras, unused
    return out / "h36m_valid.npz"
