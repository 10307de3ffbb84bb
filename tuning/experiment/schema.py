"""Experiments: which configurations a sweep trains, with which presets and seeds.

An experiment is a YAML file (``tuning/experiments/*.yaml``) written in the config
vocabulary of :mod:`hkmr.config` (dotted keys such as ``model.outer_iters``):

* ``base``: keys shared by every trial;
* ``configurations``: named sets of keys (the columns or rows of the paper's table), trained
  as a grid of configurations x seeds; or ``search``: distributions of keys for Optuna
  (``choice``, ``uniform``, ``loguniform``, ``randint``);
* ``primary``: the primary endpoint (default ``P1_standard_mpjpe``, P1 MPJPE on the standard
  test set) and ``reference``: the configuration the others are compared with (a table's own
  ``reference`` defaults to it); ``margin`` and ``baseline``: ``hkmr choose``'s non-inferiority
  margin δ (mm) and the searched keys' reference values (the configuration the user would
  otherwise run; ``{}``: the config's own);
* ``suites``: the evaluation suites its trials run (default: all four);
* ``confirmatory``: the family of comparisons the claim is about, tested with Holm over the
  family (:mod:`tuning.experiment.confirmatory`; default: every configuration against the
  reference on the primary endpoint's metric, P1 and P2); everything else is descriptive;
* ``tables``: how the aggregated metrics are laid out, one typed layout each
  (:mod:`tuning.experiment.layouts`); a table's ``reference`` configuration adds the paired
  per-seed differences to it; ``plots``: ``[degrees]`` draws Fig. 6;
* ``regimes`` and ``presets``: which of the shipped presets it offers and what it adds to them
  (:mod:`tuning.experiment.presets`: a scale — smoke, cpu, paper — in a regime).

Everything is resolved and validated before Ray starts, so a bad experiment or override
fails at once with the key and value.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hkmr.config import Config, ConfigError, load_config
from hkmr.config import parse_overrides as parse_key_values

from .confirmatory import Confirmatory, confirmatory_family
from .layouts import TableLayout, table_layout
from .presets import ALL_SUITES, EXPERIMENTS_DIR, Preset, build_presets

_DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")


@dataclass
class Experiment:
    name: str
    title: str
    path: Path
    metric: str = "val_mpjpe"
    primary: str = "P1_standard_mpjpe"  # the primary endpoint: what --target-mde sizes
    reference: str | None = None  # the configuration the others are compared with
    margin: float = 1.0  # hkmr choose: the non-inferiority margin δ (mm)
    baseline: dict[str, Any] = field(default_factory=dict)  # hkmr choose: the reference values
    base: dict[str, Any] = field(default_factory=dict)
    configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    search: dict[str, dict[str, list]] = field(default_factory=dict)
    suites: list[str] | None = None  # evaluation suites of its trials; None = all
    regimes: list[str] | None = None  # regimes whose presets it offers; None = all
    tables: list[TableLayout] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    presets: dict[str, Preset] = field(default_factory=dict)
    confirmatory: Confirmatory | None = None  # the family the claim is about (tested)

    @property
    def is_search(self) -> bool:
        return bool(self.search)

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise ConfigError(f"experiment {self.name}: unknown preset {name!r}; choose one of "
                              f"{', '.join(self.presets)}")
        return self.presets[name]

    def resolve(self, preset: str, configuration: str | None = None, seed: int = 0,
                search_values: dict[str, Any] | None = None,
                overrides: dict[str, Any] | None = None) -> Config:
        """The full, validated hkmr config of one trial. Later wins: the preset's config file,
        ``base``, the preset's overrides, the configuration (or searched values), then the
        command line's overrides."""
        p = self.preset(preset)
        values = dict(self.base)
        values.update(p.overrides)
        if configuration is not None:
            values.update(self.configurations[configuration])
        values.update(search_values or {})
        values.update(overrides or {})
        values["seed"] = seed
        return load_config(p.config, values)

    def recorded_yaml(self) -> str:
        """The experiment as a results folder records it: self-contained, every preset
        complete (so a later change of ``tuning/presets.yaml`` does not change what a recorded
        sweep was)."""
        raw = {"name": self.name, "title": self.title, "metric": self.metric,
               "primary": self.primary, "reference": self.reference, "margin": self.margin,
               "baseline": self.baseline,
               "base": self.base, "configurations": self.configurations, "search": self.search,
               "suites": self.suites,
               "confirmatory": self.confirmatory.to_dict() if self.confirmatory else None,
               "tables": [table.to_dict() for table in self.tables], "plots": self.plots,
               "presets": {name: dataclasses.asdict(p) for name, p in self.presets.items()}}
        return yaml.safe_dump({k: v for k, v in raw.items() if v not in (None, {}, [])},
                              sort_keys=False, allow_unicode=True)


def experiment_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    named = EXPERIMENTS_DIR / f"{name_or_path}.yaml"
    if named.exists():
        return named
    known = ", ".join(sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml")))
    raise ConfigError(f"unknown experiment {str(name_or_path)!r}: not a file and not one of {known}")


def load_experiment(name_or_path: str | Path, text: str | None = None) -> Experiment:
    """Read and validate an experiment: every configuration of every preset must resolve.
    ``text``: the experiment's YAML as a sweep recorded it (``name_or_path`` then only names
    it)."""
    path = Path(name_or_path) if text is not None else experiment_path(name_or_path)
    raw = yaml.safe_load(text if text is not None else path.read_text()) or {}
    known = {f.name for f in dataclasses.fields(Experiment)} - {"path"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{path}: unknown experiment keys {sorted(unknown)}; known: "
                          f"{sorted(known)}")
    bad = sorted(set(raw.get("suites") or ()) - set(ALL_SUITES))
    if bad:
        raise ConfigError(f"{path}: unknown suites {bad}; known: {list(ALL_SUITES)}")
    presets = build_presets(path, raw.pop("presets", None), raw.get("regimes"), raw.get("suites"))
    tables = []
    for table in raw.pop("tables", None) or []:
        try:
            tables.append(table_layout(table, raw.get("reference")))
        except (ConfigError, TypeError) as err:
            raise ConfigError(f"{path}: {err}") from None
    family = raw.pop("confirmatory", None)
    exp = Experiment(path=path, presets=presets, tables=tables,
                     **{"name": path.stem, "title": path.stem, **raw})
    if bool(exp.configurations) == bool(exp.search):
        raise ConfigError(f"{path}: give either 'configurations' or 'search'")
    for key, dist in exp.search.items():
        if len(dist) != 1 or next(iter(dist)) not in _DISTRIBUTIONS:
            raise ConfigError(f"{path}: search.{key} must be one of {_DISTRIBUTIONS}, got {dist}")
    if exp.reference is not None and exp.reference not in exp.configurations:
        raise ConfigError(f"{path}: reference {exp.reference!r} is not one of its "
                          f"configurations {sorted(exp.configurations)}")
    if not exp.is_search:
        exp.confirmatory = confirmatory_family(family, exp.reference, exp.primary,
                                               list(exp.configurations), str(path))
    if not exp.margin > 0:
        raise ConfigError(f"{path}: margin={exp.margin!r} must be a positive number of mm")
    for table in exp.tables:
        reference = [table.reference] if table.reference else []
        for name in table.configurations() + reference:
            if name not in exp.configurations:
                raise ConfigError(f"{path}: table '{table.title}' names unknown "
                                  f"configuration {name!r}")
    for preset_name, preset in exp.presets.items():
        bad = set(preset.suites) - set(ALL_SUITES)
        if bad:
            raise ConfigError(f"{path}: preset {preset_name}: unknown suites {sorted(bad)}")
        for configuration, values in _examples(exp):
            try:
                exp.resolve(preset_name, configuration, search_values=values)
            except ConfigError as err:
                raise ConfigError(f"{path}: preset {preset_name}, configuration "
                                  f"{configuration or values}: {err}") from None
    return exp


def _examples(exp: Experiment):
    """Every grid configuration, or the corners of the search space, for validation."""
    if exp.configurations:
        return [(name, None) for name in exp.configurations]
    options = []
    for key, dist in exp.search.items():
        kind, args = next(iter(dist.items()))
        options.append([(key, v) for v in (args if kind == "choice" else [args[0], args[-1]])])
    return [(None, dict(combo)) for combo in itertools.product(*options)]


def parse_overrides(texts: list[str]) -> dict[str, Any]:
    """``["model.embed_dim=64", ...]`` -> ``{"model.embed_dim": 64}`` (validated later; a key
    given twice is a ConfigError)."""
    return parse_key_values(texts)


def check_overrides_keep_configurations(exp: "Experiment", overrides: dict[str, Any]) -> None:
    """ConfigError when a command-line override sets a key that a configuration (or the
    search) of ``exp`` sets: it would replace that configuration's own value (``model.prior=
    vae`` made the Discriminator column a second VAE) and the tables would compare something
    else under the same names."""
    for key in overrides:
        setters = [name for name, values in exp.configurations.items() if key in values]
        if setters:
            raise ConfigError(
                f"override {key}={overrides[key]!r} replaces the value configuration(s) "
                f"{', '.join(setters)} of experiment {exp.name} set "
                f"({exp.configurations[setters[0]][key]!r}), so the table would compare "
                "something else under the same names; drop the override, or add a "
                "configuration in an experiment file of your own")
        if key in exp.search:
            raise ConfigError(f"override {key}={overrides[key]!r}: experiment {exp.name} "
                              "searches this key; drop the override")
