"""Data for a training run: the synthetic dataset (generated once, cached), the mixture with
SPIN-format real data, the deterministic epoch order, and the regressors' mean parameters."""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

import torch
from torch.utils.data import Sampler

from ..config import Config, DataConfig
from ..io import cache_dir
from ..model.output import MeanParams


class EpochSampler(Sampler[int]):
    """Epoch e visits a permutation seeded by (seed, e); with several ranks (DDP) each takes
    every world_size-th index of it, padded so all ranks see as many samples."""

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=gen).tolist()
        order += order[: (-len(order)) % self.world_size]
        return iter(order[self.rank::self.world_size])

    def __len__(self) -> int:
        return -(-self.n // self.world_size)


def synthetic_spec(data: DataConfig):
    from ..data.shards import DatasetSpec

    return DatasetSpec(counts={"train": data.synth_train, "val": data.synth_val,
                               "test": data.synth_test},
                       size=data.synth_size, seed=data.synth_seed)


def ensure_synthetic(data: DataConfig, progress: bool = True) -> Path:
    """The synthetic dataset folder: ``data.synthetic`` if given (it must exist), otherwise
    one generated from the ``synth_*`` keys under ``$HKMR_CACHE/synth`` on first use. A file
    lock makes concurrent trials on one machine wait for a single generation."""
    from ..data.shards import generate, load_manifest

    if data.synthetic:
        root = Path(data.synthetic)
        if not (root / "manifest.json").exists():
            raise FileNotFoundError(f"data.synthetic={root}: no dataset there (make one with "
                                    f"'hkmr synth dataset --out {root}')")
        return root
    spec = synthetic_spec(data)
    key = hashlib.sha256(json.dumps(spec.settings(), sort_keys=True).encode()).hexdigest()[:12]
    root = cache_dir() / "synth" / key
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            complete = load_manifest(root).get("complete", False)
        except (FileNotFoundError, ValueError):
            complete = False
        if not complete:
            generate(root, spec, progress=progress)
    return root


def mean_params_for(cfg: Config) -> MeanParams:
    """Where the regressors start: the mean of the synthetic training distribution."""
    from ..data.sampler import mean_params

    return MeanParams.from_dict(mean_params())


def build_datasets(cfg: Config, features=None):
    """(training set, validation set): the synthetic train split, mixed with SPIN-format data
    when ``data.spin_npz`` is given; the synthetic val split under ``data.val_protocol``.
    With a feature cache (the frozen-encoder protocol) their cached features instead, the
    training set flipped with probability 0.5 per sample and epoch when ``data.augment``."""
    from ..data.datasets import MixtureDataset, SpinDataset, SyntheticDataset

    if features is not None:
        return (features.dataset("train", "P1", flip_prob=0.5 if cfg.data.augment else 0.0,
                                 seed=cfg.seed),
                features.dataset("val", cfg.data.val_protocol))
    root = ensure_synthetic(cfg.data)
    train = SyntheticDataset(root, "train", protocol="P1", augment=cfg.data.augment)
    if cfg.data.spin_npz:
        if not cfg.data.spin_images:
            raise ValueError("data.spin_npz needs data.spin_images (the folder of its images)")
        spin = SpinDataset(cfg.data.spin_npz, cfg.data.spin_images, size=cfg.data.synth_size,
                           augment=cfg.data.augment)
        w = cfg.data.spin_weight
        train = MixtureDataset([train, spin], [1 - w, w], seed=cfg.seed)
    val = SyntheticDataset(root, "val", protocol=cfg.data.val_protocol)
    return train, val
