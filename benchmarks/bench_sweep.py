"""How much of a sweep's CPU time goes to training, and what a trial costs in Ray overhead.

Runs, side by side in one process on a local Ray sized to this machine:

1. **Utilisation**: a sweep of ``--trials`` in-process trials (``workers_per_trial = 0``),
   as many at once as there are CPUs. Busy share = Σ trial work (data, model, training and
   evaluation, measured inside each trial) x CPUs per trial / (sweep wall time x CPUs).
2. **Per-trial overhead**: the same trial ``--repeats`` times one after another, once with
   ``workers_per_trial = 0`` and once with ``1`` (a Ray Train ``TorchTrainer`` per trial).
   Overhead per trial = (wall time - Σ trial work) / repeats, and its share of a 60 s trial.

    python benchmarks/bench_sweep.py [--trials 4] [--repeats 2] [--steps 100] [--epochs 3]
                                     [--overhead-steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

# the smoke preset's data (1,600 training images: 100 steps of 16 an epoch), small models
TINY = {"model.encoder": "small_cnn", "model.prior": "none", "train.batch_size": 16}


def experiment(folder: Path, n_configs: int, steps: int, epochs: int, **preset) -> Path:
    configs = {f"c{i}": {"model.embed_dim": 32 + i} for i in range(n_configs)}
    spec = {"name": "bench", "title": "bench", "configurations": configs,
            "presets": {"smoke": {"config": "smoke", "seeds": 1, "eval_limit": 16,
                                  "suites": ["table1"],
                                  "overrides": {**TINY, "train.steps_per_epoch": steps,
                                                "train.epochs": epochs},
                                  **preset}}}
    path = folder / f"bench_{n_configs}_{preset.get('workers_per_trial', 0)}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def timed_sweep(path: Path, folder: Path, name: str, **kwargs):
    from tuning.analysis.aggregate import trials_table
    from tuning.experiment.schema import load_experiment
    from tuning.run.driver import run_sweep
    from tuning.run.request import SweepRequest

    start = time.perf_counter()
    grid, _ = run_sweep(SweepRequest(path, "smoke", storage=folder / "store", name=name, results_dir=None,
                        **kwargs))
    wall = time.perf_counter() - start
    rows = trials_table(grid, load_experiment(path)).to_pylist()
    work = [r.get("trial_work_seconds") or 0.0 for r in rows]
    return wall, work, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100,
                        help="training steps per epoch of the utilisation sweep")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs of the utilisation sweep (3 x 100 steps: ~1 min trials)")
    parser.add_argument("--overhead-steps", type=int, default=20,
                        help="training steps per epoch of the overhead trials")
    args = parser.parse_args()
    import os

    import ray

    cpus = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        from tuning.run.driver import plan_sweep, prepare_shared
        from tuning.run.request import SweepRequest

        warm = experiment(folder, 1, args.steps, args.epochs)
        prepare_shared(plan_sweep(SweepRequest(warm, "smoke", storage=folder / "store")))  # data, once
        wall, work, rows = timed_sweep(experiment(folder, args.trials, args.steps, args.epochs),
                                       folder, "utilisation")
        busy = sum(work) / (wall * cpus)
        print(f"utilisation: {args.trials} trials on {cpus} CPUs, wall {wall:.1f} s, "
              f"trial work {sum(work):.1f} s, median trial {statistics.median(work):.1f} s, "
              f"busy share {100 * busy:.1f} % (target >= 85 %)")
        overhead = {}
        for wpt in (0, 1):
            path = experiment(folder, args.repeats, args.overhead_steps, 2, workers_per_trial=wpt,
                              cpus_per_trial=cpus)
            wall, work, rows = timed_sweep(path, folder, f"overhead{wpt}", max_concurrent=1)
            overhead[wpt] = (wall - sum(work)) / args.repeats
            print(f"workers_per_trial={wpt}: {args.repeats} trials in sequence, wall "
                  f"{wall:.1f} s, median trial work {statistics.median(work):.1f} s, "
                  f"overhead {overhead[wpt]:.1f} s per trial = "
                  f"{100 * overhead[wpt] / 60:.1f} % of a 60 s trial")
        print(f"ratio of per-trial overhead, workers_per_trial 1 vs 0: "
              f"{overhead[1] / max(overhead[0], 1e-9):.1f}x (target for 0: <= 10 % of 60 s)")
        ray.shutdown()


if __name__ == "__main__":
    main()
