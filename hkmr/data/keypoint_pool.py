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
callers wait for one generation. About 7 ms of CPU per subject-pose (the crop placement of
four views), so 16,000 training subject-poses take ~2 min of CPU once, spread over the
machine's cores in chunks of 256 subject-poses (:func:`place_split`; the same arrays as one
process).
"""

from __future__ import annotations

import json
import os
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
    n = spec.counts.get(split, 0)
    return _concat([chunk_rows(spec, split, start, body) for start in range(0, n, _CHUNK)])


def chunk_rows(spec: DatasetSpec, split: str, start: int, body) -> dict[str, np.ndarray]:
    """The rows of subject-poses ``start .. start + 256`` of ``split`` (:func:`split_rows`);
    a chunk depends on nothing else, so chunks can be placed in any process. Computed on one
    torch thread: a multi-threaded product rounds differently, and a pool's arrays must not
    depend on the machine's cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _chunk_rows(spec, split, start, body)
    finally:
        torch.set_num_threads(threads)


def _chunk_rows(spec: DatasetSpec, split: str, start: int, body) -> dict[str, np.ndarray]:
    import torch

    code, n = SPLIT_CODE[split], spec.counts.get(split, 0)
    betas_all = subject_betas(spec, split).astype(np.float32)
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
    return {k: np.asarray(v).reshape(m * NUM_VIEWS, *np.shape(v)[2:]) for k, v in rows.items()}


def _concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: (np.concatenate([c[k] for c in chunks]) if chunks else np.zeros(0)).astype(
        np.int64 if k in ("image_id", "sample", "subject", "view") else np.float32)
        for k in FIELDS}


class _Chunks:
    """Chunk k of a split as item k (a map-style dataset for a ``DataLoader``'s workers)."""

    def __init__(self, spec: DatasetSpec, split: str, body):
        self.spec, self.split, self.body = spec, split, body
        self.starts = list(range(0, spec.counts.get(split, 0), _CHUNK))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        return chunk_rows(self.spec, self.split, self.starts[k], self.body)


def _as_is(item):
    return item


def place_split(spec: DatasetSpec, split: str, body, workers: int = 1) -> dict[str, np.ndarray]:
    """:func:`split_rows`, its chunks spread over ``workers`` processes (a ``DataLoader``'s
    workers; the same chunks, so the same arrays as one process)."""
    chunks = _Chunks(spec, split, body)
    if workers <= 1 or len(chunks) < 2:
        return split_rows(spec, split, body)
    from torch.utils.data import DataLoader

    return _concat(list(DataLoader(chunks, batch_size=None, collate_fn=_as_is,
                                   num_workers=min(workers, len(chunks)))))


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


def placement_workers() -> int:
    """Processes that place a pool: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def ensure_pool(data: DataConfig, root: str | Path | None = None, log=print,
                workers: int | None = None) -> Path:
    """The folder of the config's keypoint pool, generated on first use (its chunks on
    ``workers`` processes, default :func:`placement_workers`)."""
    from ..body import BodyModel

    folder = pool_root(data, root)
    settings = pool_settings(data)
    with folder_lock(folder):
        manifest = folder / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("settings") == settings:
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        spec, body = synthetic_spec(data), BodyModel()
        workers = placement_workers() if workers is None else workers
        log(f"keypoint pool: placing {sum(spec.counts.values())} subject-poses x "
            f"{NUM_VIEWS} views in {folder} ({workers} processes)")
        test = None
        for split in SPLITS:
            rows = place_split(spec, split, body, workers)
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
