"""``hkmr report``: aggregate a sweep folder written by Ray Tune (also after a crash), or
re-render a results folder's tables from its ``trials.parquet`` (no Ray, no re-training): the
rows and the sweep's command, revision and date stored in the Parquet schema are kept, the
layout comes from the experiment file as it is now."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from .aggregate import aggregate_grid, write_results
from .space import load_experiment
from .sweep import SWEEP_FILE


def load_grid(sweep_dir: str | Path):
    """The ResultGrid of a sweep folder, through Ray Tune's own restore."""
    from ray import tune

    from .trainable import hkmr_trial

    path = Path(sweep_dir).resolve()
    if not tune.Tuner.can_restore(str(path)):
        raise FileNotFoundError(f"{path} is not a Ray Tune sweep folder (no experiment state)")
    return tune.Tuner.restore(str(path), trainable=hkmr_trial).get_results()


def rerender_results(folder: str | Path) -> Path:
    """Rewrite ``tables.md`` and the plots of a results folder from its ``trials.parquet``."""
    folder = Path(folder)
    table = pq.read_table(folder / "trials.parquet")
    meta = (table.schema.metadata or {}).get(b"hkmr_sweep")
    if meta is None:
        raise ValueError(f"{folder / 'trials.parquet'} has no 'hkmr_sweep' schema metadata: "
                         "not written by hkmr sweep")
    info = json.loads(meta)
    exp = load_experiment(info["experiment"])
    return write_results(table.replace_schema_metadata(None), exp, info["preset"], folder, info)


def report_sweep(sweep_dir: str | Path, results_dir: str | Path = "results") -> Path:
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / "trials.parquet").exists():
        return rerender_results(sweep_dir)
    info_path = sweep_dir / SWEEP_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"{info_path} is missing: not a folder made by 'hkmr sweep'")
    info = json.loads(info_path.read_text())
    exp = load_experiment(info["run"]["experiment_path"])
    out = Path(results_dir) / exp.name / info["preset"]
    return aggregate_grid(load_grid(sweep_dir), exp, info["preset"], out, info)
