"""The shared encoder of the frozen-features regime: one end-to-end HMR run whose encoder the
regressors of a table are then compared on (Tables 1-3 compare regressors on one encoder).

When ``model.freeze_encoder`` is on and neither ``data.features`` nor
``model.encoder_checkpoint`` names an encoder, :func:`ensure_shared_encoder` trains an HMR
(no prior, the config's encoder, data and train settings, ``model.encoder_epochs`` epochs,
seed 0) once into ``ROOT/encoders/<encoder>-<settings digest>`` (ROOT: ``$HKMR_CACHE`` or a
sweep's shared folder) and returns its checkpoint. The CLI and the sweep driver call it before
any Trainer of the run itself is built; a folder lock makes concurrent callers wait for a
single training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..checkpoint import CHECKPOINT
from ..config import Config, LossConfig, ModelConfig, to_dict, validate
from ..data.source import image_source
from ..digest import json_digest
from ..io import atomic_path, cache_dir, folder_lock
from .trainer import Trainer, TrainerHooks

#: keys that do not change what the shared encoder learns
_NOT_IN_KEY = {("data", "workers"), ("data", "features"), ("train", "threads"),
               ("train", "device"), ("train", "eval_samples"),
               # the CMR baseline's keys: no part of the shared encoder's HMR run
               ("model", "cmr_channels"), ("model", "cmr_downsample"), ("loss", "w_vertices"),
               # SMPLify's settings: the encoder run never runs the loop
               ("train", "in_the_loop"), ("train", "smplify_iters"), ("train", "smplify_lr"),
               ("train", "smplify_prior"), ("train", "fit_threshold"),
               # the keypoint regime's inputs: an image encoder never sees them
               ("data", "keypoint_noise"), ("data", "keypoint_dropout"),
               # page-locked batches change no number
               ("train", "pin_memory")}
#: keys in the digest only when set away from their default, so caches made before the key
#: existed stay valid
_KEYED_IF_SET = {("data", "smpl_fraction"): 1.0, ("data", "mean_params"): None,
                 ("data", "datasets"): None, ("loss", "w_gt_2d"): 1.0,
                 ("loss", "w_openpose"): 0.0, ("model", "chain_layer"): "linear",
                 ("model", "chain_hidden"): 64, ("train", "lr_schedule"): "constant",
                 ("train", "warmup_steps"): 0, ("train", "adam"): "foreach",
                 ("train", "channels_last"): False, ("train", "compile"): False,
                 ("data", "crop_cache"): False}


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
    """``<encoder>-<digest of the encoder run's settings>``: the shared encoder's folder."""
    values = to_dict(encoder_run_config(cfg))
    values.pop("eval")  # the test sets evaluated afterwards change nothing the encoder learns
    values.pop("regime")  # always end to end (and keys made before the key existed stay)
    for section, key in _NOT_IN_KEY:
        values[section].pop(key)
    for (section, key), default in _KEYED_IF_SET.items():
        if values[section][key] == default:
            values[section].pop(key)
    return f"{cfg.model.encoder}-{json_digest(values, length=12)}"


def shared_encoder_folder(cfg: Config, root: str | Path | None = None) -> Path:
    """The folder of ``cfg``'s shared encoder (complete when it holds ``encoder.json``)."""
    return Path(root or cache_dir()) / "encoders" / encoder_key(cfg)


def ensure_shared_encoder(cfg: Config, root: str | Path | None = None, log=print) -> Path:
    """The checkpoint of ``cfg``'s shared encoder, trained on first use."""
    folder = shared_encoder_folder(cfg, root)
    done = folder / "encoder.json"
    with folder_lock(folder):
        if not done.exists():
            enc_cfg = encoder_run_config(cfg)
            log(f"training the shared encoder ({cfg.model.encoder}, end-to-end HMR, "
                f"{enc_cfg.train.epochs} epochs) -> {folder}")
            trainer = Trainer(enc_cfg, folder, image_source(enc_cfg), TrainerHooks(log=log))
            last = trainer.fit()
            with atomic_path(done) as tmp:
                tmp.write_text(json.dumps({"config": to_dict(enc_cfg), "last_epoch": last},
                                          indent=2, default=str) + "\n")
    return folder / CHECKPOINT
