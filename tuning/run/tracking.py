"""A sweep in MLflow (``hkmr sweep --tracking mlflow[:URI]``): one parent run per sweep, one
child run per trial, logged from the driver after aggregation (:mod:`hkmr.tracking`).

Ray's ``MLflowLoggerCallback`` logs a trial's Tune config as its params — for hkmr the
configuration name and seed, not the trial's config — and knows no parent run or sweep
artefacts; so the driver logs from what it already has: each trial's resolved config
(:meth:`TrialSpec.resolve`) as dotted params plus the seed, its per-epoch and final metrics
from the trials table, tags (experiment, preset, configuration, seed, status, git revision,
command), and under the parent run ``tables.md``, the plots, ``trials.parquet`` and
``epochs.parquet`` as artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path

from hkmr.config import flatten, to_dict
from hkmr.tracking import RunRecord, Tracker

from ..analysis.aggregate import trials_table

#: a trial's status in the trials table -> its MLflow run status
_STATUS = {"ok": "FINISHED", "stopped": "KILLED", "failed": "FAILED", "error": "FAILED"}
_NOT_FINAL = {"trial_id", "configuration", "seed", "status", "error", "search", "epochs_json",
              "node_id", "regime", "encoder_hash"}


def track_sweep(uri: str, grid, plan, out_dir: Path, info: dict) -> str:
    """Log the sweep of ``plan`` (its ResultGrid ``grid``, results in ``out_dir``) to the
    MLflow store at ``uri``; returns the parent run's id."""
    exp = plan.experiment
    tags = {"experiment": exp.name, "preset": plan.preset, "git_revision":
            info.get("git_revision"), "command": info.get("command"), "sweep": plan.name}
    tracker = Tracker(uri, f"hkmr/{exp.name}")
    files = [out_dir / n for n in ("tables.md", "trials.parquet", "epochs.parquet")]
    parent = tracker.log(RunRecord(name=f"{plan.name}", params={"seeds": info.get("seeds"),
                                                                "trials": len(grid)},
                                   tags=tags, artifacts=[*files, *sorted(out_dir.glob("*.png"))]))
    for result, row in zip(grid, trials_table(grid, exp).to_pylist()):
        cfg = plan.spec.resolve(result.config or {})
        record = RunRecord(
            name=f"{row['configuration']} seed={row['seed']}",
            params={**flatten(to_dict(cfg)), "seed": row["seed"]},
            epochs=json.loads(row["epochs_json"]),
            final={k: v for k, v in row.items() if k not in _NOT_FINAL},
            tags={**tags, "configuration": row["configuration"], "seed": row["seed"],
                  "status": row["status"], "trial_id": row["trial_id"],
                  "regime": row.get("regime")})
        tracker.log(record, parent=parent, status=_STATUS.get(row["status"], "FINISHED"))
    return parent
