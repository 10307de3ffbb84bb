"""The checkpoint format: what a training run saves, and everything that reads it back.

A **training checkpoint** is one torch file, ``checkpoint.pt`` in a run's folder; wherever a
checkpoint is asked for, a folder means ``folder/checkpoint.pt``. Its payload::

    format, format_version   "hkmr-checkpoint", 1 (files written before these keys existed
                             hold the same payload and are read as version 1)
    model                    the MeshEstimator's state dict (encoder weights under "encoder.")
    config                   the run's config, nested (hkmr.config.to_dict)
    optimizer, scaler, prior the Adam, AMP scaler and prior term states (exact resume)
    epoch, step, images_seen, history   progress and every epoch's metrics
    rng                      torch, numpy, python and CUDA generator states

An **encoder file** holds a frozen encoder alone (a feature cache's ``encoder.pt``, format
"hkmr-features"): its architecture name, weights, input side, source and the digest of its
weights, which names the encoder in feature caches and results (``encoder_hash``).

Both load as data, never code (:func:`hkmr.safe_load.safe_torch_load`): a file whose pickle
asks for a callable the format never holds is refused with the file and the callable named,
before any of it runs.

This module writes both atomically and reads both with errors that name the file; it builds
the estimator a config describes (regressors start from the sampler's mean parameters, the
Θ^0, β^0 of Sec. 3.2) and extracts the encoder of either kind of file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .body.model import BodyModel
from .config import Config, ConfigError, make_config
from .data.sampler import mean_params
from .data.spin import load_mean_params
from .digest import state_digest
from .io import atomic_path
from .model.encoder import build_encoder
from .model.estimator import MeshEstimator
from .model.output import MeanParams
from .safe_load import UnsafeFileError, safe_torch_load

__all__ = ["UnsafeFileError"]  # re-exported: callers catch it with the checkpoint functions

CHECKPOINT = "checkpoint.pt"
FORMAT, FORMAT_VERSION = "hkmr-checkpoint", 1
ENCODER_FILE = "encoder.pt"
ENCODER_FORMAT = "hkmr-features"  # the name feature caches have always written


def checkpoint_file(path: str | Path) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` when it is a folder."""
    path = Path(path)
    return path / CHECKPOINT if path.is_dir() else path


def _load(path: Path, device: torch.device | str):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (hkmr train writes "
                                f"OUT/{CHECKPOINT})")
    return safe_torch_load(path, device)


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write a training checkpoint atomically (temporary name, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, tmp)
    return path


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """The payload of a training checkpoint (file or run folder), checked to be one."""
    path = checkpoint_file(path)
    blob = _load(path, device)
    if not isinstance(blob, dict) or not {"model", "config"} <= set(blob):
        raise ValueError(f"{path}: not an hkmr checkpoint (needs 'model' and 'config' entries)")
    version = blob.get("format_version", 1)
    if blob.get("format", FORMAT) != FORMAT or version > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {blob.get('format')} v{version}; this hkmr "
                         f"reads {FORMAT} up to v{FORMAT_VERSION}")
    return blob


def checkpoint_config(path: str | Path, blob: dict) -> Config:
    """The validated config stored in a checkpoint's payload."""
    try:
        return make_config(blob["config"])
    except ConfigError as err:
        raise ValueError(f"{path}: checkpoint config is invalid: {err}") from None


#: config keys a resumed run may change: how long it trains and where and how fast it runs,
#: and what the final evaluation reads; any other key changed what the saved epochs did
RESUMABLE_KEYS = ("train.epochs", "train.device", "train.threads", "train.eval_samples",
                  "data.workers", "eval.")


def check_resume_config(path: str | Path, stored: dict, current: dict) -> None:
    """ConfigError naming each key whose value in the config ``current`` differs from the
    checkpoint's ``stored`` one (nested dicts, :func:`hkmr.config.to_dict`), except
    :data:`RESUMABLE_KEYS`; keys added to the config since the checkpoint was written are
    not compared."""
    from .config import flatten

    before, now = flatten(stored), flatten(current)
    changed = [f"{k}: {before[k]!r} in the checkpoint, {now.get(k)!r} now"
               for k in sorted(before) if k in now and before[k] != now[k]
               and not k.startswith(RESUMABLE_KEYS)]
    if changed:
        raise ConfigError(f"{path}: resuming this run with another config would mix two "
                          f"trainings in one ({'; '.join(changed)}); use the config it was "
                          "started with, or a new --out")


def mean_params_for(cfg: Config) -> MeanParams:
    """Where the regressors start: SPIN's ``smpl_mean_params.npz`` when ``data.mean_params``
    names it, else the mean of the synthetic training distribution."""
    if cfg.data.mean_params:
        return MeanParams.from_dict(load_mean_params(cfg.data.mean_params))
    return MeanParams.from_dict(mean_params())


def build_estimator(cfg: Config, pretrained: bool | None = None) -> MeshEstimator:
    """The encoder-regressor a config describes (``pretrained`` overrides
    ``model.pretrained``: weights that come from a checkpoint are never downloaded)."""
    model_cfg = cfg.model if pretrained is None else dataclasses.replace(cfg.model,
                                                                          pretrained=pretrained)
    return MeshEstimator(model_cfg, mean_params_for(cfg), cfg.body.model_path)


def load_estimator(path: str | Path, device: torch.device | str = "cpu"
                   ) -> tuple[Config, MeshEstimator, BodyModel]:
    """(config, model in eval mode, body model) of a training checkpoint (file or folder)."""
    path = checkpoint_file(path)
    blob = read_checkpoint(path, device)
    cfg = checkpoint_config(path, blob)
    model = build_estimator(cfg, pretrained=False)
    try:
        model.load_state_dict(blob["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the model of its config: {err}") from None
    return cfg, model.to(device).eval(), BodyModel(cfg.body.model_path).to(device)


# -- frozen encoders ----------------------------------------------------------------------------
@dataclass
class EncoderWeights:
    """A frozen encoder: its architecture, weights and where they came from."""

    name: str  # model.encoder
    state: dict[str, torch.Tensor]
    image_size: int  # the input side it was trained at
    source: str  # the checkpoint file
    hash: str = ""

    def __post_init__(self):
        self.hash = self.hash or state_digest(self.state)

    def build(self) -> tuple[torch.nn.Module, int]:
        """(encoder in eval mode with these weights, feature size)."""
        net, dim = build_encoder(self.name, pretrained=False)
        net.load_state_dict(self.state)
        return net.eval(), dim


def save_encoder(path: str | Path, encoder: EncoderWeights) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": ENCODER_FORMAT, "name": encoder.name, "state": encoder.state,
                    "image_size": encoder.image_size, "source": encoder.source,
                    "hash": encoder.hash}, tmp)


def load_encoder(path: str | Path) -> EncoderWeights:
    """The encoder of a training checkpoint (file or run folder; its ``encoder.*`` weights) or
    of an encoder file (``encoder.pt``, or a feature cache folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / (ENCODER_FILE if (path / ENCODER_FILE).exists() else CHECKPOINT)
    blob = _load(path, "cpu")
    if isinstance(blob, dict) and blob.get("format") == ENCODER_FORMAT:
        return EncoderWeights(blob["name"], blob["state"], blob["image_size"], blob["source"],
                              blob["hash"])
    blob = read_checkpoint(path)
    cfg = checkpoint_config(path, blob)
    state = {k[len("encoder."):]: v for k, v in blob["model"].items() if k.startswith("encoder.")}
    if not state:
        raise ValueError(f"{path}: the checkpoint holds no encoder weights")
    return EncoderWeights(cfg.model.encoder, state, cfg.data.synth_size, str(path.resolve()))
