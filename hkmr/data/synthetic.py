"""The synthetic dataset a config names (the benchmark of Sec. 4): ``data.synthetic`` when it
is given (it must exist), otherwise generated from the ``synth_*`` keys on first use into
``$HKMR_CACHE/synth/<settings digest>``. A folder lock makes concurrent runs on one machine
(sweep trials, two sweeps) wait for a single generation."""

from __future__ import annotations

from pathlib import Path

from ..config import DataConfig
from ..digest import json_digest
from ..io import cache_dir, folder_lock
from .shards import DatasetSpec, generate, load_manifest


def synthetic_spec(data: DataConfig) -> DatasetSpec:
    return DatasetSpec(counts={"train": data.synth_train, "val": data.synth_val,
                               "test": data.synth_test},
                       size=data.synth_size, seed=data.synth_seed)


def synthetic_settings(data: DataConfig) -> dict:
    """The settings of the config's dataset (which fix its pixels), without rendering it."""
    if data.synthetic:
        return load_manifest(data.synthetic)["settings"]
    return synthetic_spec(data).settings()


def synthetic_root(data: DataConfig) -> Path:
    """Where the config's synthetic dataset is (``data.synthetic``) or is cached."""
    if data.synthetic:
        return Path(data.synthetic)
    return cache_dir() / "synth" / json_digest(synthetic_spec(data).settings(), length=12)


def ensure_synthetic(data: DataConfig, progress: bool = True) -> Path:
    """The folder of the config's synthetic dataset, generated if it is not there yet."""
    if data.synthetic:
        root = Path(data.synthetic)
        if not (root / "manifest.json").exists():
            raise FileNotFoundError(f"data.synthetic={root}: no dataset there (make one with "
                                    f"'hkmr synth dataset --out {root}')")
        return root
    spec = synthetic_spec(data)
    root = synthetic_root(data)
    with folder_lock(root):
        try:
            complete = load_manifest(root).get("complete", False)
        except (FileNotFoundError, ValueError):
            complete = False
        if not complete:
            generate(root, spec, progress=progress)
    return root
