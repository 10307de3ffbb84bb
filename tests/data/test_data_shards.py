"""Parquet shards and SyntheticDataset: determinism, resume, manifest, disjoint splits, P1/P2,
the item contract and occlusion sets (paper Sec. 4)."""

import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from hkmr import __version__
from hkmr.data.datasets import COMMON_KEYS, SyntheticDataset
from hkmr.data.shards import DatasetSpec, generate, read_split, shard_path
from hkmr.data.views import FRONTAL_VIEW

SPEC = DatasetSpec(counts={"train": 5, "val": 2, "test": 2}, size=64, seed=7,
                   subjects={"train": 3, "val": 2, "test": 2}, shard_size=2)


def _shards(root):
    return sorted(p.relative_to(root) for p in root.rglob("*.parquet"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "a"
    manifest = generate(root, SPEC, workers=1, progress=False)
    return root, manifest


def test_layout_and_manifest(dataset):
    root, manifest = dataset
    assert [str(p) for p in _shards(root)] == [
        "test/shard-00000.parquet", "train/shard-00000.parquet", "train/shard-00001.parquet",
        "train/shard-00002.parquet", "val/shard-00000.parquet"]
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]
    saved = json.loads((root / "manifest.json").read_text())
    assert saved == manifest and saved["complete"] and saved["hkmr_version"] == __version__
    s = saved["settings"]
    assert s["seed"] == 7 and s["size"] == 64 and s["counts"] == SPEC.counts
    assert s["sampler"]["style_probs"] and len(s["sampler"]["style_probs"]) == 7
    assert len(s["cameras"]) == 4 and len(s["source_hash"]) == 16
    assert saved["images"] == {"train": 20, "val": 8, "test": 8}
    assert saved["last_run"]["images_rendered"] == 36
    assert pq.read_metadata(shard_path(root, "train", 2)).num_rows == 4  # 1 sample x 4 views


def test_same_seed_same_bytes_whatever_the_worker_count(dataset, tmp_path):
    root, _ = dataset
    other = tmp_path / "b"
    generate(other, SPEC, workers=2, progress=False)  # a process pool, shards out of order
    assert _shards(other) == _shards(root)
    for rel in _shards(root):
        assert (other / rel).read_bytes() == (root / rel).read_bytes(), rel
    changed = DatasetSpec(counts={"train": 1}, size=64, seed=8, subjects=SPEC.subjects,
                          shard_size=2)
    generate(tmp_path / "c", changed, workers=1, progress=False)
    first = read_split(root, "train").column("img")[0].as_py()
    assert read_split(tmp_path / "c", "train").column("img")[0].as_py() != first


def test_resume_keeps_finished_shards_and_redoes_the_rest(dataset, tmp_path):
    root, _ = dataset
    copy = tmp_path / "resume"
    shutil.copytree(root, copy)
    shard_path(copy, "train", 1).unlink()
    damaged = shard_path(copy, "train", 2)
    damaged.write_bytes(damaged.read_bytes()[:100])  # a truncated file is redone
    stale = copy / "train" / ".shard-00001.parquet.abc.tmp.parquet"
    stale.write_bytes(b"half")
    kept = shard_path(copy, "train", 0).stat().st_mtime_ns
    manifest = generate(copy, SPEC, workers=1, progress=False)
    assert manifest["last_run"]["images_rendered"] == 8 + 4  # shards 1 and 2 only
    assert shard_path(copy, "train", 0).stat().st_mtime_ns == kept
    assert not stale.exists()
    for rel in _shards(root):
        assert (copy / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_other_settings_refuse_to_resume(dataset):
    root, _ = dataset
    bigger = DatasetSpec(counts=SPEC.counts, size=96, seed=7, subjects=SPEC.subjects,
                         shard_size=2)
    with pytest.raises(ValueError, match="size"):
        generate(root, bigger, workers=1, progress=False)


def test_splits_have_disjoint_subjects_and_poses(dataset):
    root, _ = dataset
    tables = {s: read_split(root, s) for s in ("train", "val", "test")}
    betas = {s: {tuple(b) for b in t.column("betas").to_pylist()} for s, t in tables.items()}
    poses = {s: {tuple(p[3:]) for p in t.column("pose").to_pylist()} for s, t in tables.items()}
    assert len(betas["train"]) == 3 and len(betas["val"]) == 2
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not betas[a] & betas[b] and not poses[a] & poses[b]


def test_p1_has_four_views_p2_the_frontal_one(dataset):
    root, _ = dataset
    p1 = SyntheticDataset(root, "test", "P1")
    p2 = SyntheticDataset(root, "test", "P2")
    assert len(p1) == 8 and len(p2) == 2
    assert [int(p1[i]["view"]) for i in range(4)] == [0, 1, 2, 3]
    assert all(bool(p2[i]["frontal"]) and int(p2[i]["view"]) == FRONTAL_VIEW for i in range(2))
    assert sum(bool(p1[i]["frontal"]) for i in range(8)) == 2
    same = p1[4 + FRONTAL_VIEW]
    assert int(same["image_id"]) == int(p2[1]["image_id"]) == 4 + FRONTAL_VIEW
    assert torch.equal(same["img"], p2[1]["img"]) and int(p2[1]["index"]) == 1


def test_items_follow_the_contract(dataset, body_model):
    root, _ = dataset
    ds = SyntheticDataset(root, "train")
    batch = next(iter(DataLoader(ds, batch_size=6, shuffle=False)))
    shapes = {"img": ((6, 3, 64, 64), torch.float32), "keypoints": ((6, 24, 3), torch.float32),
              "visible": ((6, 24), torch.float32), "joints3d": ((6, 24, 4), torch.float32),
              "pose": ((6, 72), torch.float32), "betas": ((6, 10), torch.float32),
              "has_smpl": ((6,), torch.float32), "has_joints3d": ((6,), torch.float32),
              "view": ((6,), torch.int64), "frontal": ((6,), torch.bool),
              "index": ((6,), torch.int64), "parts": ((6, 64, 64), torch.uint8),
              "mask": ((6, 64, 64), torch.bool), "focal": ((6,), torch.float32),
              "transl": ((6, 3), torch.float32), "occluded": ((6, 24), torch.float32)}
    for key, (shape, dtype) in shapes.items():
        assert tuple(batch[key].shape) == shape and batch[key].dtype == dtype, key
    assert set(COMMON_KEYS) <= set(batch)
    assert batch["img"].mean().abs() < 1.0 and batch["img"].std() > 0.3  # ImageNet-normalised
    assert (batch["keypoints"][..., 2] == 1).all() and batch["keypoints"][..., :2].abs().max() < 1
    assert batch["visible"].mean() > 0.6 and set(batch["visible"].unique().tolist()) <= {0.0, 1.0}
    # stored ground truth is exact: joints3d = BodyModel(pose, betas) + transl, keypoints its
    # projection, and the part map agrees with the head keypoint
    with torch.no_grad():
        out = body_model.forward_pose(batch["pose"], batch["betas"])
    torch.testing.assert_close(out.joints + batch["transl"][:, None], batch["joints3d"][..., :3],
                               atol=2e-4, rtol=0)
    j = batch["joints3d"][..., :3]
    torch.testing.assert_close(batch["focal"][:, None, None] * j[..., :2] / j[..., 2:],
                               batch["keypoints"][..., :2], atol=1e-5, rtol=0)
    assert torch.equal(batch["mask"], batch["parts"] > 0)


def test_standard_occlusion_sets_are_deterministic(dataset):
    root, _ = dataset
    clean = SyntheticDataset(root, "test", "P1")
    bar = SyntheticDataset(root, "test", "P1", occlusion="bar")
    again = SyntheticDataset(root, "test", "P1", occlusion="bar")
    for i in range(len(clean)):
        a, b = bar[i], again[i]
        assert torch.equal(a["img"], b["img"]) and a["occluded"].sum() >= 1
        changed = (a["img"] != clean[i]["img"]).any(0)
        assert 0 < changed.float().mean() < 0.5
        for key in ("keypoints", "joints3d", "pose"):
            assert torch.equal(a[key], clean[i][key])
    curve = SyntheticDataset(root, "test", "P2", occlusion=("circle", 3, 18))
    assert all(curve[i]["occluded"][18] == 1 for i in range(len(curve)))


@pytest.mark.parametrize("occlusion", ["square", ("bar", 7, 3), ("bar", 1, 30), 5])
def test_bad_occlusion_settings_are_errors(dataset, occlusion):
    with pytest.raises(ValueError):
        SyntheticDataset(dataset[0], "test", occlusion=occlusion)


def test_augmentation_is_random_per_call_and_seedable(dataset):
    ds = SyntheticDataset(dataset[0], "train", augment=True)
    torch.manual_seed(0)
    first = [ds[0]["keypoints"] for _ in range(4)]
    torch.manual_seed(0)
    again = [ds[0]["keypoints"] for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(first[0], k) for k in first[1:])


def test_errors_name_the_file(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(FileNotFoundError, match="manifest"):
        SyntheticDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        SyntheticDataset(root, "holdout")
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    shard_path(broken, "val", 0).unlink()
    with pytest.raises(FileNotFoundError, match="shard-00000.parquet"):
        SyntheticDataset(broken, "val")
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(ValueError, match="did not finish"):
        SyntheticDataset(broken, "train")
