"""A prepared crop cache of a SPIN-format dataset (``data.crop_cache``): the person's crop of
every row, made once, so training decodes a small JPEG instead of the full frame.

Decoding a full Human3.6M frame (1000 x 1000 JPEG) is most of what a training sample costs the
loader (``benchmarks/bench_loader.py``: ~140 samples/s per core directly, short of the ~190 a
core must give for 16 cores to feed an H100 training ResNet50 under AMP). The cache holds, for
row r, the square of side ``200 * scale * MARGIN`` about ``center`` resampled to
``round(size * MARGIN)`` pixels (bilinear, as the direct path samples), as a JPEG of quality
95. ``MARGIN = 1.25 * sqrt(2)`` covers SPIN's largest zoom-out (scale 1.25) at any rotation,
so every augmented crop lies inside the cached one. A sample then warps the cached crop with
the augmented crop's matrix composed with the inverse of the cache's own
(:meth:`CropCache.warp`): the same geometry, resampled twice and JPEG-coded once, so its
pixels equal the direct path's to a tolerance (measured by the loader benchmark and the tests:
mean absolute difference a few grey levels).

Files: ``ROOT/crops/<settings digest>/{manifest.json, 00000000.jpg, ...}``, one per row of the
``.npz``; built in a temporary folder and renamed, under a folder lock.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..digest import file_digest, json_digest
from ..io import atomic_path, cache_dir, folder_lock
from .spin import crop_matrix, load_npz

MARGIN = 1.25 * math.sqrt(2)
QUALITY = 95
FORMAT_VERSION = 1


def cache_settings(npz_path: str | Path, img_root: str | Path, size: int) -> dict:
    return {"format_version": FORMAT_VERSION, "npz": file_digest(npz_path),
            "images": str(Path(img_root).resolve()), "size": int(size), "margin": MARGIN,
            "quality": QUALITY}


def _square(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


class CropCache:
    """The cached crops of one SPIN ``.npz`` at one crop size (see the module docstring)."""

    def __init__(self, folder: str | Path, size: int):
        self.folder, self.size = Path(folder), int(size)
        self.side = round(self.size * MARGIN)

    def matrix(self, center: np.ndarray, scale: float) -> np.ndarray:
        """Original-image pixels -> cached-crop pixels (2x3)."""
        return crop_matrix(center, scale * MARGIN, self.side, np.eye(2))

    def warp(self, warp: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
        """A 2x3 matrix on the original image as the same map on the cached crop."""
        return (_square(warp) @ np.linalg.inv(_square(self.matrix(center, scale))))[:2]

    def image(self, row: int) -> np.ndarray:
        path = self.folder / f"{row:08d}.jpg"
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"{path}: missing or unreadable cached crop (row {row})")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def ensure_crop_cache(npz_path: str | Path, img_root: str | Path, size: int,
                      root: str | Path | None = None, log=print) -> CropCache:
    """The crop cache of a SPIN ``.npz`` at crop side ``size``, built on first use."""
    settings = cache_settings(npz_path, img_root, size)
    folder = Path(root or cache_dir()) / "crops" / json_digest(settings, length=12)
    with folder_lock(folder.parent / f".{folder.name}"):
        manifest = folder / "manifest.json"
        if not (manifest.exists() and json.loads(manifest.read_text()) == settings):
            _build(folder, Path(npz_path), Path(img_root), size, settings, log)
    return CropCache(folder, size)


def _build(folder: Path, npz_path: Path, img_root: Path, size: int, settings: dict,
           log) -> None:
    from .datasets import SpinDataset

    data = SpinDataset(npz_path, img_root, size=size)
    cache = CropCache(folder, size)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = len(load_npz(npz_path)["imgname"])
    log(f"crop cache: {rows} crops of {cache.side} px from {npz_path} into {folder}")
    for r in range(rows):
        center, scale = data.data["center"][r].astype(np.float64), float(data.data["scale"][r])
        crop = cv2.warpAffine(data._image(r), cache.matrix(center, scale),
                              (cache.side, cache.side), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        cv2.imwrite(str(tmp / f"{r:08d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    with atomic_path(tmp / "manifest.json") as path:
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
