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
    ``eye`` looking at ``target`` with the world's +y up."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


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


def fit_focal(vertices: np.ndarray) -> float:
    """Normalised focal that makes the crop 1.2x the body's extent about the optical axis
    (with the box centred, that is 1.2x the box's longer side)."""
    extent = np.abs(vertices[:, :2] / vertices[:, 2:]).max()
    return float(1.0 / (CROP_MARGIN * extent))


def place_views(vertices: np.ndarray, joints: np.ndarray, world_orient: np.ndarray,
                cameras: tuple[CameraSpec, ...] = CAMERAS) -> list[ViewGeometry]:
    """The four views of a body posed in the world orientation ``world_orient`` (the SMPL
    output ``vertices (V, 3)``, ``joints (24, 3)`` with its root at the rest root)."""
    root = joints[0]
    floor = np.array([-root[0], -vertices[:, 1].min(), -root[2]])  # feet on y = 0
    lo, hi = vertices.min(0) + floor, vertices.max(0) + floor
    target = 0.5 * (lo + hi)
    r_world = Rotation.from_rotvec(world_orient).as_matrix()
    out = []
    for cam in cameras:
        az = np.deg2rad(cam.azimuth_deg)
        eye = np.array([target[0] + cam.distance_m * np.sin(az), cam.height_m,
                        target[2] + cam.distance_m * np.cos(az)])
        rot = look_at(eye, target)
        for _ in range(_CENTRE_ITERATIONS):  # aim at the centre of the 2D bounding box
            p = (vertices + floor - eye) @ rot.T
            p = p[:, :2] / p[:, 2:]
            centre = 0.5 * (p.min(0) + p.max(0))
            rot = look_at(eye, eye + rot.T @ np.array([centre[0], centre[1], 1.0]))
        v_cam = (vertices + floor - eye) @ rot.T
        j_cam = (joints + floor - eye) @ rot.T
        orient = Rotation.from_matrix(rot @ r_world).as_rotvec()
        out.append(ViewGeometry(view=cam.view, rotation=rot, global_orient=orient,
                                transl=j_cam[0] - root, focal=fit_focal(v_cam),
                                vertices=v_cam, joints=j_cam))
    return out
