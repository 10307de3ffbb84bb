"""The trial specification: what every trial of a sweep shares, typed and checked when the
sweep is planned (as configs are), and how one trial's hkmr config is resolved from it.

A trial is one configuration (or one point of a search space) x one seed. Its Ray Tune config
holds only what varies per trial — ``configuration`` (grid sweeps), the searched keys (search
sweeps), ``seed`` — plus, for grid sweeps, the configuration's own keys as display columns of
the live trial table. Everything else travels as a :class:`TrialSpec` through
``tune.with_parameters``, so it never appears as trial parameters.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hkmr.config import Config, ConfigError

from .presets import ALL_SUITES
from .schema import Experiment, load_experiment

#: the names of the Tune config entries that are not searched keys
CONFIGURATION, SEED = "configuration", "seed"


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of one sweep shares."""

    experiment: str
    experiment_path: str
    preset: str
    storage: str
    overrides: dict[str, Any] = field(default_factory=dict)
    eval_limit: int = 0  # test images per evaluation suite, 0 = all
    degree_limit: int = 0  # test images per degree-of-occlusion pass, 0 = all
    suites: tuple[str, ...] = ALL_SUITES
    workers_per_trial: int = 0  # 0: train in the trial process; >= 1: a Ray Train TorchTrainer
    use_gpu: bool = False
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 1.0  # with use_gpu: a fraction packs several trials on a GPU
    max_failures: int = 2
    # tuning.run.request.TrialCallback objects every trial calls (the tests' fault injection)
    callbacks: tuple = ()

    def __post_init__(self):
        bad = set(self.suites) - set(ALL_SUITES)
        if bad:
            raise ConfigError(f"trial spec: unknown suites {sorted(bad)}; known {ALL_SUITES}")
        for name in ("eval_limit", "degree_limit", "workers_per_trial", "max_failures"):
            if getattr(self, name) < 0:
                raise ConfigError(f"trial spec: {name}={getattr(self, name)} must be >= 0")
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"trial spec: cpus_per_trial={self.cpus_per_trial} must be > 0")
        if not (0 < self.gpus_per_trial <= 1 or float(self.gpus_per_trial).is_integer()):
            raise ConfigError(f"trial spec: gpus_per_trial={self.gpus_per_trial} must be a "
                              "fraction in (0, 1] or a whole number of GPUs")
        object.__setattr__(self, "suites", tuple(self.suites))
        object.__setattr__(self, "callbacks", tuple(self.callbacks))

    @classmethod
    def of(cls, exp: Experiment, preset: str, storage: str, overrides: dict[str, Any],
           callbacks: tuple = (), workers_per_trial: int | None = None) -> "TrialSpec":
        """The spec of a sweep of ``exp`` at ``preset``; ``callbacks``: trial callbacks;
        ``workers_per_trial``: instead of the preset's (``--workers-per-trial``). Every
        configuration's global batch must divide among the workers."""
        p = exp.preset(preset)
        spec = cls(experiment=exp.name, experiment_path=str(exp.path.resolve()),
                   preset=preset, storage=str(storage), overrides=dict(overrides),
                   eval_limit=p.eval_limit, degree_limit=p.degree_limit, suites=tuple(p.suites),
                   workers_per_trial=(p.workers_per_trial if workers_per_trial is None
                                      else workers_per_trial),
                   use_gpu=p.use_gpu, cpus_per_trial=p.cpus_per_trial, gpus_per_trial=p.gpus_per_trial,
                   max_failures=p.max_failures, callbacks=tuple(callbacks))
        if spec.workers_per_trial > 1:
            for configuration in exp.configurations or [None]:
                spec.check_batch(exp.resolve(preset, configuration, overrides=overrides),
                                 configuration)
        return spec

    def check_batch(self, cfg: Config, configuration: str | None = None) -> None:
        """``train.batch_size`` is a step's global batch (:mod:`hkmr.train.distributed`): it
        must divide among the trial's Ray Train workers."""
        workers = max(1, self.workers_per_trial)
        if cfg.train.batch_size % workers:
            where = f"configuration {configuration}: " if configuration else ""
            raise ConfigError(f"{where}train.batch_size={cfg.train.batch_size} is the global "
                              f"batch of a step; it must divide among workers_per_trial="
                              f"{workers} Ray Train workers")

    def with_overrides(self, **values) -> "TrialSpec":
        """The same spec with more config overrides (e.g. the sweep's feature cache)."""
        return dataclasses.replace(self, overrides={**self.overrides, **values})

    def experiment_file(self) -> Experiment:
        return load_experiment(self.experiment_path)

    def resolve(self, config: dict[str, Any]) -> Config:
        """The hkmr config of the trial whose Tune config is ``config``."""
        exp = self.experiment_file()
        search = {k: v for k, v in config.items() if k in exp.search}
        cfg = exp.resolve(self.preset, config.get(CONFIGURATION), config.get(SEED, 0),
                          search_values=search, overrides=self.overrides)
        if not cfg.train.threads:
            cfg.train.threads = max(1, math.floor(self.cpus_per_trial))
        self.check_batch(cfg)
        return cfg


def configuration_label(config: dict[str, Any], exp: Experiment | None = None) -> str:
    """A trial's configuration name; for a search trial its searched values."""
    for key in (CONFIGURATION, "_configuration"):  # "_configuration": sweeps before v0.1's spec
        if key in config:
            return config[key]
    keys = sorted(k for k in config if k != SEED and not k.startswith("_")
                  and (exp is None or k in exp.search))
    return " ".join(f"{k.split('.')[-1]}={config[k]}" for k in keys)


def search_values(config: dict[str, Any], exp: Experiment) -> dict[str, Any]:
    """The searched keys of a trial's Tune config (none for a grid sweep)."""
    return {k: v for k, v in config.items() if k in exp.search}
