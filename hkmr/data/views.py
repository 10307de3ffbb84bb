"""The four-camera capture of the synthetic benchmark and the P1/P2 protocols (paper Sec. 4,
"Datasets": P1 uses all cameras, P2 only the frontal one, camera 3, as in Human3.6M).

World frame: y up, the subject stands on the floor y = 0 above the origin and, at heading 0,
faces +z (towards camera 3). Camera ``k`` stands at azimuth ``azimuth_deg`` (measured about +y
from +z towards +x, the subject's left), ``distance_m`` away horizontally from the centre of
the body's 3D bounding box, at height ``height_m`` above the floor, and looks at that centre.
Camera frames are OpenCV's (x right, y down, z forward), so the camera-frame global
orientation of an upright body facing the camera is ≈ axis-angle (π, 0, 0).

Each view is cropped the way SPIN crops: the camera first looks at the body's 3D box centre,
then turns (without roll) until its optical axis — the crop centre — goes through the centre
of the body's 2D bounding box; the focal length makes the box's longer side 1/1.2 of the crop,
i.e. the crop is 1.2x the body's bounding box. Intrinsics are stored as a
normalised focal length ``f``: a camera-frame point (X, Y, Z) lands at crop coordinates
``f * (X/Z, Y/Z)`` in [-1, 1] (pixels: ``u = S/2 * (1 + f X/Z)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

#: crop side / body bounding-box side, as SPIN's scaleFactor
CROP_MARGIN = 1.2
_CENTRE_ITERATIONS = 3
FRONTAL_VIEW = 3


@dataclass(frozen=True)
class CameraSpec:
    view: int
    name: str
    azimuth_deg: float
    height_m: float
    distance_m: float


#: The four cameras. With the subject's heading uniform in +-45 deg (see
#: :class:`~hkmr.data.sampler.SamplerSettings`) camera 3 always sees the front half of the body.
CAMERAS: tuple[CameraSpec, ...] = (
    CameraSpec(0, "left", 90.0, 1.0, 4.5),
    CameraSpec(1, "back", 180.0, 2.2, 5.0),
    CameraSpec(2, "right", -90.0, 1.4, 4.5),
    CameraSpec(3, "front", 0.0, 1.6, 4.5),
)
NUM_VIEWS = len(CAMERAS)
PROTOCOLS: dict[str, tuple[int, ...]] = {"P1": (0, 1, 2, 3), "P2": (FRONTAL_VIEW,)}


def protocol_views(protocol: str) -> tuple[int, ...]:
    """Views a protocol evaluates on: P1 all four, P2 the frontal camera 3."""
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of "
                         f"{sorted(PROTOCOLS)}") from None


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera rotation (rows: camera x right, y down, z forward) for a camera at
    ``eye`` looking at ``target`` with the world's +y up; ``(..., 3)`` -> ``(..., 3, 3)``."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right = right / np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=-2)


@dataclass
class ViewGeometry:
    """One camera's view of a posed body; all arrays in that camera's frame."""

    view: int
    rotation: np.ndarray  # (3, 3) world -> camera
    global_orient: np.ndarray  # (3,) axis-angle, camera frame
    transl: np.ndarray  # (3,) camera-frame joints = BodyModel joints (cam. orient) + transl
    focal: float  # normalised focal length (crop half-width units)
    vertices: np.ndarray  # (V, 3)
    joints: np.ndarray  # (24, 3)

    def keypoints(self) -> np.ndarray:
        """(24, 2) projected joints in [-1, 1] crop coordinates."""
        return self.focal * self.joints[:, :2] / self.joints[:, 2:]


def fit_focal(vertices: np.ndarray) -> float | np.ndarray:
    """Normalised focal that makes the crop 1.2x the body's extent about the optical axis
    (with the box centred, that is 1.2x the box's longer side); ``(..., V, 3)`` -> ``(...)``."""
    extent = np.abs(vertices[..., :2] / vertices[..., 2:]).max(axis=(-2, -1))
    focal = 1.0 / (CROP_MARGIN * extent)
    return float(focal) if np.ndim(focal) == 0 else focal


def view_geometry(vertices: np.ndarray, joints: np.ndarray, world_orient: np.ndarray,
                  cameras: tuple[CameraSpec, ...] = CAMERAS, keep_vertices: bool = False
                  ) -> dict[str, np.ndarray]:
    """The views of N posed bodies at once: SMPL outputs ``vertices (N, V, 3)``, ``joints
    (N, J, 3)`` (root at the rest root) in world orientations ``world_orient (N, 3)``.

    Returns camera-frame arrays with a views axis C after N: ``rotation (N, C, 3, 3)``,
    ``global_orient (N, C, 3)``, ``transl (N, C, 3)``, ``focal (N, C)``, ``joints (N, C, J,
    3)`` and, with ``keep_vertices``, ``vertices (N, C, V, 3)``. Each camera looks at the
    centre of the body's 3D box, then turns until it looks at the centre of its 2D box (see
    the module docstring)."""
    import torch  # batched products in torch: ~10x numpy's for (N, V, 3) @ (N, 3, 3)

    n = len(vertices)
    root = joints[:, 0]
    floor = np.stack([-root[:, 0], -vertices[:, :, 1].min(1), -root[:, 2]], 1)  # feet on y = 0
    lo, hi = vertices.min(1) + floor, vertices.max(1) + floor
    target = 0.5 * (lo + hi)
    r_world = Rotation.from_rotvec(world_orient).as_matrix()
    placed = torch.from_numpy(vertices + floor[:, None])

    def to_camera(points: torch.Tensor, eye: np.ndarray, rot: np.ndarray) -> torch.Tensor:
        return torch.matmul(points - torch.from_numpy(eye)[:, None],
                            torch.from_numpy(rot).transpose(1, 2))

    out: dict[str, list] = {k: [] for k in ("rotation", "global_orient", "transl", "focal",
                                            "joints", "vertices")}
    for cam in cameras:
        az = np.deg2rad(cam.azimuth_deg)
        eye = np.stack([target[:, 0] + cam.distance_m * np.sin(az),
                        np.full(n, cam.height_m), target[:, 2] + cam.distance_m * np.cos(az)], 1)
        rot = look_at(eye, target)
        for _ in range(_CENTRE_ITERATIONS):  # aim at the centre of the 2D bounding box
            p = to_camera(placed, eye, rot)
            p = p[..., :2] / p[..., 2:]
            centre = (0.5 * (p.amin(1) + p.amax(1))).numpy()
            ray = np.concatenate([centre, np.ones((n, 1))], 1)
            rot = look_at(eye, eye + np.einsum("nji,nj->ni", rot, ray))
        v_cam = to_camera(placed, eye, rot)
        j_cam = to_camera(torch.from_numpy(joints + floor[:, None]), eye, rot).numpy()
        out["rotation"].append(rot)
        out["global_orient"].append(Rotation.from_matrix(rot @ r_world).as_rotvec())
        out["transl"].append(j_cam[:, 0] - root)
        out["focal"].append(1.0 / (CROP_MARGIN * (v_cam[..., :2] / v_cam[..., 2:]).abs()
                                   .amax(dim=(1, 2)).numpy()))
        out["joints"].append(j_cam)
        if keep_vertices:
            out["vertices"].append(v_cam.numpy())
    return {k: np.stack(v, 1) for k, v in out.items() if v}


def place_views(vertices: np.ndarray, joints: np.ndarray, world_orient: np.ndarray,
                cameras: tuple[CameraSpec, ...] = CAMERAS) -> list[ViewGeometry]:
    """The four views of a body posed in the world orientation ``world_orient`` (the SMPL
    output ``vertices (V, 3)``, ``joints (24, 3)`` with its root at the rest root):
    :func:`view_geometry` of one body."""
    g = view_geometry(vertices[None], joints[None], np.asarray(world_orient)[None], cameras,
                      keep_vertices=True)
    return [ViewGeometry(view=cam.view, rotation=g["rotation"][0, c],
                         global_orient=g["global_orient"][0, c], transl=g["transl"][0, c],
                         focal=float(g["focal"][0, c]), vertices=g["vertices"][0, c],
                         joints=g["joints"][0, c]) for c, cam in enumerate(cameras)]
