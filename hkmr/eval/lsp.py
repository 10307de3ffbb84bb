"""Table 5 (left) on SPIN-format LSP files, as SPIN's ``eval.py`` runs it on the LSP test set:
render the predicted mesh's mask and parts in the crop, take them back to the original image
with the crop's ``center``/``scale`` ("uncrop"), and compare with the UP-3D annotations named by
``maskname`` (foreground/background) and ``partname`` (6 parts + background; 255 = ignore),
counts accumulated over the whole set (:mod:`hkmr.eval.segmentation`).

Unverified against the real files: the label order of UP-3D's part images. We read label k
as the k-th of :data:`hkmr.eval.segmentation.PART_GROUPS` (head, torso, left arm, right arm,
left leg, right leg); ``part_order`` maps another order onto ours.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Subset

from ..data.datasets import SpinDataset
from ..data.render import PartRenderer
from ..data.spin import crop_matrix
from .predict import predict, predicted_vertices
from .segmentation import TASKS, confusion, relabel, scores

IGNORE = 255


def read_label_image(path: Path, what: str) -> np.ndarray:
    """A label PNG as (H, W) uint8 (a colour image: its first channel)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} missing")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: cannot decode {what}")
    return img if img.ndim == 2 else img[..., 0]


def uncrop(labels: np.ndarray, center, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """A (S, S) crop label map back to the original (H, W) image, 0 outside the crop."""
    warp = crop_matrix(center, scale, labels.shape[0], np.eye(2))
    return cv2.warpAffine(labels, warp, (shape[1], shape[0]), flags=cv2.INTER_NEAREST |
                          cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@torch.no_grad()
def evaluate_lsp_segmentation(model, body, npz: str | Path, img_root: str | Path,
                              device: torch.device, *, size: int, mask_root=None,
                              batch_size: int = 32, limit: int = 0,
                              part_order: tuple[int, ...] = tuple(range(1, 7))
                              ) -> dict[str, float]:
    """``lsp_seg_{fb,part}_{acc,f1}`` (accuracy in %, F1 0..1) and ``lsp_seg_images``.
    ``mask_root``: folder of ``maskname``/``partname`` (default ``img_root``); ``part_order``:
    our part index (1..6) of each annotated label 1..6."""
    ds = SpinDataset(npz, img_root, size=size)
    for key in ("maskname", "partname"):
        if key not in ds.data:
            raise ValueError(f"{npz}: key {key!r} missing (Table 5 needs the LSP masks)")
    mask_root = Path(mask_root or img_root)
    to_ours = np.zeros(256, np.uint8)
    to_ours[IGNORE] = IGNORE
    to_ours[1:7] = part_order
    renderer = PartRenderer(body.faces.cpu(), body.smpl.lbs_weights.cpu(), size)
    conf = {task: torch.zeros(TASKS[task], TASKS[task], dtype=torch.long)
            for task in ("fb", "part")}
    rows = range(min(limit, len(ds)) if limit else len(ds))
    for batch, out in predict(model, Subset(ds, list(rows)), device, batch_size, size=size):
        parts = renderer(predicted_vertices(out, body).float(), out.cam.float())
        for crop, r in zip(parts, batch["image_id"].tolist()):
            d = ds.data
            mask = read_label_image(mask_root / d["maskname"][r], f"maskname[{r}] of {npz}")
            gt = to_ours[read_label_image(mask_root / d["partname"][r],
                                          f"partname[{r}] of {npz}")]
            pred = relabel(torch.from_numpy(uncrop(crop, d["center"][r], float(d["scale"][r]),
                                                   mask.shape)), "part").numpy()
            conf["fb"] += confusion(torch.from_numpy((pred > 0).astype(np.int64)),
                                    torch.from_numpy((mask > 0).astype(np.int64)), 2)
            keep = gt != IGNORE
            conf["part"] += confusion(torch.from_numpy(pred[keep]),
                                      torch.from_numpy(gt[keep]), TASKS["part"])
    result = {}
    for task, c in conf.items():
        acc, f1 = scores(c)
        result[f"lsp_seg_{task}_acc"], result[f"lsp_seg_{task}_f1"] = 100 * acc, f1
    result["lsp_seg_images"] = float(len(rows))
    return result
