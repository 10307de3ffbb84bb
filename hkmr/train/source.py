"""The data a training run is given, made before its :class:`~hkmr.train.trainer.Trainer`:
rendered images end to end, the keypoint regime's pool (``model.encoder: keypoints``), or cached encoder features under ``model.freeze_encoder`` — with
the shared encoder (:mod:`hkmr.train.shared_encoder`) trained and its features extracted first
when the config names neither ``data.features`` nor ``model.encoder_checkpoint``."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..data.keypoint_dataset import keypoint_source
from ..data.keypoint_pool import ensure_pool
from ..data.synthetic import ensure_synthetic
from ..data.source import DataSource, image_source
from ..features.cache import FeatureCache
from ..features.source import feature_source, prepare_features
from .shared_encoder import ensure_shared_encoder


def ensure_data(cfg: Config, log=print, progress: bool = True) -> Path:
    """Make (once, cached) the data ``cfg`` trains on: the keypoint pool under
    ``model.encoder: keypoints``, else the rendered synthetic dataset; returns its folder."""
    if cfg.regime == "keypoints":
        return ensure_pool(cfg.data, log=log)
    return ensure_synthetic(cfg.data, progress=progress)


def ensure_features(cfg: Config, root: str | Path | None = None, log=print,
                    progress: bool = True) -> FeatureCache:
    """The verified feature cache of a frozen-features config, made on first use (``root``:
    where the shared encoder and cache go, default ``$HKMR_CACHE``)."""
    checkpoint = None
    if not cfg.data.features and not cfg.model.encoder_checkpoint:
        checkpoint = ensure_shared_encoder(cfg, root, log)
    return prepare_features(cfg, checkpoint, root, log=log, progress=progress)


def prepare_source(cfg: Config, root: str | Path | None = None, log=print,
                   progress: bool = True) -> DataSource:
    """The :class:`~hkmr.data.source.DataSource` of ``cfg`` (see the module docstring)."""
    if cfg.regime == "keypoints":
        return keypoint_source(cfg, root, log)
    if cfg.regime == "frozen_features":
        return feature_source(cfg, ensure_features(cfg, root, log, progress))
    return image_source(cfg, progress=progress)
