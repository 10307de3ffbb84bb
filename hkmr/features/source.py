"""The frozen-features regime of a config: which cache, extracted once and verified, and the
:class:`~hkmr.data.source.DataSource` a trainer reads from it.

``model.freeze_encoder: true`` trains only the regressor on cached encoder features.
:func:`prepare_features` gives the verified :class:`~hkmr.features.cache.FeatureCache`:

* ``data.features`` set: that cache. It must hold the config's dataset (compared by settings
  digest, so nothing is rendered) and, when ``model.encoder_checkpoint`` is set, that
  checkpoint's encoder; otherwise it is refused (:class:`~hkmr.features.cache.StaleCacheError`).
* ``data.features`` empty: the cache ``ROOT/features/<encoder hash>-<dataset hash>`` (ROOT:
  ``$HKMR_CACHE``, or a sweep's shared folder), extracted on first use from the dataset (made
  if missing) with the encoder of the given checkpoint: ``model.encoder_checkpoint`` or the
  shared encoder that :mod:`hkmr.train.shared_encoder` trained.

A folder lock makes concurrent callers on one machine wait for a single extraction.
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import load_encoder
from ..config import Config
from ..data.source import DataSource
from ..data.synthetic import ensure_synthetic, synthetic_settings
from ..device import pick_device
from ..io import cache_dir, folder_lock
from .cache import FeatureCache, extract, open_cache, settings_hash
from .dataset import FeatureDataset, FeatureTestSets


def feature_folder(encoder_hash: str, settings: dict, root: str | Path | None = None) -> Path:
    """Where the cache of an encoder (by its hash) on a dataset (by its settings) goes."""
    return Path(root or cache_dir()) / "features" / f"{encoder_hash}-{settings_hash(settings)}"


def prepare_features(cfg: Config, encoder_checkpoint: str | Path | None = None,
                     root: str | Path | None = None, log=print,
                     progress: bool = True) -> FeatureCache:
    """The verified feature cache of ``cfg`` (see the module docstring); without
    ``data.features``, ``encoder_checkpoint`` (default ``model.encoder_checkpoint``) names the
    encoder to extract with."""
    if cfg.data.spin_npz:
        raise ValueError("model.freeze_encoder=true: the feature cache holds the synthetic "
                         "dataset only; drop data.spin_npz or train end to end")
    settings = synthetic_settings(cfg.data)
    if cfg.data.features:
        expected = load_encoder(cfg.model.encoder_checkpoint).hash \
            if cfg.model.encoder_checkpoint else None
        return open_cache(cfg.data.features, encoder_hash=expected, dataset_settings=settings,
                          encoder_name=cfg.model.encoder)
    checkpoint = encoder_checkpoint or cfg.model.encoder_checkpoint
    if not checkpoint:
        raise ValueError("model.freeze_encoder=true needs data.features, "
                         "model.encoder_checkpoint, or the shared encoder "
                         "(hkmr.train.shared_encoder.ensure_shared_encoder)")
    data_root = ensure_synthetic(cfg.data, progress=progress)
    encoder = load_encoder(checkpoint)
    if encoder.name != cfg.model.encoder:
        raise ValueError(f"model.encoder_checkpoint={checkpoint} holds a {encoder.name} "
                         f"encoder, but model.encoder={cfg.model.encoder}")
    folder = feature_folder(encoder.hash, settings, root)
    with folder_lock(folder):
        try:
            FeatureCache(folder)
        except (FileNotFoundError, ValueError):
            extract(encoder, data_root, folder, device=pick_device(cfg.train.device),
                    workers=cfg.data.workers, progress=progress, log=log)
    return open_cache(folder, encoder_hash=encoder.hash, dataset_settings=settings,
                      encoder_name=cfg.model.encoder)


def feature_source(cfg: Config, cache: FeatureCache) -> DataSource:
    """Frozen features: the cached train split (its mirrored copy with probability 0.5 per
    sample and epoch when ``data.augment``), val split under ``data.val_protocol`` and test
    sets; the encoder the features came from. In memory, so no loader workers."""
    encoder = cache.encoder()
    return DataSource(
        train=FeatureDataset(cache, "train", "P1", flip_prob=0.5 if cfg.data.augment else 0.0,
                             seed=cfg.seed),
        val=FeatureDataset(cache, "val", cfg.data.val_protocol), test=FeatureTestSets(cache),
        regime="frozen_features", encoder_state=encoder.state, encoder_hash=cache.encoder_hash)
