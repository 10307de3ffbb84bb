"""``hkmr sweep --target-mde``'s driver: :func:`tuning.power.run_to_target` with each batch of
seeds a Ray Tune run (:func:`tuning.sweep.run_sweep`) and the batches aggregated as one
results folder (trials, per-image errors, tables stating what stopped the sweep)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hkmr.io import atomic_path

from .aggregate import trials_table, write_results
from .images import IMAGES_FILE, collect_images
from .power import check_target, run_to_target
from .space import load_experiment
from .sweep import _read_sweep_file, plan_sweep, run_sweep


def sweep_to_target(experiment: str, preset: str, target: float, max_seeds: int,
                    seeds: int | None = None, address: str | None = None,
                    storage: str | None = None, max_concurrent: int | None = None,
                    overrides: list[str] = (), name: str | None = None,
                    results_dir: str = "results", command: str = ""):
    """:func:`run_to_target` on Ray Tune: batch k is the Tune run ``NAME`` (k = 0) or
    ``NAME-seedsA-B``, resumed when it exists; the results go to RESULTS/EXPERIMENT/PRESET."""
    from ray import tune

    exp = load_experiment(experiment)
    first = seeds if seeds is not None else exp.preset(preset).seeds
    check_target(exp, target, max_seeds, first)
    base = name or f"{exp.name}-{preset}"
    images, infos = [], []

    def run_batch(start: int, n: int) -> pa.Table:
        batch = base if start == 0 else f"{base}-seeds{start}-{start + n - 1}"
        plan = plan_sweep(experiment, preset, n, storage, overrides, batch)
        resume = tune.Tuner.can_restore(str(Path(str(plan.storage)) / batch))
        grid, _ = run_sweep(experiment, preset, n, address, storage, max_concurrent, resume,
                            overrides, batch, results_dir=None, command=command,
                            first_seed=start)
        trials = trials_table(grid, exp)
        labels = [(r["trial_id"], r["configuration"], int(r["seed"]))
                  for r in trials.to_pylist()]
        found = collect_images(grid, labels)
        if found is not None:
            images.append(found)
        infos.append(_read_sweep_file(plan))
        return trials

    table, record = run_to_target(exp, first, target, max_seeds, run_batch)
    info = {**(infos[0] if infos else {}), "seeds": record["seeds"], "power": record}
    out = write_results(table, exp, preset, Path(results_dir) / exp.name / preset, info)
    if images:
        with atomic_path(out / IMAGES_FILE) as tmp:
            pq.write_table(pa.concat_tables(images), tmp)
    return out
