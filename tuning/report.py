"""``hkmr report``: aggregate a sweep folder written by Ray Tune (also after a crash), or
re-render a results folder's tables from its ``trials.parquet`` (no Ray, no re-training): the
rows and the sweep's command, revision and date stored in the Parquet schema are kept, the
layout comes from the experiment file as it is now."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from .aggregate import aggregate_grid, upgrade_trials, write_results
from .space import Experiment, load_experiment
from .sweep import SWEEP_FILE


def load_grid(sweep_dir: str | Path):
    """The ResultGrid of a sweep folder, read by Ray Tune's own ``ExperimentAnalysis``."""
    from ray import tune
    from ray.tune import ExperimentAnalysis, ResultGrid

    path = Path(sweep_dir).resolve()
    if not tune.Tuner.can_restore(str(path)):
        raise FileNotFoundError(f"{path} is not a Ray Tune sweep folder (no experiment state)")
    return ResultGrid(ExperimentAnalysis(str(path)))


def recorded_experiment(info: dict, folder: Path) -> Experiment:
    """The experiment a results folder was made with: the YAML its sweep recorded; for older
    folders the shipped experiment of that name, or the recorded file (found again under the
    results root when the results folder moved with the repository)."""
    name = info["experiment"]
    if "experiment_yaml" in info:
        return load_experiment(f"{name}.yaml", text=info["experiment_yaml"])
    recorded = (info.get("spec") or info.get("run") or {}).get("experiment_path", "")
    candidates = [recorded] + ([folder.parents[1] / recorded.split("/results/", 1)[1]]
                               if "/results/" in recorded else [])
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return load_experiment(candidate)
    return load_experiment(name)


def _recorded(folder: Path):
    table = pq.read_table(folder / "trials.parquet")
    meta = (table.schema.metadata or {}).get(b"hkmr_sweep")
    if meta is None:
        raise ValueError(f"{folder / 'trials.parquet'} has no 'hkmr_sweep' schema metadata: "
                         "not written by hkmr sweep")
    return table, json.loads(meta)


def results_experiment(folder: str | Path) -> Experiment:
    """The experiment a results folder (with a ``trials.parquet``) was made with."""
    return recorded_experiment(_recorded(Path(folder))[1], Path(folder))


def rerender_results(folder: str | Path) -> Path:
    """Rewrite ``tables.md`` and the plots of a results folder from its ``trials.parquet``."""
    folder = Path(folder)
    table, info = _recorded(folder)
    exp = recorded_experiment(info, folder)
    return write_results(upgrade_trials(table.replace_schema_metadata(None)), exp,
                         info["preset"], folder, info)


def report_sweep(sweep_dir: str | Path, results_dir: str | Path = "results") -> Path:
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / "trials.parquet").exists():
        return rerender_results(sweep_dir)
    info_path = sweep_dir / SWEEP_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"{info_path} is missing: not a folder made by 'hkmr sweep'")
    info = json.loads(info_path.read_text())
    spec = info.get("spec") or info["run"]  # "run": sweeps before the typed trial spec
    exp = load_experiment(spec["experiment_path"])
    out = Path(results_dir) / exp.name / info["preset"]
    return aggregate_grid(load_grid(sweep_dir), exp, info["preset"], out, info)
