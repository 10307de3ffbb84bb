"""The prepared crop cache of a SPIN-format set (hkmr/data/crop_cache.py): the same samples as
the direct path from the full frames, pixels to a few grey levels, made once."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hkmr.config import load_config
from hkmr.data.augment import Augment, AugParams
from hkmr.data.crop_cache import ensure_crop_cache
from hkmr.data.datasets import SpinDataset
from hkmr.data.source import spin_training_set


@pytest.fixture
def frames(tmp_path):
    """Four smooth 960 x 720 frames with a person box in each, as a SPIN .npz."""
    rng = np.random.default_rng(0)
    names = []
    for i in range(4):
        low = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
        img = cv2.resize(low, (960, 720), interpolation=cv2.INTER_CUBIC)
        names.append(f"f{i}.jpg")
        cv2.imwrite(str(tmp_path / names[-1]), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    center = np.array([[480, 360], [200, 240], [800, 600], [480, 60]], np.float32)  # 2 at edges
    part = np.concatenate([center[:, None] + rng.normal(0, 80, (4, 24, 2)),
                           np.ones((4, 24, 1))], 2).astype(np.float32)
    npz = tmp_path / "set.npz"
    np.savez(npz, imgname=np.array(names), center=center,
             scale=np.array([2.4, 1.6, 2.0, 3.0], np.float32), part=part)
    return npz, tmp_path


def test_cached_crops_give_the_direct_samples_to_a_few_grey_levels(frames, tmp_path):
    npz, images = frames
    crops = ensure_crop_cache(npz, images, 128, root=tmp_path / "cache", log=lambda m: None)
    direct = SpinDataset(npz, images, size=128)
    cached = SpinDataset(npz, images, size=128, crop_cache=crops)
    rng, augment = np.random.default_rng(1), Augment()
    draws = [AugParams()] + [augment.sample(rng) for _ in range(5)]
    draws.append(AugParams(rot_deg=45.0, scale=1.25, flip=True))  # the largest extent
    diffs = []
    for i in range(len(direct)):
        for params in draws:
            a, b = direct.sample(i, params), cached.sample(i, params)
            for key in ("keypoints", "joints3d", "pose"):
                np.testing.assert_array_equal(a[key], b[key])
            diffs.append(np.abs(a["img"].astype(float) - b["img"].astype(float)))
    diffs = np.concatenate([d.ravel() for d in diffs])
    # measured 1.08 and 6 grey levels (the black border beyond the frame is the worst)
    assert diffs.mean() < 1.5 and np.percentile(diffs, 99) <= 8, (diffs.mean(),
                                                                 np.percentile(diffs, 99))
    # made once: a second call reuses the files; another crop size is another cache
    first = sorted(p.stat().st_mtime_ns for p in crops.folder.glob("*.jpg"))
    again = ensure_crop_cache(npz, images, 128, root=tmp_path / "cache", log=lambda m: None)
    assert again.folder == crops.folder
    assert sorted(p.stat().st_mtime_ns for p in again.folder.glob("*.jpg")) == first
    other = ensure_crop_cache(npz, images, 64, root=tmp_path / "cache", log=lambda m: None)
    assert other.folder != crops.folder and len(list(other.folder.glob("*.jpg"))) == 4


def test_the_config_key_reads_the_training_set_from_its_cache(frames, monkeypatch, tmp_path):
    npz, images = frames
    monkeypatch.setenv("HKMR_CACHE", str(tmp_path / "hkmr_cache"))
    cfg = load_config("smoke", ["data.crop_cache=true"])
    data = spin_training_set(cfg, str(npz), str(images))
    assert data.crops is not None and data.crops.size == cfg.data.synth_size
    assert data[0]["img"].shape[-1] == cfg.data.synth_size
    missing = data.crops.folder / "00000002.jpg"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="00000002.jpg"):
        data.sample(2)
    plain = spin_training_set(load_config("smoke"), str(npz), str(images))
    assert plain.crops is None
