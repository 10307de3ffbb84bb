"""Synthetic benchmark storage: Parquet shards and a manifest (the data behind every
experiment of paper Sec. 4 when Human3.6M cannot be had).

Layout of a dataset folder::

    manifest.json                 seed, size, split sizes, sampler settings, cameras, code version
    train/shard-00000.parquet     one row per image: ``shard_size`` subject-poses x 4 views
    val/...  test/...

Splits are disjoint in subjects and poses: each split draws its own subjects (betas) and poses
from its own seed stream. Subject-pose ``i`` of a split depends only on (seed, split, i), and
view ``v`` of it only on (seed, split, i, v) — never on shard size, worker count or order — so
the same seed gives the same bytes. Generation runs shards in a process pool on all cores,
writes each shard to a temporary name and renames it (``hkmr.io.atomic_path``), and resumes:
shards already complete are kept.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..digest import file_digest, git_revision
from ..io import atomic_path
from .sampler import SamplerSettings, sample_betas, sample_pose
from .views import CAMERAS, NUM_VIEWS

FORMAT = "hkmr-synth"
FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
# the random streams of a split: (data seed, split code, stream, index); shared with the keypoint
# pool (hkmr/data/keypoint_pool.py), which draws the same poses, subjects and views
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
STREAM_POSE, STREAM_SUBJECT, STREAM_CLOTHES, STREAM_VIEW = 0, 1, 2, 3

SCHEMA = pa.schema([
    ("image_id", pa.int64()), ("sample", pa.int64()), ("subject", pa.int32()),
    ("view", pa.int8()), ("style", pa.string()),
    ("img", pa.large_binary()), ("parts", pa.large_binary()),
    ("keypoints", pa.list_(pa.float32(), 48)), ("visible", pa.list_(pa.float32(), 24)),
    ("joints3d", pa.list_(pa.float32(), 72)), ("pose", pa.list_(pa.float32(), 72)),
    ("betas", pa.list_(pa.float32(), 10)), ("transl", pa.list_(pa.float32(), 3)),
    ("focal", pa.float32()), ("world_orient", pa.list_(pa.float32(), 3)),
    ("rotation", pa.list_(pa.float32(), 9)),
])
_UNCOMPRESSED = {"img", "parts"}  # PNG bytes do not compress further
_IMAGES_PER_PROCESS = 300


@dataclass
class DatasetSpec:
    """What ``hkmr synth dataset`` generates; everything in :meth:`settings` is recorded."""

    counts: dict[str, int]  # subject-poses per split (each is rendered from all 4 views)
    size: int = 128
    seed: int = 0
    subjects: dict[str, int] = field(default_factory=lambda: {"train": 24, "val": 6, "test": 6})
    shard_size: int = 32  # subject-poses per shard
    sampler: SamplerSettings = field(default_factory=SamplerSettings)

    def __post_init__(self):
        if self.size < 16:
            raise ValueError(f"image size must be >= 16 px, got {self.size}")
        for split, n in self.counts.items():
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
            if n < 0 or self.subjects.get(split, 0) < 1:
                raise ValueError(f"split {split}: need >= 0 samples and >= 1 subject")
        if self.shard_size < 1:
            raise ValueError(f"shard size must be >= 1, got {self.shard_size}")

    def num_shards(self, split: str) -> int:
        return -(-self.counts.get(split, 0) // self.shard_size)

    def settings(self) -> dict:
        """JSON-ready (as read back from a manifest, so the two compare equal)."""
        return json.loads(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "seed": self.seed,
                "size": self.size, "views": NUM_VIEWS, "shard_size": self.shard_size,
                "counts": dict(self.counts), "subjects": dict(self.subjects),
                "sampler": self.sampler.to_dict(),
                "cameras": [vars(c) for c in CAMERAS], "source_hash": source_hash()}))


def source_hash() -> str:
    """Hash of the code that determines the pixels (sampler, views, renderer, shards, body)."""
    here = Path(__file__).parent
    return file_digest(*(here / name for name in ("sampler.py", "views.py", "render.py",
                                                  "shards.py", "../body/procedural.py")))


def shard_path(root: Path, split: str, shard: int) -> Path:
    return Path(root) / split / f"shard-{shard:05d}.parquet"


def subject_betas(spec: DatasetSpec, split: str) -> np.ndarray:
    """(subjects, 10) betas of a split's subjects."""
    code = SPLIT_CODE[split]
    return np.stack([sample_betas(np.random.default_rng([spec.seed, code, STREAM_SUBJECT, s]),
                                  spec.sampler) for s in range(spec.subjects[split])])


class _Renderer:
    """Per-process state: the body model and its face parts (built once per worker)."""

    def __init__(self):
        from ..body import BodyModel
        from .render import face_parts

        self.model = BodyModel()
        self.faces = self.model.faces.numpy()
        self.parts = face_parts(self.faces, self.model.smpl.lbs_weights.numpy())

    def shard_table(self, spec: DatasetSpec, split: str, shard: int) -> pa.Table:
        import torch

        from .render import render_view, sample_appearance, sample_clothing, vertex_normals
        from .views import place_views

        code = SPLIT_CODE[split]
        start = shard * spec.shard_size
        ids = range(start, min(start + spec.shard_size, spec.counts[split]))
        betas_all = subject_betas(spec, split)
        subjects = [i % spec.subjects[split] for i in ids]
        poses, styles = zip(*(sample_pose(np.random.default_rng([spec.seed, code, STREAM_POSE, i]),
                                          spec.sampler) for i in ids))
        pose_t = torch.as_tensor(np.stack(poses), dtype=torch.float32)
        betas = betas_all[subjects].astype(np.float32)
        with torch.no_grad():
            out = self.model.forward_pose(pose_t, torch.as_tensor(betas))
        rows: dict[str, list] = {name: [] for name in SCHEMA.names}
        for k, i in enumerate(ids):
            verts = out.vertices[k].numpy().astype(np.float64)
            joints = out.joints[k].numpy().astype(np.float64)
            views = place_views(verts, joints, poses[k][0])
            normals = vertex_normals(verts, self.faces)  # world frame; rotated per view
            clothes = sample_clothing(np.random.default_rng([spec.seed, code, STREAM_CLOTHES, i]))
            for geo in views:
                rng = np.random.default_rng([spec.seed, code, STREAM_VIEW, i, geo.view])
                look = sample_appearance(rng, spec.size, clothes)
                r = render_view(geo.vertices, geo.joints, geo.focal, self.faces, self.parts,
                                spec.size, look, normals @ geo.rotation.T)
                pose_cam = np.concatenate([geo.global_orient, poses[k][1:].reshape(-1)])
                for name, value in (
                    ("image_id", i * NUM_VIEWS + geo.view), ("sample", i),
                    ("subject", subjects[k]), ("view", geo.view), ("style", styles[k]),
                    ("img", _png(cv2.cvtColor(r.img, cv2.COLOR_RGB2BGR))),
                    ("parts", _png(r.parts)), ("keypoints", r.keypoints.reshape(-1)),
                    ("visible", r.visible), ("joints3d", geo.joints.reshape(-1)),
                    ("pose", pose_cam), ("betas", betas[k]), ("transl", geo.transl),
                    ("focal", geo.focal), ("world_orient", poses[k][0]),
                    ("rotation", geo.rotation.reshape(-1)),
                ):
                    rows[name].append(np.asarray(value, np.float32).tolist()
                                      if isinstance(value, np.ndarray) else value)
        return pa.table(rows, schema=SCHEMA)


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _write_table(table: pa.Table, path: Path) -> None:
    codecs = {n: ("NONE" if n in _UNCOMPRESSED else "ZSTD") for n in table.column_names}
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=codecs)


_WORKER: _Renderer | None = None


def _init_worker() -> None:
    import torch

    global _WORKER
    torch.set_num_threads(1)  # one process per core; identical floats whatever the count
    _WORKER = _Renderer()


def _run_task(task: tuple[DatasetSpec, str, int, str]) -> int:
    spec, split, shard, root = task
    global _WORKER
    if _WORKER is None:
        _WORKER = _Renderer()
    table = _WORKER.shard_table(spec, split, shard)
    _write_table(table, shard_path(Path(root), split, shard))
    return table.num_rows


def _shard_complete(path: Path, rows: int) -> bool:
    try:
        return path.exists() and pq.read_metadata(path).num_rows == rows
    except (OSError, pa.ArrowException):
        return False


def _expected_rows(spec: DatasetSpec, split: str, shard: int) -> int:
    start = shard * spec.shard_size
    return NUM_VIEWS * (min(start + spec.shard_size, spec.counts[split]) - start)


def load_manifest(root: str | Path) -> dict:
    path = Path(root) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest; not an hkmr synthetic dataset "
                                "(make one with 'hkmr synth dataset')")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt manifest ({err})") from None
    if manifest.get("settings", {}).get("format") != FORMAT:
        raise ValueError(f"{path}: not an {FORMAT} manifest")
    return manifest


def _write_manifest(root: Path, manifest: dict) -> None:
    with atomic_path(root / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def generate(root: str | Path, spec: DatasetSpec, workers: int | None = None,
             progress: bool = True) -> dict:
    """Render every missing shard of ``spec`` into ``root`` and return the manifest.

    ``workers``: processes; by default all cores, but no more than one per ~300 images to
    render (starting a process costs about as much as rendering 300 images), so small
    datasets render in-process."""
    import time

    from tqdm import tqdm

    root = Path(root)
    settings = spec.settings()
    if (root / "manifest.json").exists():
        old = load_manifest(root)["settings"]
        if old != settings:
            diff = sorted(k for k in settings if old.get(k) != settings[k])
            raise ValueError(f"{root}: holds a dataset with other settings ({', '.join(diff)}); "
                             "resume only with identical settings and code, or use a new --out")
    manifest = {"settings": settings, "complete": False, "hkmr_version": __version__,
                "git_revision": git_revision()}
    _write_manifest(root, manifest)
    tasks, done, total = [], 0, 0
    for split in SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
        for stale in (root / split).glob(".shard-*.tmp.parquet"):
            stale.unlink()  # left by a killed run; finished shards are never temporary
        for shard in range(spec.num_shards(split)):
            rows = _expected_rows(spec, split, shard)
            total += rows
            if _shard_complete(shard_path(root, split, shard), rows):
                done += rows
            else:
                tasks.append((spec, split, shard, str(root)))
    if workers is None:
        workers = min(os.cpu_count() or 1, max(1, (total - done) // _IMAGES_PER_PROCESS))
    workers = max(1, min(workers, len(tasks) or 1))
    start = time.perf_counter()
    with tqdm(total=total, initial=done, unit="img", disable=not progress,
              desc=f"rendering {root.name}") as bar:
        if workers == 1:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # the same floats as a pool worker
            try:
                for task in tasks:
                    bar.update(_run_task(task))
            finally:
                torch.set_num_threads(threads)
        else:
            with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for rows in pool.imap_unordered(_run_task, tasks):
                    bar.update(rows)
    seconds = time.perf_counter() - start
    rendered = total - done
    manifest.update(complete=True, images={s: NUM_VIEWS * spec.counts.get(s, 0) for s in SPLITS},
                    last_run={"images_rendered": rendered, "seconds": round(seconds, 2),
                              "workers": workers,
                              "images_per_second": round(rendered / seconds, 1) if rendered else None})
    _write_manifest(root, manifest)
    return manifest


def read_split(root: str | Path, split: str) -> pa.Table:
    """All rows of a split, shards in order. Errors name the missing or corrupt file."""
    root = Path(root)
    manifest = load_manifest(root)
    if not manifest.get("complete"):
        raise ValueError(f"{root}: generation did not finish; rerun 'hkmr synth dataset' with "
                         "the same arguments to resume")
    settings = manifest["settings"]
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    n_shards = -(-settings["counts"].get(split, 0) // settings["shard_size"])
    tables = []
    for shard in range(n_shards):
        path = shard_path(root, split, shard)
        if not path.exists():
            raise FileNotFoundError(f"{path}: shard missing; rerun 'hkmr synth dataset' to resume")
        try:
            tables.append(pq.read_table(path))
        except (OSError, pa.ArrowException) as err:
            raise ValueError(f"{path}: unreadable shard ({err})") from None
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
