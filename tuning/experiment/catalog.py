"""The shipped experiments and presets as the command line shows them, read from the data so
that the help cannot drift from it: ``hkmr sweep --list`` (:func:`listing`) and the help of
``hkmr sweep`` and ``hkmr choose-iterations`` (:func:`experiment_help`, :func:`preset_help`).

The help texts read only the names of ``tuning/experiments/*.yaml`` and, with PyYAML,
``tuning/presets.yaml`` and the experiments' ``presets:`` (:mod:`tuning.experiment.presets`),
so that ``hkmr --help`` imports neither torch nor Ray. :func:`listing` loads and validates each
experiment (:func:`tuning.experiment.schema.load_experiment`, which imports hkmr's configs).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .presets import EXPERIMENTS_DIR

if TYPE_CHECKING:
    from .presets import Preset
    from .schema import Experiment

#: shipped experiments that ``hkmr sweep`` refuses, and the command that runs each
RUN_BY = {"choose_iterations": "hkmr choose-iterations"}


def experiment_names(folder: Path = EXPERIMENTS_DIR) -> list[str]:
    """Every shipped experiment: the stems of ``folder/*.yaml``, sorted."""
    return sorted(path.stem for path in folder.glob("*.yaml"))


def sweep_experiments(folder: Path = EXPERIMENTS_DIR) -> list[str]:
    """The shipped experiments that ``hkmr sweep`` runs (all but those of :data:`RUN_BY`)."""
    return [name for name in experiment_names(folder) if name not in RUN_BY]


def _escape(text: str) -> str:
    """``text`` for an argparse help string (which is %-formatted)."""
    return text.replace("%", "%%")


def experiment_help(folder: Path = EXPERIMENTS_DIR) -> str:
    """The help of ``hkmr sweep``'s EXPERIMENT argument."""
    others = "; ".join(f"{name} is run by '{command}'" for name, command in RUN_BY.items()
                       if (folder / f"{name}.yaml").exists())
    return _escape(f"a shipped experiment ({', '.join(sweep_experiments(folder))}; "
                   f"tuning/experiments/{'; ' + others if others else ''}) or an experiment "
                   "YAML file; --list describes each one (with --list: only this one)")


def _experiment_presets(names: Iterable[str], folder: Path) -> dict[str, list[str]]:
    """The preset names each experiment of ``names`` offers, from its YAML file's ``presets:``,
    ``regimes:`` and ``suites:`` and ``tuning/presets.yaml`` (no hkmr config is loaded). An
    experiment whose file does not read is left out: the help must not fail on it."""
    import yaml

    from hkmr.config import ConfigError

    from .presets import build_presets

    offered = {}
    for name in names:
        path = folder / f"{name}.yaml"
        try:
            raw = yaml.safe_load(path.read_text()) or {}
            offered[name] = list(build_presets(path, raw.get("presets"), raw.get("regimes"),
                                               raw.get("suites")))
        except (ConfigError, OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
            continue
    return offered


def preset_help(experiments: Iterable[str] | None = None, folder: Path = EXPERIMENTS_DIR,
                default: str = "smoke") -> str:
    """The help of ``--preset``: every shipped preset of ``tuning/presets.yaml`` (a scale in a
    regime), each scale's and regime's description, and what ``experiments`` (default: those
    ``hkmr sweep`` runs) offer beyond or short of them. A file that does not read is named
    with its error: every command's help is built from the same parser, so it must not fail."""
    import yaml

    from hkmr.config import ConfigError

    from .presets import PRESETS_FILE, catalogue

    try:
        cat = catalogue()
    except (ConfigError, OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as err:
        return _escape(f"a preset of {PRESETS_FILE} (default: {default}); it cannot be read: "
                       f"{err}")
    scales = "; ".join(f"{scale}: {values.get('about', '')}".rstrip(": ")
                       for scale, values in cat.scales.items())
    regimes = "; ".join(
        f"{regime}{' (' + spec['about'] + ')' if spec.get('about') else ''}: "
        + ", ".join(cat.name(scale, regime) for scale in spec["configs"])
        for regime, spec in cat.regimes.items())
    shipped = list(cat.offered(list(cat.regimes)))
    added: dict[str, list[str]] = {}
    lacking = []
    offered = _experiment_presets(sweep_experiments(folder) if experiments is None
                                  else experiments, folder)
    for name, presets in offered.items():
        for preset in presets:
            if preset not in shipped:
                added.setdefault(preset, []).append(name)
        missing = [p for p in shipped if p not in presets]
        if missing:
            lacking.append(f"{name} lacks {', '.join(missing)}")
    notes = [f"{', '.join(names)} add{'s' if len(names) == 1 else ''} {preset}"
             for preset, names in added.items()] + lacking
    notes_text = f" ({'; '.join(notes)})" if notes else ""
    return _escape(f"a scale in a regime (tuning/presets.yaml; default: {default}). Scales: "
                   f"{scales}. Regimes and their presets: {regimes}. An experiment may add "
                   f"presets of its own or offer fewer{notes_text}; 'hkmr sweep --list' shows "
                   "what each preset of each experiment runs, and an unknown preset is "
                   "refused with the experiment's list")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items())
    return str(value)


def preset_summary(preset: Preset, search: bool = False, candidates: bool = False) -> str:
    """What a preset runs, on one line: its hkmr config, seeds (and samples of a search),
    suites, limits, overrides and resources."""
    parts = [f"config {preset.config}"]
    if search:
        parts.append(f"{preset.samples} sample{'s' if preset.samples != 1 else ''}")
    parts.append(f"{preset.seeds} seed{'s' if preset.seeds != 1 else ''}")
    if candidates:
        parts.append(f"{preset.candidates} candidates")
    parts.append(f"suites {','.join(preset.suites)}")
    parts.append(f"eval_limit {preset.eval_limit or 'all'}")
    if "degrees" in preset.suites:
        parts.append(f"degree_limit {preset.degree_limit or 'all'}")
    if preset.overrides:
        parts.append(f"overrides {_value(preset.overrides)}")
    where = "CPU"
    if preset.use_gpu:
        where = "GPU" if preset.gpus_per_trial == 1 else f"{preset.gpus_per_trial:g} GPU"
    if preset.workers_per_trial:
        where += (f", Ray Train {preset.workers_per_trial} worker"
                  f"{'s' if preset.workers_per_trial != 1 else ''} a trial")
    if preset.cpus_per_trial != 1:
        where += f", {preset.cpus_per_trial:g} CPUs a trial"
    return "; ".join(parts) + f"; {where}"


def _rows(rows: list[tuple[str, str]], indent: str = "    ") -> list[str]:
    width = max((len(name) for name, _ in rows), default=0)
    return [f"{indent}{name:<{width}}  {text}".rstrip() for name, text in rows]


def describe(exp: Experiment) -> str:
    """An experiment for ``hkmr sweep --list``: its title, what it trains or searches and
    what each of its presets runs."""
    command = RUN_BY.get(exp.name)
    run = f"{command} --preset PRESET" if command else f"hkmr sweep {exp.name} --preset PRESET"
    lines = [f"{exp.name}: {exp.title}" + (f" (run by {command}, not hkmr sweep)"
                                            if command else ""),
             f"  run: {run}"]
    base = f"; base: {_value(exp.base)}" if exp.base else ""
    if exp.is_search:
        lines.append(f"  searched keys ({len(exp.search)}{base}):")
        lines += _rows([(key, " ".join(f"{kind} {args}" for kind, args in dist.items()))
                        for key, dist in exp.search.items()])
    else:
        reference = f"; reference: {exp.reference}" if exp.reference else ""
        lines.append(f"  configurations ({len(exp.configurations)}{reference}{base}):")
        lines += _rows([(name, _value(values) or "(the base only)")
                        for name, values in exp.configurations.items()])
    lines.append(f"  presets ({len(exp.presets)}):")
    lines += _rows([(name, preset_summary(preset, exp.is_search, candidates=bool(command)))
                    for name, preset in exp.presets.items()])
    return "\n".join(lines)


def listing(names: Iterable[str] | None = None) -> tuple[str, list[str]]:
    """``hkmr sweep --list``: every shipped experiment (or those of ``names``: shipped names
    or YAML files) described, and the names of those that failed to load (each described by
    its error instead)."""
    from hkmr.config import ConfigError

    from .schema import load_experiment

    names = experiment_names() if names is None else list(names)
    blocks, failed = [], []
    for name in names:
        try:
            blocks.append(describe(load_experiment(name)))
        except (ConfigError, OSError) as err:
            failed.append(name)
            blocks.append(f"{Path(name).stem}: cannot be loaded: {err}")
    return "\n\n".join(blocks) + "\n", failed
