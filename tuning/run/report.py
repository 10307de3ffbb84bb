"""``hkmr report``: aggregate a sweep folder written by Ray Tune (also after a crash; a local
folder or a URI such as ``s3://bucket/prefix/NAME``, read through ``pyarrow.fs``), or
re-render a results folder's tables from its ``trials.parquet`` (no Ray, no re-training): the
rows and the sweep's command, revision, date and experiment stored in the Parquet schema are
kept; the tables' layout is the shipped experiment's when its configurations are the recorded
ones (:func:`with_current_layout`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq

from hkmr.config import ConfigError

from ..analysis.aggregate import aggregate_grid, upgrade_trials, write_results
from ..experiment.schema import Experiment, load_experiment
from .identity import newest_state
from .storage import RESULTS_FOLDER, exists, is_uri, join, read_json, upload_folder
from .driver import SWEEP_FILE


def load_grid(sweep_dir: str | Path):
    """The ResultGrid of a sweep folder or URI, read by Ray Tune's own ``ExperimentAnalysis``."""
    from ray import tune
    from ray.tune import ExperimentAnalysis, ResultGrid

    path = str(sweep_dir) if is_uri(sweep_dir) else Path(sweep_dir).resolve()
    if not tune.Tuner.can_restore(str(path)):
        raise FileNotFoundError(f"{path} is not a Ray Tune sweep folder (no experiment state)")
    newest_state(str(path))  # whole JSON, or an error naming the file
    return ResultGrid(ExperimentAnalysis(str(path)))


def recorded_experiment(info: dict, folder: Path) -> Experiment:
    """The experiment a results folder was made with: the YAML its sweep recorded; for older
    folders the shipped experiment of that name, or the recorded file (found again under the
    results root when the results folder moved with the repository)."""
    name = info["experiment"]
    if "experiment_yaml" in info:
        return with_current_layout(load_experiment(f"{name}.yaml", text=info["experiment_yaml"]))
    recorded = (info.get("spec") or info.get("run") or {}).get("experiment_path", "")
    candidates = [recorded] + ([folder.parents[1] / recorded.split("/results/", 1)[1]]
                               if "/results/" in recorded else [])
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return load_experiment(candidate)
    return load_experiment(name)


def with_current_layout(recorded: Experiment) -> Experiment:
    """The recorded experiment with the shipped experiment's tables and plots when both have
    the same configurations: a table added later (Table 1's occluded joints) renders from the
    trials' metrics; what ran, and how, stays the recorded one. A folder recorded before
    experiments declared their confirmatory family takes the shipped declaration (restricted to
    the configurations it ran)."""
    try:
        shipped = load_experiment(recorded.name)
    except (ConfigError, FileNotFoundError):
        return recorded
    family = recorded.confirmatory
    if (shipped.confirmatory and (family is None or not family.declared)
            and shipped.reference == recorded.reference):
        recorded = dataclasses.replace(recorded, confirmatory=shipped.confirmatory.restricted(
            recorded.configurations))
    if shipped.configurations != recorded.configurations or shipped.search != recorded.search:
        return recorded
    return dataclasses.replace(recorded, tables=shipped.tables, plots=shipped.plots)


def read_recorded(folder: Path):
    """A results folder's trials table and the sweep info its schema metadata records."""
    table = pq.read_table(folder / "trials.parquet")
    meta = (table.schema.metadata or {}).get(b"hkmr_sweep")
    if meta is None:
        raise ValueError(f"{folder / 'trials.parquet'} has no 'hkmr_sweep' schema metadata: "
                         "not written by hkmr sweep")
    return table, json.loads(meta)


def results_experiment(folder: str | Path) -> Experiment:
    """The experiment a results folder (with a ``trials.parquet``) was made with."""
    return recorded_experiment(read_recorded(Path(folder))[1], Path(folder))


def rerender_results(folder: str | Path) -> Path:
    """Rewrite ``tables.md`` and the plots of a results folder from its ``trials.parquet``."""
    folder = Path(folder)
    table, info = read_recorded(folder)
    exp = recorded_experiment(info, folder)
    return write_results(upgrade_trials(table.replace_schema_metadata(None)), exp,
                         info["preset"], folder, info)


def report_sweep(sweep_dir: str | Path, results_dir: str | Path = "results") -> Path:
    """Aggregate the sweep at ``sweep_dir`` (``STORAGE/NAME``, a folder or a URI) into
    ``results_dir/EXPERIMENT/PRESET`` (for a URI also back to ``STORAGE/NAME/hkmr_results``),
    or re-render a local results folder."""
    uri = is_uri(sweep_dir)
    if not uri and (Path(sweep_dir) / "trials.parquet").exists():
        return rerender_results(sweep_dir)
    info_path = join(str(sweep_dir), SWEEP_FILE)
    if not exists(info_path):
        raise FileNotFoundError(f"{info_path} is missing: not a folder made by 'hkmr sweep'")
    info = read_json(info_path, "sweep record")
    spec = info.get("spec") or info["run"]  # "run": sweeps before the typed trial spec
    exp = _sweep_experiment(info, spec)
    out = Path(results_dir) / exp.name / info["preset"]
    out = aggregate_grid(load_grid(sweep_dir), exp, info["preset"], out, info)
    if uri:
        upload_folder(out, join(str(sweep_dir), RESULTS_FOLDER))
    return out


def _sweep_experiment(info: dict, spec: dict) -> Experiment:
    """The experiment of a sweep: the file its spec names, or (when that is not on this
    machine, e.g. a sweep read from object storage) the YAML the sweep recorded."""
    path = spec["experiment_path"]
    if Path(path).is_file() or "experiment_yaml" not in info:
        return load_experiment(path)
    return load_experiment(Path(path).name, text=info["experiment_yaml"])
