"""Can the SPIN-format loader feed a GPU? Samples per second per core on realistic frames.

Writes, in a temporary folder, ``--images`` JPEGs (quality 90) at each frame size — Human3.6M's
full frames (1000 x 1000) and in-the-wild sizes (640 x 480, 1280 x 720, 1920 x 1080) — with a
SPIN-format ``.npz`` whose person boxes fill about half the frame's height (``scale`` =
0.5 H / 200 x 1.2, centres near the middle), then reads them through
:class:`hkmr.data.datasets.SpinDataset` at 224 px with SPIN's augmentation (flip, rotation,
scale, colour gain) and the default collation into batches of 64, in one process with one
OpenCV and one torch thread: samples/s per core, and the part of it that is the JPEG decode
alone. The target: 16 cores feeding an H100 that trains ResNet50 under AMP at ~3,000
samples/s, i.e. >= 190 samples/s per core.

Side by side, the same through the prepared crop cache (:mod:`hkmr.data.crop_cache`, built
once per dataset; its build rate is printed) and the pixel check: the same samples under the
same augmentation parameters from both paths, the mean and 99th percentile of the absolute
difference in grey levels (0-255).

The frames' content is smooth noise (low-resolution random colours upsampled, plus pixel
noise), which a JPEG codes to about the size of a real frame (~130 kB at 1000 x 1000);
their sizes are printed.

    python benchmarks/bench_loader.py [--images 64] [--batches 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

SIZES = {"Human3.6M 1000x1000": (1000, 1000), "VGA 640x480": (640, 480),
         "HD 1280x720": (1280, 720), "full HD 1920x1080": (1920, 1080)}
TARGET = 3000 / 16  # samples/s per core for 16 cores to feed ~3,000 samples/s


def write_frames(folder: Path, width: int, height: int, n: int, seed: int = 0) -> Path:
    """``n`` JPEG frames and their SPIN ``.npz``; returns the ``.npz``."""
    rng = np.random.default_rng(seed)
    names, centres, scales, parts = [], [], [], []
    for i in range(n):
        low = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        img += rng.normal(0, 2.5, img.shape)
        name = f"frame_{width}x{height}_{i:04d}.jpg"
        cv2.imwrite(str(folder / name), np.clip(img, 0, 255).astype(np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        scale = 0.5 * height / 200 * 1.2
        centre = np.array([width / 2, height / 2]) + rng.normal(0, 0.05 * height, 2)
        part = np.concatenate([centre + rng.normal(0, 0.15 * height, (24, 2)),
                               np.ones((24, 1))], 1)
        names.append(name)
        centres.append(centre)
        scales.append(scale)
        parts.append(part)
    npz = folder / f"frames_{width}x{height}.npz"
    np.savez(npz, imgname=np.array(names), center=np.array(centres, np.float32),
             scale=np.array(scales, np.float32), part=np.array(parts, np.float32),
             pose=np.zeros((n, 72), np.float32), shape=np.zeros((n, 10), np.float32),
             has_smpl=np.ones(n, np.float32))
    return npz


def loader_rate(data, batch: int, batches: int) -> float:
    """Samples/s of ``batches`` collated batches (cycling the dataset)."""
    loader = DataLoader(data, batch_size=batch, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    start, seen, samples = time.perf_counter(), 0, 0
    while seen < batches:
        for b in loader:
            seen, samples = seen + 1, samples + len(b["img"])
            if seen == batches:
                break
    return samples / (time.perf_counter() - start)


def pixel_difference(direct, cached, seed: int = 0) -> np.ndarray:
    """|direct - cached| grey levels of every sample under one augmentation draw each."""
    from hkmr.data.augment import Augment

    rng, augment = np.random.default_rng(seed), Augment()
    diffs = []
    for i in range(len(direct)):
        params = augment.sample(rng)
        a = direct.sample(i, params)["img"].astype(np.float64)
        b = cached.sample(i, params)["img"].astype(np.float64)
        diffs.append(np.abs(a - b).ravel())
    return np.concatenate(diffs)


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="frames per size")
    parser.add_argument("--batches", type=int, default=6, help="batches of 64 timed per size")
    args = parser.parse_args()
    from hkmr.data.crop_cache import ensure_crop_cache
    from hkmr.data.datasets import SpinDataset

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = 64
    print(f"SpinDataset at 224 px, augment on, batches of {batch}, 1 process, 1 OpenCV and 1 "
          f"torch thread; target {TARGET:.0f} samples/s per core (3,000/s from 16 cores)")
    print(f"{'frames':22s}{'JPEG kB':>9s}{'decode/s':>10s}{'samples/s':>11s}"
          f"{'decode share':>14s}{'x target':>10s}{'cache build/s':>15s}{'cached/s':>10s}"
          f"{'x target':>10s}{'|diff| mean':>13s}{'p99':>6s}")
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        folder = Path(tmp)
        for label, (w, h) in SIZES.items():
            npz = write_frames(folder, w, h, args.images)
            paths = sorted(folder.glob(f"frame_{w}x{h}_*.jpg"))
            kb = np.mean([p.stat().st_size for p in paths]) / 1e3
            decode = max(rate(lambda: [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths],
                              len(paths)) for _ in range(3))
            direct = SpinDataset(npz, folder, size=224, augment=True)
            loader_rate(direct, batch, 1)  # warm-up
            samples = loader_rate(direct, batch, args.batches)
            start = time.perf_counter()
            crops = ensure_crop_cache(npz, folder, 224, root=folder, log=lambda m: None)
            build = args.images / (time.perf_counter() - start)
            cached = SpinDataset(npz, folder, size=224, augment=True, crop_cache=crops)
            cached_rate = loader_rate(cached, batch, args.batches)
            diff = pixel_difference(direct, cached)
            print(f"{label:22s}{kb:9.0f}{decode:10.0f}{samples:11.0f}"
                  f"{samples / decode:14.0%}{samples / TARGET:10.2f}{build:15.0f}"
                  f"{cached_rate:10.0f}{cached_rate / TARGET:10.2f}"
                  f"{diff.mean():13.2f}{np.percentile(diff, 99):6.0f}")


if __name__ == "__main__":
    main()
