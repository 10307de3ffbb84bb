"""``hkmr sweep --target-mde``'s driver: :func:`tuning.procedures.seed_sizing.run_to_target` with each batch of
seeds a Ray Tune run (:func:`tuning.run.driver.run_sweep`) and the batches aggregated as one
results folder (trials, per-image errors, tables stating what stopped the sweep). With
``--extend`` the results folder's trials are the first batch (:mod:`tuning.procedures.extend_seeds`)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from hkmr.config import ConfigError

from ..analysis.aggregate import trials_table, write_results
from .extend_seeds import check_reproduction, extension_record, load_kept
from ..analysis.image_error_files import as_float32, read_images, write_images
from ..analysis.image_errors import collect_images
from .seed_sizing import check_target, run_to_target
from ..experiment.schema import load_experiment
from ..run.driver import _read_sweep_file, plan_sweep, run_sweep, sweep_exists
from ..run.request import SweepRequest


def sweep_to_target(request: SweepRequest, target: float, max_seeds: int,
                    extend: bool = False):
    """:func:`run_to_target` on Ray Tune: batch k is the Tune run ``NAME`` (k = 0) or
    ``NAME-seedsA-B``, resumed when it exists; the results go to
    ``request.results_dir/EXPERIMENT/PRESET``. ``extend``: keep that folder's trials (seeds
    0..n-1) as the first batch, after checking it is this sweep, and run only later seeds,
    after ``NAME-reproduce`` retrained the reference's seed 0 to the kept numbers."""
    exp = load_experiment(request.experiment)
    preset, seeds, command = request.preset, request.seeds, request.command or ""
    folder = Path(request.results_dir or "results") / exp.name / preset
    kept = None
    if extend:
        if seeds is not None:
            raise ConfigError("--extend keeps the results folder's seeds as the first batch: "
                              "drop --seeds")
        kept = load_kept(folder, plan_sweep(request.but(seeds=1)))
    first = kept.seeds if kept else seeds if seeds is not None else exp.preset(preset).seeds
    check_target(exp, target, max_seeds, first)
    base = request.name or f"{exp.name}-{preset}"
    images, infos, checked = [], [], []

    def tune_run(batch: str, start: int, n: int, configurations=None):
        batch_request = request.but(seeds=n, name=batch, results_dir=None, command=command,
                                    first_seed=start, configurations=configurations)
        plan = plan_sweep(batch_request)
        grid, _ = run_sweep(batch_request.but(resume=sweep_exists(plan)))
        return grid, plan

    def run_batch(start: int, n: int) -> pa.Table:
        if kept is not None and not checked:  # before the first new seed: reproduce seed 0
            grid, plan = tune_run(f"{base}-reproduce", 0, 1, [exp.reference])
            rerun = trials_table(grid, exp).to_pylist()[0]  # resumed: the revision it ran at
            checked.append(check_reproduction(kept, exp, rerun,
                                              _read_sweep_file(plan).get("git_revision")))
        batch = base if start == 0 else f"{base}-seeds{start}-{start + n - 1}"
        grid, plan = tune_run(batch, start, n)
        trials = trials_table(grid, exp)
        labels = [(r["trial_id"], r["configuration"], int(r["seed"]))
                  for r in trials.to_pylist()]
        found = collect_images(grid, labels)
        if found is not None:
            images.append(found)
        infos.append(_read_sweep_file(plan))
        return trials

    table, record = run_to_target(exp, first, target, max_seeds, run_batch,
                                  kept.trials if kept else None)
    if kept is None:
        info = {**(infos[0] if infos else {}), "seeds": record["seeds"], "power": record}
    else:
        old = read_images(folder)
        images = ([old] if old is not None else []) + images
        extension = extension_record(kept, record["seeds"], checked[0] if checked else None,
                                     command)
        info = {**kept.info, "experiment_yaml": exp.recorded_yaml(), "seeds": record["seeds"],
                "power": record, "extensions": [*kept.info.get("extensions", []), extension]}
    if images:  # first: the tables' intervals read them
        folder.mkdir(parents=True, exist_ok=True)
        write_images(pa.concat_tables([as_float32(t) for t in images]), folder)
    return write_results(table, exp, preset, folder, info)
