"""The feature cache: encoder features Φ of every sample of a synthetic dataset, on disk.

Layout of a cache folder (``hkmr features extract --out CACHE``)::

    manifest.json                 format, encoder (hash, name, feature size, input size, the
                                  checkpoint it came from), dataset (settings hash, settings,
                                  folder), variants (split, rows, shards, flip, occlusion),
                                  dtype, extraction time; ``complete`` is written last
    encoder.pt                    the frozen encoder's weights (trials need nothing else)
    targets/{train,val,test}.parquet   the dataset's ground truth without the images (the test
                                  split keeps its part maps for the segmentation metrics)
    <variant>/features-00000.npy  float16 (rows, F) in dataset row order, SHARD_ROWS a shard
    <variant>/occluded.npy        uint8 (rows, 24): joints a test-time occluder covers

Variants: ``train``, ``train_flip`` (the mirrored images, :func:`hkmr.data.augment.augment_crop`
with a flip, for flip augmentation), ``val``, ``test`` and the occluded test sets of the
evaluation suites (:mod:`hkmr.eval.suites`): ``test_{bar,circle,rectangle}`` (Table 1's
standard occluder of each kind) and ``test_{kind}_{degree}`` (Fig. 6: row i occluded on joint
``LSP14[i mod 14]`` at degree 1-5).

Identity: the **encoder hash** is a SHA-256 of the encoder's weights (names, dtypes, shapes,
bytes), so it names the weights, not a file; the **dataset hash** is a SHA-256 of the synthetic
dataset's settings (seed, counts, size, sampler, cameras and the hash of the rendering code),
which determine its pixels. :func:`open_cache` refuses a cache whose format, encoder or dataset
differ from what the caller expects (:class:`StaleCacheError`), or that is incomplete.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from .. import __version__
from ..checkpoint import ENCODER_FILE, EncoderWeights, load_encoder, save_encoder
from ..data.datasets import SyntheticDataset
from ..data.occlusion import DEGREES, KINDS
from ..data.shards import load_manifest, shard_path
from ..data.source import ImageTestSets
from ..digest import json_digest
from ..io import atomic_path

FORMAT = "hkmr-features"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_ROWS = 8192
#: ground-truth columns of the dataset a feature item needs (``parts`` only for the test split)
TARGET_COLUMNS = ("image_id", "sample", "subject", "view", "keypoints", "visible", "joints3d",
                  "pose", "betas", "transl", "focal")


class StaleCacheError(ValueError):
    """A feature cache that does not belong to the encoder or dataset asked for."""


def settings_hash(settings: dict) -> str:
    """16 hex digits of SHA-256 over a dataset's settings (as in its manifest)."""
    return json_digest(settings)


def variants() -> dict[str, dict]:
    """Every variant a cache holds: split, flip and occlusion (None, [kind] or
    [kind, degree] with the joint cycle rule)."""
    out = {"train": {"split": "train", "flip": False, "occlusion": None},
           "train_flip": {"split": "train", "flip": True, "occlusion": None},
           "val": {"split": "val", "flip": False, "occlusion": None},
           "test": {"split": "test", "flip": False, "occlusion": None}}
    for kind in KINDS:
        out[f"test_{kind}"] = {"split": "test", "flip": False, "occlusion": [kind]}
    for kind in KINDS:
        for degree in DEGREES:
            out[f"test_{kind}_{degree}"] = {"split": "test", "flip": False,
                                            "occlusion": [kind, degree]}
    return out


# -- reading a cache --------------------------------------------------------------------------
def _diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" if not isinstance(a.get(k), dict)
                     else k for k in keys) or "none"


class FeatureCache:
    """A complete feature cache folder (see the module docstring); use :func:`open_cache`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        file = self.path / MANIFEST
        if not file.exists():
            raise FileNotFoundError(f"{self.path}: no feature cache there (make one with "
                                    f"'hkmr features extract --checkpoint CKPT --data DATA "
                                    f"--out {self.path}')")
        try:
            self.manifest = json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise StaleCacheError(f"{file}: corrupt manifest ({err})") from None
        if self.manifest.get("format") != FORMAT:
            raise StaleCacheError(f"{file}: not an {FORMAT} manifest")
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise StaleCacheError(
                f"{self.path}: feature cache format {self.manifest.get('format_version')}, this "
                f"hkmr reads format {FORMAT_VERSION}; extract it again")
        if not self.manifest.get("complete"):
            raise StaleCacheError(f"{self.path}: extraction did not finish; rerun 'hkmr features "
                                  "extract' with the same arguments to complete it")
        self._features: dict[str, np.ndarray] = {}
        self._targets: dict[str, pa.Table] = {}

    @property
    def encoder_hash(self) -> str:
        return self.manifest["encoder"]["hash"]

    @property
    def dataset_hash(self) -> str:
        return self.manifest["dataset"]["hash"]

    @property
    def feat_dim(self) -> int:
        return int(self.manifest["encoder"]["feat_dim"])

    def verify(self, encoder_hash: str | None = None, dataset_settings: dict | None = None,
               encoder_name: str | None = None, what: str = "the config") -> "FeatureCache":
        """Raise :class:`StaleCacheError` unless the cache holds features of that encoder and
        that dataset (None: not checked)."""
        enc, data = self.manifest["encoder"], self.manifest["dataset"]
        if encoder_name is not None and enc["name"] != encoder_name:
            raise StaleCacheError(
                f"{self.path}: feature cache of a {enc['name']} encoder, but {what} has "
                f"model.encoder={encoder_name}")
        if encoder_hash is not None and enc["hash"] != encoder_hash:
            raise StaleCacheError(
                f"{self.path}: stale feature cache: it holds features of encoder {enc['hash']} "
                f"(from {enc['checkpoint']}), but {what} asks for encoder {encoder_hash}. "
                "Extract a new cache ('hkmr features extract --checkpoint CKPT --data DATA --out "
                "NEW') or leave data.features empty to use one keyed by the encoder.")
        if dataset_settings is not None and settings_hash(dataset_settings) != data["hash"]:
            raise StaleCacheError(
                f"{self.path}: stale feature cache: extracted from dataset {data['hash']} "
                f"({data['root']}), but {what} has dataset {settings_hash(dataset_settings)}; "
                f"settings differ: {_diff(data['settings'], dataset_settings)}. Extract a new "
                "cache for this dataset.")
        return self

    def variant(self, name: str) -> dict:
        try:
            return self.manifest["variants"][name]
        except KeyError:
            raise ValueError(f"{self.path}: no variant {name!r}; the cache holds "
                             f"{', '.join(self.manifest['variants'])}") from None

    def features(self, name: str) -> np.ndarray:
        """float16 (rows, F) of a variant, in the dataset's row order (read once, then kept)."""
        if name not in self._features:
            info = self.variant(name)
            parts = [np.load(self.path / name / f"features-{s:05d}.npy")
                     for s in range(info["shards"])]
            arr = np.concatenate(parts) if parts else np.zeros((0, self.feat_dim), np.float16)
            if arr.shape != (info["rows"], self.feat_dim):
                raise StaleCacheError(f"{self.path}/{name}: features of shape {arr.shape}, the "
                                      f"manifest says ({info['rows']}, {self.feat_dim})")
            self._features[name] = arr
        return self._features[name]

    def occluded(self, name: str) -> np.ndarray:
        """uint8 (rows, 24): 1 where the variant's occluder covers the joint."""
        info = self.variant(name)
        file = self.path / name / "occluded.npy"
        return np.load(file) if file.exists() else np.zeros((info["rows"], 24), np.uint8)

    def targets(self, split: str) -> pa.Table:
        if split not in self._targets:
            file = self.path / "targets" / f"{split}.parquet"
            if not file.exists():
                raise StaleCacheError(f"{file}: missing; extract the cache again")
            self._targets[split] = pq.read_table(file)
        return self._targets[split]

    def encoder(self) -> EncoderWeights:
        return load_encoder(self.path / ENCODER_FILE)


def open_cache(path: str | Path, **expected) -> FeatureCache:
    """Open a complete cache and :meth:`FeatureCache.verify` it against ``expected``."""
    return FeatureCache(path).verify(**expected)


# -- writing a cache --------------------------------------------------------------------------
def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def _write_targets(root: Path, settings: dict, split: str, out: Path) -> None:
    columns = list(TARGET_COLUMNS) + (["parts"] if split == "test" else [])
    n_shards = -(-settings["counts"].get(split, 0) // settings["shard_size"])
    tables = [pq.read_table(shard_path(root, split, s), columns=columns) for s in range(n_shards)]
    table = pa.concat_tables(tables) if tables else None
    if table is None:
        raise ValueError(f"{root}: split {split} is empty; a feature cache needs every split")
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


class _Images(torch.utils.data.Dataset):
    """Normalised images of a split with a variant's occluder (no augmentation): the test
    split's occluded variants are the image-backed evaluation test sets."""

    def __init__(self, root: Path, info: dict):
        occ = info["occlusion"]
        if not occ:
            self.base = SyntheticDataset(root, info["split"], "P1")
        elif len(occ) == 1:
            self.base = ImageTestSets(root).occluded(occ[0])
        else:
            self.base = ImageTestSets(root).joint_cycle(occ[0], occ[1])

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[i]
        return {"img": item["img"], "occluded": item["occluded"]}


@torch.no_grad()
def extract(encoder: EncoderWeights, data_root: str | Path, out: str | Path, *,
            batch_size: int = 256, device: str | torch.device = "cpu", workers: int = 0,
            progress: bool = True, log=print) -> FeatureCache:
    """Compute every variant's features of the dataset at ``data_root`` with ``encoder`` into
    ``out``. Resumable: finished shards of the same encoder and dataset are kept; a folder
    holding another encoder's or dataset's cache is refused."""
    data_root, out = Path(data_root), Path(out)
    dataset_manifest = load_manifest(data_root)
    if not dataset_manifest.get("complete"):
        raise ValueError(f"{data_root}: the dataset is incomplete; finish 'hkmr synth dataset'")
    settings = dataset_manifest["settings"]
    net, feat_dim = encoder.build()
    net = net.to(device)
    all_variants = variants()
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "complete": False,
        "encoder": {"hash": encoder.hash, "name": encoder.name, "feat_dim": feat_dim,
                    "image_size": encoder.image_size, "checkpoint": encoder.source},
        "dataset": {"hash": settings_hash(settings), "root": str(data_root.resolve()),
                    "settings": settings},
        "dtype": "float16", "shard_rows": SHARD_ROWS, "variants": {}}
    if (out / MANIFEST).exists():
        old = json.loads((out / MANIFEST).read_text())
        if old.get("format_version") != FORMAT_VERSION or \
                old.get("encoder", {}).get("hash") != encoder.hash or \
                old.get("dataset", {}).get("hash") != manifest["dataset"]["hash"]:
            raise StaleCacheError(
                f"{out}: holds a feature cache of another encoder or dataset (encoder "
                f"{old.get('encoder', {}).get('hash')}, dataset "
                f"{old.get('dataset', {}).get('hash')}); use a new --out or delete it")
        if old.get("complete"):
            log(f"{out}: feature cache complete (encoder {encoder.hash})")
            return FeatureCache(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    save_encoder(out / ENCODER_FILE, encoder)
    for split in ("train", "val", "test"):
        _write_targets(data_root, settings, split, out / "targets" / f"{split}.parquet")

    start, images = time.perf_counter(), 0
    todo = [(name, info) for name, info in all_variants.items() if not info["flip"]]
    total = sum(4 * settings["counts"][i["split"]] * (2 if i["split"] == "train" else 1)
                for _, i in todo)
    bar = tqdm(total=total, unit="img", disable=not progress, desc=f"features {out.name}")
    for name, info in todo:
        flip_name = f"{name}_flip" if f"{name}_flip" in all_variants else None
        data = _Images(data_root, info)
        n = len(data)
        shards = -(-n // SHARD_ROWS)
        occluded = np.zeros((n, 24), np.uint8)
        targets = [(name, False)] + ([(flip_name, True)] if flip_name else [])
        # an occluded variant is redone whole unless finished (its flags span all shards)
        redo = bool(info["occlusion"]) and not (out / name / "occluded.npy").exists()
        for s in range(shards):
            rows = range(s * SHARD_ROWS, min(n, (s + 1) * SHARD_ROWS))
            files = {v: out / v / f"features-{s:05d}.npy" for v, _ in targets}
            if not redo and all(_complete(f, len(rows), feat_dim) for f in files.values()):
                bar.update(len(rows) * len(targets))
                continue
            feats = {v: np.zeros((len(rows), feat_dim), np.float16) for v, _ in targets}
            at = 0
            for batch in DataLoader(Subset(data, rows), batch_size=batch_size,
                                    num_workers=workers):
                img = batch["img"].to(device)
                if img.shape[-1] != encoder.image_size:
                    img = F.interpolate(img, size=(encoder.image_size,) * 2, mode="bilinear",
                                        align_corners=False, antialias=True)
                b = img.shape[0]
                for v, flip in targets:
                    phi = net(img.flip(-1) if flip else img)
                    feats[v][at:at + b] = phi.float().cpu().numpy().astype(np.float16)
                occluded[rows.start + at:rows.start + at + b] = batch["occluded"].numpy() > 0
                at += b
                bar.update(b * len(targets))
                images += b * len(targets)
            for v, arr in feats.items():
                _write_npy(files[v], arr)
        if redo:
            _write_npy(out / name / "occluded.npy", occluded)
        for v, _ in targets:
            manifest["variants"][v] = {**all_variants[v], "rows": n, "shards": shards}
    bar.close()
    seconds = time.perf_counter() - start
    manifest.update(complete=True, hkmr_version=__version__,
                    date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                    extract_seconds=round(seconds, 1),
                    images_per_second=round(images / seconds, 1) if images else None)
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"{out}: extracted {images} images' features in {seconds:.0f} s "
        f"(encoder {encoder.hash}, dataset {manifest['dataset']['hash']})")
    return FeatureCache(out)


def _complete(path: Path, rows: int, dim: int) -> bool:
    try:
        return np.load(path, mmap_mode="r").shape == (rows, dim)
    except (OSError, ValueError):
        return False
