"""``hkmr demo``: one image in, the recovered mesh out (an ``.obj`` and an overlay PNG).

The image is centre-cropped to a square and resized to the model's input side (the crop the
model was trained on: a person filling ~1/1.2 of a square crop, as SPIN crops). The overlay
draws the predicted mesh with the model's own weak-perspective camera (Sec. 3.2, camera
estimation) — so it shows what the 2D loss of Eq. 3 sees — plus the projected joints, and a
side view of the mesh that shows what a single view hides (depth).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .options import add_device, add_out

if TYPE_CHECKING:
    import torch

# OpenCV, torch and the model, data and rendering modules are imported by the functions that
# use them: ``hkmr --help`` builds this module's parser and must not import torch

MESH_BGR = np.array([235, 190, 120], np.float32)  # light blue
SIDE_BG = 40


def load_image(path: str | Path, size: int) -> np.ndarray:
    """An image file -> uint8 RGB (size, size, 3): the largest centred square, resized."""
    import cv2

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot decode image (not an image format OpenCV reads)")
    h, w = img.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    img = img[y0:y0 + side, x0:x0 + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.cvtColor(cv2.resize(img, (size, size), interpolation=interp), cv2.COLOR_BGR2RGB)


def denormalize(img: torch.Tensor) -> np.ndarray:
    """A dataset item's normalised (3, S, S) tensor -> uint8 RGB (S, S, 3)."""
    from .data.datasets import IMAGENET_MEAN, IMAGENET_STD

    x = img.numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def predict_image(model, body, image: np.ndarray, device) -> dict[str, np.ndarray]:
    """Run the model on one uint8 RGB crop: vertices (V, 3) and joints (24, 3) in the
    camera-oriented body frame (x right, y down, z forward), cam (s, tx, ty), pose, betas."""
    import torch

    from .data.datasets import normalize_image
    from .model.estimator import pose_body

    model.eval()
    with torch.no_grad():
        out = model(normalize_image(image)[None].to(device))[-1]
        posed = pose_body(body, out)
    return {"vertices": posed.vertices[0].float().cpu().numpy(),
            "joints": posed.joints[0].float().cpu().numpy(),
            "cam": out.cam[0].float().cpu().numpy(),
            "pose": out.pose[0].float().cpu().numpy(), "betas": out.betas[0].float().cpu().numpy()}


def shade_mesh(vertices: np.ndarray, faces: np.ndarray, cam: np.ndarray, size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(BGR float image, coverage mask) of the mesh under a weak-perspective camera, Lambert
    shaded with smooth normals and a light at the viewer."""
    from .data.render import rasterize, vertex_normals, weak_perspective

    pix = weak_perspective(vertices, cam, size)
    raster = rasterize(pix, vertices[:, 2], faces, size)
    mask = raster.face >= 0
    normals = vertex_normals(vertices, faces)
    n = (raster.bary[mask][:, :, None] * normals[faces[raster.face[mask]]]).sum(1)
    light = np.abs(n[:, 2]) / (np.linalg.norm(n, axis=1) + 1e-9)
    img = np.zeros((size, size, 3), np.float32)
    img[mask] = MESH_BGR * (0.3 + 0.7 * light)[:, None]
    return img, mask


def _draw_joints(img: np.ndarray, points: np.ndarray, colour, radius: int) -> None:
    import cv2

    from .body.joints import PARENTS

    pts = [tuple(int(round(c)) for c in p) for p in points]
    for j, parent in enumerate(PARENTS):
        if parent >= 0:
            cv2.line(img, pts[j], pts[parent], colour, max(1, radius // 2), cv2.LINE_AA)
    for p in pts:
        cv2.circle(img, p, radius, colour, -1, cv2.LINE_AA)


def _label(img: np.ndarray, text: str) -> None:
    import cv2

    scale = img.shape[0] / 400
    cv2.putText(img, text, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)


def overlay(image: np.ndarray, pred: dict, faces: np.ndarray, display: int = 384,
            gt_keypoints: np.ndarray | None = None) -> np.ndarray:
    """A BGR panel: the input, the mesh and joints over it, and a side view of the mesh."""
    import cv2

    from .data.render import weak_perspective

    base = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (display, display),
                      interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mesh, mask = shade_mesh(pred["vertices"], faces, pred["cam"], display)
    over = base.copy()
    over[mask] = 0.25 * base[mask] + 0.75 * mesh[mask]
    over = over.astype(np.uint8)
    radius = max(2, display // 128)
    if gt_keypoints is not None:
        _draw_joints(over, (gt_keypoints[:, :2] + 1) * display / 2, (60, 220, 60), radius)
    joints2d = weak_perspective(pred["joints"], pred["cam"], display)
    _draw_joints(over, joints2d, (40, 40, 255), radius)
    # side view: turn the mesh 90 degrees about the image's vertical axis around its centre
    v = pred["vertices"] - pred["vertices"].mean(0)
    side_v = v @ np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], np.float64).T
    side_img, side_mask = shade_mesh(side_v, faces, np.array([pred["cam"][0], 0.0, 0.0]),
                                     display)
    side = np.full((display, display, 3), SIDE_BG, np.float32)
    side[side_mask] = side_img[side_mask]
    panels = [base.astype(np.uint8), over, side.astype(np.uint8)]
    for panel, text in zip(panels, ("input", "mesh + joints (red)" + (
            ", truth (green)" if gt_keypoints is not None else ""), "side view")):
        _label(panel, text)
    return np.concatenate(panels, 1)


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Wavefront OBJ in a y-up frame (the camera frame turned 180 degrees about x), so
    viewers show the person upright."""
    from .io import atomic_path

    v = vertices * np.array([1.0, -1.0, -1.0])
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("# hkmr demo: predicted mesh, metres, y up\n")
            fh.writelines(f"v {x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in v)
            fh.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces)


def write_png(path: Path, bgr: np.ndarray) -> None:
    import cv2

    from .io import atomic_path

    ok, buf = cv2.imencode(".png", bgr)
    if not ok:  # pragma: no cover - opencv cannot fail on a uint8 BGR image
        raise ValueError(f"{path}: cannot encode PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


# -- the command --------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", help="recover the mesh of one image: an .obj and an overlay PNG",
        description="With IMAGE, its largest centred square is resized to the model's input; "
        "without, test image --index of the checkpoint's synthetic dataset is used. Writes "
        "OUT/mesh.obj (y up) and OUT/demo.png (input, mesh and joints over it, side view).")
    demo.add_argument("image", nargs="?", type=Path, help="image file (default: a test render)")
    demo.add_argument("--checkpoint", type=Path, required=True,
                      help="checkpoint.pt or training folder (hkmr train --config smoke makes "
                      "one in a few minutes)")
    add_out(demo, default=Path("demo_output"))
    demo.add_argument("--index", type=int, default=0, help="test image when no IMAGE is given")
    demo.add_argument("--data", type=Path, help="synthetic dataset folder for the test image")
    demo.add_argument("--display", type=int, default=384, help="side of each panel in px")
    add_device(demo)
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> None:
    from .checkpoint import load_estimator
    from .data.datasets import SyntheticDataset
    from .data.synthetic import ensure_synthetic
    from .device import pick_device

    device = pick_device(args.device)
    cfg, model, body = load_estimator(args.checkpoint, device)
    if (cfg.regime or cfg.implied_regime) == "keypoints":
        raise ValueError(f"{args.checkpoint}: a keypoint-regime checkpoint reads 2D keypoints, "
                         "not images, so it cannot be shown over an image; evaluate it with "
                         "hkmr eval --checkpoint " + str(args.checkpoint))
    size = cfg.data.synth_size
    gt = None
    if args.image is not None:
        image, source = load_image(args.image, size), str(args.image)
    else:
        test = SyntheticDataset(args.data or ensure_synthetic(cfg.data), "test", "P1")
        if not 0 <= args.index < len(test):
            raise ValueError(f"--index {args.index} is outside the test split (0..{len(test) - 1})")
        item = test[args.index]
        image, gt = denormalize(item["img"]), item["keypoints"].numpy()
        source = f"test image {args.index} (view {int(item['view'])})"
    pred = predict_image(model, body, image, device)
    faces = body.faces.cpu().numpy()
    args.out.mkdir(parents=True, exist_ok=True)
    write_obj(args.out / "mesh.obj", pred["vertices"], faces)
    write_png(args.out / "demo.png", overlay(image, pred, faces, args.display, gt))
    print(f"{source}: wrote {args.out / 'mesh.obj'} and {args.out / 'demo.png'} "
          f"(cam s={pred['cam'][0]:.3f}, t=({pred['cam'][1]:.3f}, {pred['cam'][2]:.3f}))")
