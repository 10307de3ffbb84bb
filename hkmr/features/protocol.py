"""The frozen-encoder protocol of a config: which encoder, which cache, made once and verified.

``model.freeze_encoder: true`` trains only the regressor on cached encoder features.
:func:`prepare_features` gives the verified :class:`~hkmr.features.cache.FeatureCache` of a
config:

* ``data.features`` set: that cache. It must hold the config's dataset (compared by settings
  hash, so nothing is rendered) and, when ``model.encoder_checkpoint`` is set, that
  checkpoint's encoder; otherwise it is refused (:class:`~hkmr.features.cache.StaleCacheError`).
* ``data.features`` empty: the cache ``ROOT/features/<encoder hash>-<dataset hash>`` (ROOT:
  ``$HKMR_CACHE``, or the sweep's shared folder), extracted on first use from the dataset (made
  if missing) with the encoder of ``model.encoder_checkpoint`` — or, when that is empty, of the
  **shared encoder**: an end-to-end HMR run (no prior, the config's encoder, data and train
  settings, ``model.encoder_epochs`` epochs, seed 0) trained once into
  ``ROOT/encoders/<encoder>-<settings hash>`` (:func:`ensure_encoder`).

File locks make concurrent callers on one machine wait for a single training or extraction.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
from pathlib import Path

from ..config import Config, LossConfig, ModelConfig, to_dict, validate
from ..io import atomic_path, cache_dir
from .cache import FeatureCache, extract, load_encoder, open_cache, settings_hash

#: keys that do not change what the shared encoder learns
_NOT_IN_KEY = {("data", "workers"), ("data", "features"), ("train", "threads"),
               ("train", "device"), ("train", "eval_samples"),
               # the CMR baseline's keys: no part of the shared encoder's HMR run
               ("model", "cmr_channels"), ("model", "cmr_downsample"), ("loss", "w_vertices"),
               # SMPLify's settings: the encoder run never runs the loop
               ("train", "in_the_loop"), ("train", "smplify_iters"), ("train", "smplify_lr"),
               ("train", "smplify_prior"), ("train", "fit_threshold")}
#: keys in the hash only when set away from their default, so caches made before the key
#: existed stay valid
_KEYED_IF_SET = {("data", "smpl_fraction"): 1.0}


def dataset_settings(cfg: Config) -> dict:
    """The settings of the config's synthetic dataset, without rendering it."""
    from ..data.shards import load_manifest
    from ..train.data import synthetic_spec

    if cfg.data.synthetic:
        return load_manifest(cfg.data.synthetic)["settings"]
    return synthetic_spec(cfg.data).settings()


def encoder_run_config(cfg: Config) -> Config:
    """The end-to-end HMR run that trains the shared encoder of ``cfg``."""
    model = ModelConfig(regressor="hmr", encoder=cfg.model.encoder,
                        pretrained=cfg.model.pretrained, prior="none")
    return validate(Config(body=dataclasses.replace(cfg.body), model=model, loss=LossConfig(),
                           data=dataclasses.replace(cfg.data, features=None),
                           train=dataclasses.replace(cfg.train, epochs=cfg.model.encoder_epochs,
                                                     in_the_loop=False),
                           seed=0))


def encoder_key(cfg: Config) -> str:
    """``<encoder>-<hash of the encoder run's settings>``: the shared encoder's folder name."""
    values = to_dict(encoder_run_config(cfg))
    for section, key in _NOT_IN_KEY:
        values[section].pop(key)
    for (section, key), default in _KEYED_IF_SET.items():
        if values[section][key] == default:
            values[section].pop(key)
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]
    return f"{cfg.model.encoder}-{digest}"


class _Lock:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.file = open(folder / ".lock", "w")

    def __enter__(self):
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def ensure_encoder(cfg: Config, root: str | Path | None = None, log=print) -> Path:
    """The checkpoint of ``cfg``'s shared encoder, trained on first use."""
    from ..train.trainer import CHECKPOINT, Trainer, TrainerHooks

    folder = Path(root or cache_dir()) / "encoders" / encoder_key(cfg)
    done = folder / "encoder.json"
    with _Lock(folder):
        if not done.exists():
            enc_cfg = encoder_run_config(cfg)
            log(f"training the shared encoder ({cfg.model.encoder}, end-to-end HMR, "
                f"{enc_cfg.train.epochs} epochs) -> {folder}")
            trainer = Trainer(enc_cfg, folder, TrainerHooks(log=log))
            last = trainer.fit()
            with atomic_path(done) as tmp:
                tmp.write_text(json.dumps({"config": to_dict(enc_cfg), "last_epoch": last},
                                          indent=2, default=str) + "\n")
    return folder / CHECKPOINT


def prepare_features(cfg: Config, root: str | Path | None = None, log=print,
                     progress: bool = True) -> FeatureCache:
    """The verified feature cache of ``cfg`` (see the module docstring)."""
    if cfg.data.spin_npz:
        raise ValueError("model.freeze_encoder=true: the feature cache holds the synthetic "
                         "dataset only; drop data.spin_npz or train end to end")
    settings = dataset_settings(cfg)
    if cfg.data.features:
        expected = load_encoder(cfg.model.encoder_checkpoint).hash \
            if cfg.model.encoder_checkpoint else None
        return open_cache(cfg.data.features, encoder_hash=expected, dataset_settings=settings,
                          encoder_name=cfg.model.encoder)
    from ..train.data import ensure_synthetic
    from ..train.trainer import pick_device

    data_root = ensure_synthetic(cfg.data, progress=progress)
    checkpoint = cfg.model.encoder_checkpoint or ensure_encoder(cfg, root, log)
    encoder = load_encoder(checkpoint)
    if encoder.name != cfg.model.encoder:
        raise ValueError(f"model.encoder_checkpoint={checkpoint} holds a {encoder.name} "
                         f"encoder, but model.encoder={cfg.model.encoder}")
    folder = Path(root or cache_dir()) / "features" / f"{encoder.hash}-{settings_hash(settings)}"
    with _Lock(folder):
        try:
            FeatureCache(folder)
        except (FileNotFoundError, ValueError):
            extract(encoder, data_root, folder, device=pick_device(cfg.train.device),
                    workers=cfg.data.workers, progress=progress, log=log)
    return open_cache(folder, encoder_hash=encoder.hash, dataset_settings=settings,
                      encoder_name=cfg.model.encoder)
