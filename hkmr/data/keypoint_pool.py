"""The keypoint regime's data (``model.encoder: keypoints``): the synthetic benchmark's poses,
subjects and four cameras without any rendering.

A *pool* holds, per split, every (subject-pose, view) of the synthetic dataset with the same
settings: the same sampler streams (:mod:`hkmr.data.shards`: pose ``i`` of a split depends
only on (seed, split, i), subjects on (seed, split, s)), the same camera placement and crop
(:func:`hkmr.data.views.view_geometry`), so its ground truth is exactly that of the rendered
images (2D keypoints in crop coordinates, camera-frame 3D joints, SMPL Θ and β, translation,
focal). What the images would add (appearance, self-occlusion) is absent: a keypoint is
visible when it lies in the crop.

Also stored, for the test split, which joints each test-time occluder hides (Table 1's three
standard occluder sets and Fig. 6's 15 (kind, degree) sets, placed by
:mod:`hkmr.data.occlusion` exactly as on the images, with the crop side ``data.synth_size``):
a keypoint is hidden when it lies inside the occluder (:func:`~hkmr.data.occlusion.covers`).

Files: ``ROOT/keypoints/<settings digest>/{manifest.json, train.npz, val.npz, test.npz,
test_occlusion.npz}``, written to temporary names and renamed; a folder lock makes concurrent
callers wait for one generation. About 6 ms of CPU per subject-pose (the crop placement of
four views), so 16,000 training subject-poses take ~1.5 min once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..body.joints import LSP14
from ..config import DataConfig
from ..digest import file_digest, json_digest
from ..io import atomic_path, cache_dir, folder_lock
from ..safe_load import read_npz
from .occlusion import DEGREES, KINDS, covers, occluder_of, pixels
from .sampler import sample_pose
from .shards import SPLIT_CODE, STREAM_POSE, SPLITS, DatasetSpec, subject_betas
from .synthetic import synthetic_spec
from .views import CAMERAS, NUM_VIEWS, view_geometry

FORMAT = "hkmr-keypoints"
FORMAT_VERSION = 1
_CHUNK = 256  # subject-poses placed at once
#: the per-row arrays of a split file
FIELDS = ("image_id", "sample", "subject", "view", "keypoints", "joints3d", "pose", "betas",
          "transl", "focal")


def pool_settings(data: DataConfig) -> dict:
    """What fixes a pool: the synthetic dataset's counts, seed, crop size, subjects, sampler
    and cameras, and a digest of the code that computes the geometry."""
    spec = synthetic_spec(data)
    here = Path(__file__).parent
    code = file_digest(*(here / n for n in ("sampler.py", "views.py", "keypoint_pool.py",
                                            "occlusion.py", "../body/procedural.py")))
    return json.loads(json.dumps({
        "format": FORMAT, "format_version": FORMAT_VERSION, "seed": spec.seed,
        "size": spec.size, "views": NUM_VIEWS, "counts": dict(spec.counts),
        "subjects": dict(spec.subjects), "sampler": spec.sampler.to_dict(),
        "cameras": [vars(c) for c in CAMERAS], "source_hash": code}))


def pool_root(data: DataConfig, root: str | Path | None = None) -> Path:
    return Path(root or cache_dir()) / "keypoints" / json_digest(pool_settings(data), length=12)


def split_rows(spec: DatasetSpec, split: str, body) -> dict[str, np.ndarray]:
    """Every (subject-pose, view) of ``split``, views innermost (row = 4 i + view), as the
    rendered dataset orders its rows."""
    import torch

    code, n = SPLIT_CODE[split], spec.counts.get(split, 0)
    betas_all = subject_betas(spec, split).astype(np.float32)
    parts: dict[str, list] = {k: [] for k in FIELDS}
    for start in range(0, n, _CHUNK):
        ids = np.arange(start, min(start + _CHUNK, n))
        poses = np.stack([sample_pose(np.random.default_rng([spec.seed, code, STREAM_POSE,
                                                             int(i)]), spec.sampler)[0]
                          for i in ids])
        subjects = ids % spec.subjects[split]
        betas = betas_all[subjects]
        with torch.no_grad():
            out = body.forward_pose(torch.as_tensor(poses, dtype=torch.float32),
                                    torch.as_tensor(betas))
        g = view_geometry(out.vertices.numpy().astype(np.float64),
                          out.joints.numpy().astype(np.float64), poses[:, 0])
        m = len(ids)
        joints = g["joints"]  # (m, 4, 24, 3)
        body_pose = np.broadcast_to(poses[:, 1:].reshape(m, 1, 69), (m, NUM_VIEWS, 69))
        rows = {
            "image_id": ids[:, None] * NUM_VIEWS + np.arange(NUM_VIEWS),
            "sample": np.repeat(ids[:, None], NUM_VIEWS, 1),
            "subject": np.repeat(subjects[:, None], NUM_VIEWS, 1),
            "view": np.broadcast_to(np.arange(NUM_VIEWS), (m, NUM_VIEWS)),
            "keypoints": g["focal"][..., None, None] * joints[..., :2] / joints[..., 2:],
            "joints3d": joints,
            "pose": np.concatenate([g["global_orient"], body_pose], -1),
            "betas": np.repeat(betas[:, None], NUM_VIEWS, 1),
            "transl": g["transl"], "focal": g["focal"]}
        for k, v in rows.items():
            parts[k].append(np.asarray(v).reshape(m * NUM_VIEWS, *np.shape(v)[2:]))
    return {k: (np.concatenate(v) if v else np.zeros(0)).astype(
        np.int64 if k in ("image_id", "sample", "subject", "view") else np.float32)
        for k, v in parts.items()}


def hidden_joints(occlusion: tuple, keypoints: np.ndarray, image_ids: np.ndarray, size: int,
                  seed: int = 0) -> np.ndarray:
    """(N, 24) bool: the keypoints inside each row's occluder for a parsed ``occlusion``."""
    out = np.zeros(keypoints.shape[:2], bool)
    for r, (kp, image_id) in enumerate(zip(keypoints, image_ids)):
        kp3 = np.concatenate([kp, np.ones((len(kp), 1))], 1)
        occ = occluder_of(occlusion, kp3, size, int(image_id), seed)
        out[r] = covers(occ, pixels(kp, size))
    return out


def test_occlusion(test: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """The hidden joints of the test split under Table 1's standard sets (``standard_<kind>``,
    every row) and Fig. 6's sets (``cycle_<kind>_<degree>``, row r of the P1 set occluded on
    joint LSP14[r mod 14]; P1 keeps every row)."""
    kp, ids = test["keypoints"], test["image_id"]
    out = {f"standard_{k}": hidden_joints((k,), kp, ids, size) for k in KINDS}
    for kind in KINDS:
        for degree in DEGREES:
            hidden = np.zeros(kp.shape[:2], bool)
            for j in range(len(LSP14)):
                rows = np.arange(j, len(kp), len(LSP14))
                hidden[rows] = hidden_joints((kind, degree, LSP14[j]), kp[rows], ids[rows], size)
            out[f"cycle_{kind}_{degree}"] = hidden
    return out


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def ensure_pool(data: DataConfig, root: str | Path | None = None, log=print) -> Path:
    """The folder of the config's keypoint pool, generated on first use."""
    from ..body import BodyModel

    folder = pool_root(data, root)
    settings = pool_settings(data)
    with folder_lock(folder):
        manifest = folder / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("settings") == settings:
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        spec, body = synthetic_spec(data), BodyModel()
        log(f"keypoint pool: placing {sum(spec.counts.values())} subject-poses x "
            f"{NUM_VIEWS} views in {folder}")
        test = None
        for split in SPLITS:
            rows = split_rows(spec, split, body)
            _save(folder / f"{split}.npz", rows)
            test = rows if split == "test" else test
        _save(folder / "test_occlusion.npz", test_occlusion(test, spec.size))
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps({"settings": settings}, indent=2, sort_keys=True) + "\n")
    return folder


def load_split(folder: str | Path, split: str) -> dict[str, np.ndarray]:
    """The arrays of one split (and, for ``test_occlusion``, the hidden-joint sets)."""
    path = Path(folder) / f"{split}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; the keypoint pool is made by "
                                "hkmr.data.keypoint_pool.ensure_pool (first use of a "
                                "model.encoder=keypoints config)")
    return read_npz(path, "keypoint pool split")
