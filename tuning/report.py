"""``hkmr report``: aggregate a sweep folder written by Ray Tune (also after a crash)."""

from __future__ import annotations

import json
from pathlib import Path

from .aggregate import aggregate_grid
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


def report_sweep(sweep_dir: str | Path, results_dir: str | Path = "results") -> Path:
    sweep_dir = Path(sweep_dir)
    info_path = sweep_dir / SWEEP_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"{info_path} is missing: not a folder made by 'hkmr sweep'")
    info = json.loads(info_path.read_text())
    exp = load_experiment(info["run"]["experiment_path"])
    out = Path(results_dir) / exp.name / info["preset"]
    return aggregate_grid(load_grid(sweep_dir), exp, info["preset"], out, info)
