"""Typed configuration: one vocabulary of dotted keys for YAML, CLI overrides and sweeps.

A key such as ``model.outer_iters`` means the same thing in a YAML file, in an override
``model.outer_iters=2`` on the command line and in a Ray Tune search space. Every field
declares what it accepts (a set of choices or a numeric range); :func:`validate` checks them
all and an invalid value fails at load with the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


def _range(default, lo, hi, doc=""):
    return field(default=default, metadata={"range": (lo, hi), "doc": doc})


@dataclass
class BodyConfig:
    model_path: str | None = None  # SMPL .pkl/.npz; None = the procedural body model


@dataclass
class ModelConfig:
    """The encoder-regressor (Sec. 3.2) and every ablation switch of Tables 2-3."""

    regressor: Literal["hkmr", "hmr", "cmr"] = "hkmr"
    encoder: Literal["resnet50", "small_cnn", "keypoints"] = "resnet50"  # keypoints: the
    # keypoint regime (hkmr/data/keypoint_dataset.py): an MLP embedding of 2D keypoints
    pretrained: bool = False  # ImageNet weights for resnet50 (needs them downloaded)
    outer_iters: int = _range(3, 1, 16, "T, outer iterations (paper 3)")
    inner_iters: int = _range(4, 1, 32, "P, inner passes; forward and backward each count one")
    passes: Literal["forward_backward", "forward_only"] = "forward_backward"
    joint_dependency: Literal["all", "previous"] = "all"
    chain_hierarchy: bool = True  # child chains conditioned on the current θ_root
    embed_dim: int = _range(128, 4, 4096, "d, size of the chain embedding ψ")
    head_hidden: int = _range(256, 4, 4096, "hidden units of the shape and camera networks")
    chain_impl: Literal["fast", "reference"] = "fast"  # linear chain_layer only; mlp ignores it
    # f_i, b_i: one FC layer (paper) or a 2-layer MLP, under which joint_dependency and passes
    # change the function class (hkmr/model/chain_mlp.py says why)
    chain_layer: Literal["linear", "mlp"] = "linear"
    chain_hidden: int = _range(64, 1, 4096, "hidden units of each f_i, b_i when chain_layer=mlp")
    hmr_iters: int = _range(3, 1, 16, "iterations of the HMR baseline's error feedback")
    hmr_hidden: int = _range(1024, 8, 8192, "width of the HMR baseline's two FC layers")
    dropout: float = _range(0.5, 0.0, 0.95, "dropout of the HMR baseline")
    cmr_channels: int = _range(256, 8, 4096, "channels of the CMR baseline's graph CNN")
    cmr_downsample: int = _range(4, 1, 64, "CMR's graph CNN runs on 1/this of the vertices")
    prior: Literal["vae", "discriminator", "none"] = "vae"
    vae_checkpoint: str | None = None  # trained by `hkmr prior train-vae`; None = build one
    # frozen-features regime (hkmr/features): train only the regressor on cached features
    freeze_encoder: bool = False
    encoder_checkpoint: str | None = None  # hkmr checkpoint whose encoder is frozen; None =
    # the shared encoder: an end-to-end HMR run of encoder_epochs, trained once and cached
    encoder_epochs: int = _range(3, 1, 1000, "epochs of the shared encoder's HMR run")


@dataclass
class LossConfig:
    """Weights λ of Eq. 3 (w_shape weighs the β part of L_smpl, as SPIN does)."""

    w_3d: float = _range(5.0, 0.0, 1e4)
    w_2d: float = _range(5.0, 0.0, 1e4)
    w_smpl: float = _range(1.0, 0.0, 1e4)
    w_shape: float = _range(0.001, 0.0, 1e4)
    w_prior: float = _range(0.01, 0.0, 1e4)
    w_vertices: float = _range(5.0, 0.0, 1e4, "L1 on a regressed mesh (CMR), as w_3d")
    w_gt_2d: float = _range(1.0, 0.0, 1e4, "share of w_2d on the annotated keypoints "
                            "(SPIN's gt_train_weight 1)")
    w_openpose: float = _range(0.0, 0.0, 1e4, "share of w_2d on OpenPose keypoints of "
                               "SPIN-format sets (SPIN's openpose_train_weight 0)")


@dataclass(frozen=True)
class DatasetEntry:
    """One set of the training mixture (``data.datasets``): a SPIN-format ``npz`` with its
    ``images`` root, or ``synthetic: true`` (the rendered train split), and its ``weight``
    (share of the mixture, normalised over the list)."""

    npz: str | None = None
    images: str | None = None
    weight: float = 1.0
    synthetic: bool = False


def _check_datasets(key: str, value: Any) -> list[DatasetEntry] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{key} must be a non-empty list of {{npz, images, weight}} or "
                          f"{{synthetic: true, weight}} entries, got {value!r}")
    names = {f.name for f in dataclasses.fields(DatasetEntry)}
    out = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if isinstance(item, DatasetEntry):
            item = dataclasses.asdict(item)
        if not isinstance(item, dict) or set(item) - names:
            raise ConfigError(f"{where}={item!r}: allowed keys are {', '.join(sorted(names))}")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"{where}.weight={weight!r} must be a number >= 0")
        synthetic = item.get("synthetic", False)
        if not isinstance(synthetic, bool):
            raise ConfigError(f"{where}.synthetic={synthetic!r} must be true or false")
        paths = [item.get("npz"), item.get("images")]
        if synthetic == any(paths) or not (synthetic or all(isinstance(p, str) for p in paths)):
            raise ConfigError(f"{where}: give either npz and images (paths) or synthetic: true")
        out.append(DatasetEntry(paths[0], paths[1], float(weight), synthetic))
    if sum(e.synthetic for e in out) > 1 or sum(e.weight for e in out) <= 0:
        raise ConfigError(f"{key}: at most one synthetic entry, and weights with a positive sum")
    return out


@dataclass
class DataConfig:
    """Training and evaluation data. ``synthetic`` names a folder made by
    ``hkmr synth dataset``; empty means one generated from the ``synth_*`` keys on first use
    and cached (``$HKMR_CACHE``). SPIN-format real data joins the mixture by path."""

    synthetic: str | None = None
    synth_train: int = _range(512, 1, 10_000_000, "training subject-poses (x 4 views)")
    synth_val: int = _range(64, 1, 1_000_000, "validation subject-poses (x 4 views)")
    synth_test: int = _range(64, 1, 1_000_000, "test subject-poses (x 4 views)")
    synth_size: int = _range(128, 32, 1024, "rendered crop size in pixels")
    synth_seed: int = _range(0, 0, 2**31 - 1)
    spin_npz: str | None = None  # SPIN-format .npz joined to the training mixture
    spin_images: str | None = None  # image root of spin_npz
    spin_weight: float = _range(0.5, 0.0, 1.0, "share of SPIN samples in the mixture")
    mean_params: str | None = None  # SPIN's smpl_mean_params.npz: the regressors' start
    #: SPIN's training mixture: SPIN-format sets (and the synthetic one) with weights;
    #: replaces spin_npz / spin_weight. See DatasetEntry.
    datasets: list[DatasetEntry] | None = field(default=None,
                                                    metadata={"parse": _check_datasets})
    augment: bool = True
    # SPIN-format training sets read their crops from a cache made once (hkmr/data/crop_cache.py)
    crop_cache: bool = False
    workers: int = _range(0, 0, 64, "DataLoader worker processes")
    val_protocol: Literal["P1", "P2"] = "P1"
    features: str | None = None  # feature cache (hkmr features extract); None = keyed, cached
    keypoint_noise: float = _range(2.0, 0.0, 1000.0, "keypoint regime: Gaussian noise of the "
                                   "input keypoints, crop pixels (std)")
    keypoint_dropout: float = _range(0.0, 0.0, 1.0, "keypoint regime: chance a training "
                                     "keypoint is hidden, per joint and epoch")
    smpl_fraction: float = _range(1.0, 0.0, 1.0, "share of training samples that keep SMPL "
                                  "and 3D ground truth; the rest are 2D-only (Table 4)")


@dataclass
class TrainConfig:
    """The plain PyTorch trainer (SPIN's defaults: Adam, lr 5e-5, batch 64)."""

    epochs: int = _range(10, 1, 100_000)
    batch_size: int = _range(64, 1, 4096)
    lr: float = _range(5e-5, 1e-8, 1.0)
    # cosine: lr anneals to 0 over epochs x steps per epoch (stepped per optimisation step)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = _range(0, 0, 10_000_000, "linear lr warm-up steps before the cosine")
    weight_decay: float = _range(0.0, 0.0, 1.0)
    # Adam's implementation (hkmr/train/optim.py): foreach = the single-tensor loop's numbers,
    # faster; fused = one kernel, faster still, rounds differently (another trajectory)
    adam: Literal["foreach", "fused", "single"] = "foreach"
    steps_per_epoch: int = _range(0, 0, 10_000_000, "0 = one full pass over the data")
    eval_samples: int = _range(0, 0, 10_000_000, "validation images per epoch, 0 = all")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # mixed precision, on CUDA only
    # the GPU path's speed switches (hkmr/train/speed.py; CUDA only, numbers within rounding)
    pin_memory: bool = True  # page-locked batches, copied to the GPU without blocking
    channels_last: bool = False  # NHWC images and convolution weights (ResNet50 with AMP)
    compile: bool = False  # torch.compile the model for training
    joints: Literal["kinematic", "mesh"] = "kinematic"  # joints-only FK or the full mesh
    disc_lr: float = _range(1e-4, 1e-8, 1.0, "discriminator prior learning rate")
    prior_corpus: int = _range(20000, 100, 10_000_000, "poses sampled for the priors")
    threads: int = _range(0, 0, 1024, "torch CPU threads, 0 = torch's default")
    # in-the-loop SMPLify (Sec. 3.4, SPIN's encoder-regressor-optimizer; hkmr/train/loop.py)
    in_the_loop: bool = False
    smplify_iters: int = _range(100, 1, 10_000, "Adam iterations per SMPLify stage (SPIN 100)")
    smplify_lr: float = _range(0.01, 1e-6, 1.0, "SMPLify Adam step size (SPIN 1e-2)")
    smplify_prior: Literal["vae", "gmm"] = "gmm"  # SMPLify's pose prior (SPIN: a GMM)
    fit_threshold: float = _range(100.0, 0.0, 1e9, "fits with a higher reprojection loss "
                                  "(SPIN px^2 units) do not supervise (SPIN 100)")


@dataclass
class EvalConfig:
    """Real (SPIN-format) test sets evaluated after training and by ``hkmr eval`` (whose
    ``--spin-npz`` etc. flags override these); see ``hkmr.eval.real``."""

    spin_npz: str | None = None  # Table 1 on a SPIN-format set (Human3.6M P1/P2 by camera)
    spin_images: str | None = None
    h36m_regressor: str | None = None  # J_regressor_h36m.npy; found beside spin_npz if empty
    lsp_npz: str | None = None  # Table 5 (left) against LSP's masks
    lsp_images: str | None = None
    lsp_masks: str | None = None
    mpii_npz: str | None = None  # Table 4 (right) with part_visible
    mpii_images: str | None = None


@dataclass
class Config:
    body: BodyConfig = field(default_factory=BodyConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = _range(0, 0, 2**31 - 1)
    # how a run trains (REGIMES); unset: read from model.encoder and model.freeze_encoder
    regime: str | None = field(default=None, metadata={"parse": lambda k, v: _regime(k, v)})

    @property
    def implied_regime(self) -> str:
        """The regime ``model.encoder`` and ``model.freeze_encoder`` describe."""
        if self.model.encoder == "keypoints":
            return "keypoints"
        return "frozen_features" if self.model.freeze_encoder else "end_to_end"


#: the training regimes: images end to end, cached features of a frozen encoder, 2D keypoints
REGIMES = ("end_to_end", "frozen_features", "keypoints")
_NEEDS = {"end_to_end": "an image encoder (model.encoder resnet50 or small_cnn) and "
                        "model.freeze_encoder=false",
          "frozen_features": "an image encoder and model.freeze_encoder=true",
          "keypoints": "model.encoder=keypoints"}


def _regime(key: str, value: Any) -> str | None:
    if value is None or value in REGIMES:
        return value
    raise ConfigError(f"{key}={value!r} is not allowed; choose one of "
                      f"{', '.join(map(repr, REGIMES))}")


class ConfigError(ValueError):
    """An unknown key or an invalid value; the message names the key and what is allowed."""


def _check(key: str, f: dataclasses.Field, value: Any, hint: Any) -> Any:
    if "parse" in f.metadata:  # a structured key with its own checker
        return f.metadata["parse"](key, value)
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of "
                              f"{', '.join(map(repr, typing.get_args(hint)))}")
        return value
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key} may not be empty")
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be true or false")
        return value
    if base in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} must be a number")
        if base is int and float(value) != int(value):
            raise ConfigError(f"{key}={value!r} must be a whole number")
        value = base(value)
        lo, hi = f.metadata.get("range", (None, None))
        if lo is not None and not lo <= value <= hi:
            raise ConfigError(f"{key}={value!r} is out of range; allowed {lo}..{hi}")
        return value
    if base is str:
        return str(value)
    raise ConfigError(f"{key}: unsupported type {hint}")  # pragma: no cover - programming error


def _fields(obj) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(obj)}


def validate(cfg: Config) -> Config:
    """Check every field of ``cfg`` (in place); raise :class:`ConfigError` on the first bad one."""
    for section_name, (_, hint) in _fields(cfg).items():
        value = getattr(cfg, section_name)
        if dataclasses.is_dataclass(value):
            for name, (f, sub_hint) in _fields(value).items():
                setattr(value, name, _check(f"{section_name}.{name}", f,
                                            getattr(value, name), sub_hint))
        else:
            setattr(cfg, section_name, _check(section_name, _fields(cfg)[section_name][0],
                                               value, hint))
    implied = cfg.implied_regime
    if cfg.regime is None:  # a config that does not name its regime (written before the key)
        cfg.regime = implied
    elif cfg.regime != implied:
        raise ConfigError(f"regime={cfg.regime!r} needs {_NEEDS[cfg.regime]}; model.encoder="
                          f"{cfg.model.encoder!r} and model.freeze_encoder="
                          f"{cfg.model.freeze_encoder} are the {implied} regime")
    return cfg


def keys(cfg: Config | None = None) -> list[str]:
    """All dotted keys, e.g. ``model.outer_iters``."""
    cfg = cfg or Config()
    out = []
    for name in _fields(cfg):
        value = getattr(cfg, name)
        out += [f"{name}.{k}" for k in _fields(value)] if dataclasses.is_dataclass(value) else [name]
    return out


def set_key(cfg: Config, key: str, value: Any) -> None:
    """Set a dotted key (not validated until :func:`validate`)."""
    parts = key.split(".")
    target = cfg
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(target) or part not in _fields(target):
            raise ConfigError(f"unknown config key '{key}'; known keys: {', '.join(keys(cfg))}")
        target = getattr(target, part)
    if not dataclasses.is_dataclass(target) or parts[-1] not in _fields(target) or \
            dataclasses.is_dataclass(getattr(target, parts[-1])):
        raise ConfigError(f"unknown config key '{key}'; known keys: {', '.join(keys(cfg))}")
    setattr(target, parts[-1], value)


def get_key(cfg: Config, key: str) -> Any:
    """The value of a dotted key, e.g. ``get_key(cfg, "model.outer_iters")``."""
    target = cfg
    for part in key.split("."):
        target = getattr(target, part)
    return target


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"outer_iters": 2}}`` -> ``{"model.outer_iters": 2}``."""
    flat = {}
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        flat.update(flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return flat


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.outer_iters=2"`` -> ``("model.outer_iters", 2)``; values are YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. model.outer_iters=2")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def parse_overrides(texts) -> dict[str, Any]:
    """``["model.embed_dim=64", ...]`` -> ``{"model.embed_dim": 64}``; a key given twice is a
    ConfigError (it was: the last one won without a word)."""
    out: dict[str, Any] = {}
    for text in texts:
        key, value = parse_override(text)
        if key in out:
            raise ConfigError(f"override {key} is given twice ({key}={out[key]!r} and "
                              f"{text.strip()}); give it once")
        out[key] = value
    return out


Overrides = list[str] | tuple[str, ...] | dict[str, Any]


def make_config(values: dict[str, Any] | None = None, overrides: Overrides = ()) -> Config:
    """A validated config from nested or dotted ``values``, then overrides: ``key=value``
    strings (each key once) or a dict of dotted keys, applied after ``values``."""
    cfg = Config()
    for key, value in flatten(values or {}).items():
        set_key(cfg, key, value)
    items = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    for key, value in items.items():
        set_key(cfg, key, value)
    return validate(cfg)


CONFIGS_DIR = Path(__file__).parent / "configs"


def config_path(name_or_path: str | Path) -> Path:
    """A config file path, or the name of a preset shipped with hkmr (``smoke``, ``cpu``,
    ``paper``)."""
    path = Path(name_or_path)
    if not path.exists() and (CONFIGS_DIR / f"{name_or_path}.yaml").exists():
        return CONFIGS_DIR / f"{name_or_path}.yaml"
    return path


def load_config(path: str | Path | None = None, overrides: Overrides = ()) -> Config:
    """Load a YAML file or preset name (nested sections or dotted keys), apply overrides."""
    values = {}
    if path is not None:
        path = config_path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from err
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys")
    try:
        return make_config(values, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path else str(err)) from None


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)
