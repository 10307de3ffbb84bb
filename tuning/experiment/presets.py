"""Sweep presets: a scale (smoke, cpu, paper) in a regime (end to end, frozen features,
keypoints), each defined once in ``tuning/presets.yaml``.

A preset is named ``SCALE`` (end to end), ``SCALE_frozen`` or ``SCALE_keypoints``. Its values
are, later winning: the scale's, the regime's hkmr config and its ``settings`` at that scale,
then what the experiment adds. ``overrides`` (config keys) merge; every other key replaces.

An experiment offers every preset of the ``regimes`` it lists (default: all) and adds, under
``presets:``, only what it needs:

* a scale name (``smoke: {degree_limit: 28}``): to that scale in every regime;
* a preset name (``cpu_keypoints: {seeds: 6}``): to that preset only (after the scale's);
* ``NAME: {from: cpu_keypoints, overrides: {...}}``: a new preset built on another;
* an entry with ``config:``: a complete preset of its own. An experiment whose presets are
  all complete (the form results folders record) offers exactly those.

The evaluation suites are the experiment's ``suites`` (default: all) narrowed to those the
regime can run; ``degree_limit`` is 0 unless the ``degrees`` suite runs.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hkmr.config import ConfigError

PRESETS_FILE = Path(__file__).parents[1] / "presets.yaml"
#: the shipped experiments, ``tuning/experiments/*.yaml``
EXPERIMENTS_DIR = Path(__file__).parents[1] / "experiments"
ALL_SUITES = ("table1", "degrees", "invisible", "segmentation")
REGIMES = ("end_to_end", "frozen_features", "keypoints")


@dataclass
class Preset:
    config: str  # an hkmr config name (hkmr/configs: smoke, cpu_keypoints, ...) or file
    seeds: int = 3
    samples: int = 0  # trials of a search experiment
    candidates: int = 3  # choose_iterations: leading (T, P) re-run with seeds
    overrides: dict[str, Any] = field(default_factory=dict)
    eval_limit: int = 0  # test images per evaluation suite, 0 = all
    degree_limit: int = 0  # test images per degree-of-occlusion pass, 0 = all
    suites: list[str] = field(default_factory=lambda: list(ALL_SUITES))
    workers_per_trial: int = 0  # 0: train in the trial process; >= 1: a Ray Train TorchTrainer
    use_gpu: bool = False
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 1.0  # with use_gpu: GPUs of a trial (of each Train worker); 0.125:
    # eight small trials share a GPU (Ray's fractional GPUs)
    max_failures: int = 2  # retries of a crashed trial (it resumes from its checkpoint)
    grace_epochs: int = 1  # ASHA: epochs before a search trial may be stopped


_PRESET_KEYS = {f.name for f in dataclasses.fields(Preset)}


@dataclass(frozen=True)
class Catalogue:
    """The shipped scales and regimes (``tuning/presets.yaml``)."""

    scales: dict[str, dict[str, Any]]
    regimes: dict[str, dict[str, Any]]

    def name(self, scale: str, regime: str) -> str:
        return scale + self.regimes[regime].get("suffix", "")

    def offered(self, regimes: list[str]) -> dict[str, tuple[str, str]]:
        """Preset name -> (scale, regime) of every shipped preset of ``regimes``."""
        return {self.name(scale, regime): (scale, regime)
                for regime in regimes for scale in self.regimes[regime]["configs"]}

    def values(self, scale: str, regime: str) -> dict[str, Any]:
        """The preset keys of ``scale`` in ``regime`` before an experiment adds to them."""
        spec = self.regimes[regime]
        out = merge({"config": spec["configs"][scale]}, _keys_only(self.scales[scale]))
        return merge(out, spec.get("settings", {}).get(scale, {}))


def _keys_only(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "about"}


@functools.cache
def catalogue(path: Path = PRESETS_FILE) -> Catalogue:
    raw = yaml.safe_load(path.read_text()) or {}
    cat = Catalogue(scales=raw.get("scales", {}), regimes=raw.get("regimes", {}))
    if set(cat.regimes) != set(REGIMES):
        raise ConfigError(f"{path}: regimes must be {REGIMES}, got {sorted(cat.regimes)}")
    for where, values in [*((f"scale {s}", _keys_only(v)) for s, v in cat.scales.items()),
                          *((f"regime {r} at {s}", v) for r, spec in cat.regimes.items()
                            for s, v in spec.get("settings", {}).items())]:
        _check_keys(path, where, values)
    return cat


def _check_keys(path, where: str, values: dict[str, Any]) -> None:
    bad = set(values) - _PRESET_KEYS
    if bad:
        raise ConfigError(f"{path}: {where}: unknown preset keys {sorted(bad)}; known: "
                          f"{sorted(_PRESET_KEYS)}")


def merge(values: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``more`` on top: ``overrides`` merge, every other key replaces."""
    out = {**values, **more}
    if "overrides" in values and "overrides" in more:
        out["overrides"] = {**values["overrides"], **more["overrides"]}
    return out


def _finish(values: dict[str, Any], regime_suites: list[str] | None) -> Preset:
    if regime_suites is not None:
        values["suites"] = [s for s in values["suites"] if s in regime_suites]
    if "degrees" not in values["suites"]:
        values["degree_limit"] = 0
    return Preset(**values)


def build_presets(path: Path, raw: dict[str, dict] | None, regimes: list[str] | None,
                  suites: list[str] | None) -> dict[str, Preset]:
    """The presets of an experiment file at ``path``: its ``presets:`` (``raw``), ``regimes:``
    and ``suites:``; see the module docstring."""
    raw = dict(raw or {})
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: preset {name}: expected a mapping of preset keys")
        _check_keys(path, f"preset {name}", {k: v for k, v in values.items() if k != "from"})
    complete = {n: v for n, v in raw.items() if "config" in v}
    if complete and len(complete) == len(raw) and regimes is None:
        return {name: Preset(**values) for name, values in complete.items()}
    cat = catalogue()
    regimes = list(REGIMES if regimes is None else regimes)
    unknown = sorted(set(regimes) - set(REGIMES))
    if unknown:
        raise ConfigError(f"{path}: unknown regimes {unknown}; known: {list(REGIMES)}")
    base_suites = list(ALL_SUITES if suites is None else suites)
    offered = cat.offered(regimes)
    presets: dict[str, tuple[dict, list | None]] = {}
    for name, (scale, regime) in offered.items():
        values = merge(cat.values(scale, regime), {"suites": base_suites})
        values = merge(values, raw.get(scale, {}))
        if name != scale:
            values = merge(values, raw.get(name, {}))
        presets[name] = (values, cat.regimes[regime].get("suites"))
    for name, values in raw.items():
        if "config" in values:
            presets[name] = (dict(values), None)
        elif "from" in values:
            base = values["from"]
            if base not in presets:
                raise ConfigError(f"{path}: preset {name}: 'from: {base}' is not one of its "
                                  f"presets {sorted(presets)}")
            add = {k: v for k, v in values.items() if k != "from"}
            presets[name] = (merge(presets[base][0], add), presets[base][1])
        elif name not in cat.scales and name not in offered:
            raise ConfigError(f"{path}: preset {name!r} is not a scale ({', '.join(cat.scales)}) "
                              f"nor one of its presets ({', '.join(offered)}); a new preset "
                              "needs 'from: PRESET' or a 'config:'")
    return {name: _finish(dict(values), narrow) for name, (values, narrow) in presets.items()}
