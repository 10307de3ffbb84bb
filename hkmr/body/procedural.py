"""A procedurally generated body model in SMPL's file format (stand-in for SMPL, Sec. 3.1).

The licensed SMPL files cannot be shipped, so by default hkmr builds a body of its own and
loads it through the real ``smplx.SMPL`` code path. It is *not* SMPL: same format, same 24
joints, joint names and kinematic tree, but a body made of tapered elliptic tubes, one per bone.

Construction (deterministic, no randomness):

* **Skeleton**: a left/right-symmetric T-pose close to SMPL's neutral rest joints (metres).
* **Mesh**: one closed tube around every bone (parent -> joint), plus end tubes for the
  head, hands and feet; 17 vertices a ring, rings shared out by bone length, two cap poles a
  tube; exactly 6890 vertices like SMPL.
* **Skinning**: a tube belongs to its bone's parent joint; within a quarter of the bone from
  either end the weights blend 50/50 into the neighbouring joint, so elbows and knees bend
  smoothly. The last ring of a bone lies in the plane through the joint.
* **J_regressor**: joint j is the mean of the 17 vertices of that ring (the pelvis: the first
  ring of the pelvis->spine1 tube). All vertices of a ring share their skinning weights and
  blend only joint j and its parent, whose transforms agree at joint j, and posedirs are zero;
  so ``J_regressor @ posed vertices`` equals smplx's kinematic joints for every pose and shape.
* **Shape directions** (``shapedirs[..., k]``, per unit of ``betas[k]``) — see
  :data:`SHAPE_DIRECTIONS`. Each is a smooth displacement field of the rest mesh, so the
  joints (ring means) move with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..digest import file_digest
from ..io import atomic_path, cache_dir
from .joints import JOINT_INDEX, JOINT_NAMES, PARENTS

VERSION = 1
NUM_VERTICES = 6890
RING = 17  # vertices a ring; 28 tubes * 2 poles + 17 * 402 rings = 6890

#: what each shape coefficient does, per unit of beta (positive direction).
SHAPE_DIRECTIONS: tuple[str, ...] = (
    "stature: the whole body scales about the pelvis, +6 % (height grows)",
    "girth: every body cross-section grows, +15 % radius",
    "leg length: everything below the hips stretches downwards, +6 %",
    "torso length: the trunk between pelvis and neck stretches, +8 %; head and arms rise",
    "arm length: everything beyond the shoulders stretches outwards, +6 %",
    "shoulder width: shoulders, collars and arms move outwards, up to 4 cm",
    "hip width: hips and legs move outwards, up to 3 cm",
    "belly: the front of the abdomen protrudes, up to 5 cm",
    "head size: the head grows about the neck, +15 %",
    "limb thickness: arm and leg cross-sections grow, +20 % radius",
)

#: symmetric T-pose rest joints (x: body left, y: up, z: forward), metres.
_REST_JOINTS = {
    "pelvis": (0.0, -0.22, 0.02), "spine1": (0.0, -0.11, 0.0), "spine2": (0.0, 0.025, 0.01),
    "spine3": (0.0, 0.085, 0.02), "neck": (0.0, 0.29, -0.015), "head": (0.0, 0.36, 0.045),
    "hip": (0.07, -0.31, 0.015), "knee": (0.10, -0.69, 0.01), "ankle": (0.09, -1.09, -0.03),
    "foot": (0.12, -1.155, 0.10), "collar": (0.08, 0.195, -0.005),
    "shoulder": (0.17, 0.224, -0.016), "elbow": (0.43, 0.214, -0.044),
    "wrist": (0.678, 0.221, -0.045), "hand": (0.759, 0.212, -0.062),
}

#: cross-section half-axes (across, through) at the start and end of the bone ending at a
#: joint; "across" is the body's left-right for vertical bones and front-back for arm bones.
_BONE_RADII = {
    "spine1": ((0.16, 0.11), (0.15, 0.10)), "spine2": ((0.15, 0.10), (0.15, 0.10)),
    "spine3": ((0.15, 0.10), (0.16, 0.10)), "neck": ((0.17, 0.10), (0.06, 0.055)),
    "head": ((0.055, 0.055), (0.055, 0.055)), "collar": ((0.06, 0.06), (0.06, 0.06)),
    "shoulder": ((0.055, 0.055), (0.05, 0.05)), "elbow": ((0.05, 0.05), (0.04, 0.04)),
    "wrist": ((0.04, 0.04), (0.03, 0.03)), "hand": ((0.04, 0.018), (0.04, 0.016)),
    "hip": ((0.08, 0.08), (0.08, 0.08)), "knee": ((0.08, 0.08), (0.055, 0.055)),
    "ankle": ((0.055, 0.055), (0.04, 0.04)), "foot": ((0.045, 0.035), (0.045, 0.03)),
}

#: end tubes that close the leaf joints: (offset of the tip, radii at start, radii at end);
#: the head is an ellipsoid round at both ends, hands and feet round off towards the tip.
_END_TUBES = {
    "head": ((0.0, 0.22, -0.01), (0.09, 0.10), (0.09, 0.10)),
    "hand": ((0.09, -0.005, -0.01), (0.04, 0.016), (0.03, 0.01)),
    "foot": ((0.0, -0.01, 0.08), (0.045, 0.03), (0.035, 0.02)),
}


def _base(name: str) -> str:
    return name.removeprefix("left_").removeprefix("right_")


def rest_joints() -> np.ndarray:
    """The (24, 3) rest joints of the procedural skeleton in SMPL order."""
    joints = np.zeros((24, 3))
    for j, name in enumerate(JOINT_NAMES):
        x, y, z = _REST_JOINTS[_base(name)]
        joints[j] = (-x if name.startswith("right_") else x, y, z)
    return joints


def _tubes(joints: np.ndarray) -> list[dict]:
    """One tube per bone (part = the bone's parent joint) and one per leaf end."""
    tubes = []
    for j in range(1, 24):
        p = PARENTS[j]
        start_r, end_r = _BONE_RADII[_base(JOINT_NAMES[j])]
        tubes.append(dict(part=p, blend_start=PARENTS[p], blend_end=j, start=joints[p],
                          end=joints[j], r0=start_r, r1=end_r, ring_of=j,
                          right_side=JOINT_NAMES[j].startswith("right_")))
    for j, name in enumerate(JOINT_NAMES):
        if _base(name) in _END_TUBES:
            offset, r0, r1 = _END_TUBES[_base(name)]
            offset = np.array(offset) * (np.array([-1, 1, 1]) if name.startswith("right_") else 1)
            tubes.append(dict(part=j, blend_start=PARENTS[j], blend_end=-1, start=joints[j],
                              end=joints[j] + offset, r0=r0, r1=r1, ring_of=None,
                              right_side=name.startswith("right_")))
    return tubes


_MIRROR = np.array([-1.0, 1.0, 1.0])


def _frame(axis: np.ndarray, right_side: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cross-section axes (u, w): u is body-left for vertical bones and forward for bones
    that run along x (arms). (u, w, axis) is right-handed on the left side and the centre; a
    right-side frame is the mirror image of its left twin's, so the body is exactly
    left/right symmetric (with the ring angles of :func:`build_procedural_model`)."""
    if right_side:
        u, w = _frame(axis * _MIRROR, right_side=False)
        return u * _MIRROR, w * _MIRROR
    ref = np.array([0.0, 0.0, 1.0]) if abs(axis[0]) > 0.7 else np.array([1.0, 0.0, 0.0])
    u = ref - axis * (ref @ axis)
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


def _ring_counts(lengths: np.ndarray, total: int) -> np.ndarray:
    """Share ``total`` rings among tubes: 4 each, the rest by length (largest remainder)."""
    counts = np.full(len(lengths), 4)
    share = (total - counts.sum()) * lengths / lengths.sum()
    counts += np.floor(share).astype(int)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def build_procedural_model() -> dict[str, np.ndarray]:
    """Build the model as a dict with SMPL's keys (``v_template``, ``shapedirs``,
    ``posedirs``, ``J_regressor``, ``weights``, ``kintree_table``, ``f``)."""
    joints = rest_joints()
    tubes = _tubes(joints)
    lengths = np.array([np.linalg.norm(t["end"] - t["start"]) for t in tubes])
    rings = _ring_counts(lengths, (NUM_VERTICES - 2 * len(tubes)) // RING)
    verts, radial, weights, faces, regressor_rings = [], [], [], [], {}
    # angles closed under φ -> π - φ, so a ring around a bone in the x = 0 plane is mirror
    # symmetric even with an odd number of vertices
    phi = np.pi / 2 + 2 * np.pi * np.arange(RING) / RING
    for tube, n in zip(tubes, rings):
        base = sum(len(v) for v in verts)
        axis = tube["end"] - tube["start"]
        length = np.linalg.norm(axis)
        axis = axis / length
        u, w = _frame(axis, tube["right_side"])
        s = np.linspace(0.0, 1.0, n)
        radii = (1 - s)[:, None] * np.array(tube["r0"]) + s[:, None] * np.array(tube["r1"])
        if tube["ring_of"] is None:  # rounded end: an ellipsoid-like profile
            t = 2 * s - 1 if tube["part"] == JOINT_INDEX["head"] else s
            radii = radii * np.sqrt(np.clip(1 - t**2, 0.1, 1.0))[:, None]
        offsets = (radii[:, 0, None, None] * np.cos(phi)[None, :, None] * u
                   + radii[:, 1, None, None] * np.sin(phi)[None, :, None] * w)  # (n, RING, 3)
        centres = tube["start"] + s[:, None] * (tube["end"] - tube["start"])
        pole_out = 0.5 * radii[[0, -1]].mean(1)
        tube_verts = np.concatenate([(centres[:, None] + offsets).reshape(-1, 3),
                                     [tube["start"] - axis * pole_out[0],
                                      tube["end"] + axis * pole_out[1]]])
        tube_radial = np.concatenate([offsets.reshape(-1, 3),
                                      [-axis * pole_out[0], axis * pole_out[1]]])
        # skinning: blend 50/50 into the neighbouring joint within a quarter bone of each end
        s_all = np.concatenate([np.repeat(s, RING), [0.0, 1.0]])
        w_start = 0.5 * (1 - _smoothstep(s_all / 0.25)) if tube["blend_start"] >= 0 else 0 * s_all
        w_end = 0.5 * _smoothstep((s_all - 0.75) / 0.25) if tube["blend_end"] >= 0 else 0 * s_all
        tube_w = np.zeros((len(s_all), 24))
        tube_w[:, tube["part"]] = 1 - w_start - w_end
        if tube["blend_start"] >= 0:
            tube_w[:, tube["blend_start"]] += w_start
        if tube["blend_end"] >= 0:
            tube_w[:, tube["blend_end"]] += w_end
        # faces: quads between rings, fans at the poles (outward normals)
        idx = base + np.arange(n * RING).reshape(n, RING)
        nxt = np.roll(idx, -1, axis=1)
        quads_a = np.stack([idx[:-1], nxt[:-1], idx[1:]], -1).reshape(-1, 3)
        quads_b = np.stack([nxt[:-1], nxt[1:], idx[1:]], -1).reshape(-1, 3)
        start_pole, end_pole = base + n * RING, base + n * RING + 1
        cap_start = np.stack([np.full(RING, start_pole), nxt[0], idx[0]], -1)
        cap_end = np.stack([np.full(RING, end_pole), idx[-1], nxt[-1]], -1)
        tube_faces = np.concatenate([quads_a, quads_b, cap_start, cap_end])
        faces.append(tube_faces[:, ::-1] if tube["right_side"] else tube_faces)  # mirrored
        verts.append(tube_verts)
        radial.append(tube_radial)
        weights.append(tube_w)
        if tube["ring_of"] is not None:
            regressor_rings[tube["ring_of"]] = idx[-1]
        if tube["part"] == 0 and tube["blend_end"] == JOINT_INDEX["spine1"]:
            regressor_rings[0] = idx[0]
    v = np.concatenate(verts)
    assert v.shape[0] == NUM_VERTICES, v.shape
    regressor = np.zeros((24, NUM_VERTICES))
    for j, ring in regressor_rings.items():
        regressor[j, ring] = 1.0 / RING
    weights = np.concatenate(weights)
    shapedirs = _shape_directions(v, np.concatenate(radial), weights.argmax(1), joints)
    kintree = np.array([[2**32 - 1] + list(PARENTS[1:]), list(range(24))], dtype=np.int64)
    return {
        "v_template": v, "shapedirs": shapedirs, "posedirs": np.zeros((NUM_VERTICES, 3, 207)),
        "J_regressor": regressor, "weights": weights, "kintree_table": kintree,
        "f": np.concatenate(faces).astype(np.int64),
    }


def _shape_directions(v: np.ndarray, radial: np.ndarray, part: np.ndarray,
                      joints: np.ndarray) -> np.ndarray:
    """The 10 displacement fields of :data:`SHAPE_DIRECTIONS`, shape (V, 3, 10)."""
    J = {name: joints[JOINT_INDEX[name]] for name in JOINT_NAMES}
    x, y = v[:, 0], v[:, 1]
    sign = np.sign(x)
    limb_parts = [JOINT_INDEX[n] for n in JOINT_NAMES
                  if _base(n) in ("collar", "shoulder", "elbow", "wrist", "hand",
                                  "hip", "knee", "ankle", "foot")]
    dirs = np.zeros((len(v), 3, 10))
    dirs[:, :, 0] = 0.06 * (v - J["pelvis"])
    dirs[:, :, 1] = 0.15 * radial
    dirs[:, 1, 2] = -0.06 * np.maximum(J["left_hip"][1] - y, 0.0)
    dirs[:, 1, 3] = 0.08 * np.clip(y - J["pelvis"][1], 0.0, J["neck"][1] - J["pelvis"][1])
    dirs[:, 0, 4] = 0.06 * sign * np.maximum(np.abs(x) - J["left_shoulder"][0], 0.0)
    upper = _smoothstep((y - J["spine2"][1]) / (J["spine3"][1] - J["spine2"][1]))
    dirs[:, 0, 5] = 0.04 * sign * _smoothstep(np.abs(x) / J["left_shoulder"][0]) * upper
    lower = 1 - _smoothstep((y - J["pelvis"][1]) / (J["spine2"][1] - J["pelvis"][1]))
    dirs[:, 0, 6] = 0.03 * sign * np.minimum(np.abs(x) / J["left_hip"][0], 1.0) * lower
    belly = np.exp(-(((y - J["spine1"][1]) / 0.12) ** 2)) * (np.abs(x) < 0.2)
    dirs[:, 2, 7] = 0.5 * np.maximum(radial[:, 2], 0.0) * belly
    head = _smoothstep((y - J["neck"][1]) / (J["head"][1] - J["neck"][1])) * (np.abs(x) < 0.2)
    dirs[:, :, 8] = 0.15 * (v - J["neck"]) * head[:, None]
    dirs[:, :, 9] = 0.2 * radial * np.isin(part, limb_parts)[:, None]
    return dirs


def procedural_model_path(cache: Path | None = None) -> Path:
    """Path of the cached procedural model (an SMPL-keyed ``.npz``), built on first use.

    The name carries a hash of this module's source, so a changed generator never reads a
    stale cache."""
    source = file_digest(__file__, length=10)
    path = (cache or cache_dir()) / f"procedural_smpl_v{VERSION}_{source}.npz"
    if not path.exists():
        with atomic_path(path) as tmp:
            np.savez(tmp, **build_procedural_model())
    return path


