"""Per-step training cost with and without SMPLify in the loop, side by side in one run.

On the ``smoke`` preset (small CNN, 64 px, batch 32; ``--regressor`` hkmr or hmr) the real
:class:`hkmr.train.trainer.Trainer` runs with ``train.in_the_loop`` false and true (SPIN's 100
iterations per stage unless ``--iters``), both with ``data.smpl_fraction`` (default 0.5: half
the samples 2D-only, so SMPLify runs on about half of each batch, as in the Table 4 presets).
The trainers take turns step by step so both see the same background load. A step is the wall
time from asking the loader for a batch to the end of the optimiser step; the CPU time of this
process is reported as well. Prints medians (ms), images/s and the loop / no-loop ratio.

    python benchmarks/bench_smplify.py [--steps 10] [--iters 100] [--fraction 0.5]
        [--regressor hkmr] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_features import Stepper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each trainer")
    parser.add_argument("--iters", type=int, default=100, help="SMPLify iterations per stage")
    parser.add_argument("--fraction", type=float, default=0.5, help="data.smpl_fraction")
    parser.add_argument("--regressor", default="hkmr", choices=("hkmr", "hmr"))
    parser.add_argument("--prior", default="gmm", choices=("gmm", "vae"),
                        help="SMPLify's pose prior")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    import torch

    from hkmr.config import load_config
    from hkmr.train.source import prepare_source
    from hkmr.train.trainer import Trainer, TrainerHooks

    if args.threads:
        torch.set_num_threads(args.threads)
    common = [f"model.regressor={args.regressor}", f"data.smpl_fraction={args.fraction}",
              f"train.smplify_iters={args.iters}", f"train.smplify_prior={args.prior}"]
    quiet = TrainerHooks(log=lambda msg: None)
    with tempfile.TemporaryDirectory() as tmp:
        steppers = {}
        for name, loop in (("without loop", "false"), ("in the loop", "true")):
            cfg = load_config("smoke", common + [f"train.in_the_loop={loop}"])
            steppers[name] = Stepper(Trainer(cfg, Path(tmp) / name.replace(" ", "_"),
                                             prepare_source(cfg, progress=False), quiet))
        batch = cfg.train.batch_size
        for s in steppers.values():  # warm-up: first-call allocations, priors on device
            s.step(record=False)
        for _ in range(args.steps):
            for s in steppers.values():
                s.step()
    print(f"smoke preset, {args.regressor}, batch {batch}, data.smpl_fraction {args.fraction}, "
          f"SMPLify {args.iters} iterations per stage ({args.prior} prior), {args.steps} steps "
          f"each, torch threads {torch.get_num_threads()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'':14} {'wall ms/step':>13} {'images/s':>9} {'cpu ms/step':>12}")
    med = {n: (statistics.median(s.wall), statistics.median(s.cpu)) for n, s in steppers.items()}
    for name, (wall, cpu) in med.items():
        print(f"{name:14} {1000 * wall:13.1f} {batch / wall:9.1f} {1000 * cpu:12.1f}")
    (w0, c0), (w1, c1) = med["without loop"], med["in the loop"]
    print(f"ratio in the loop / without: wall {w1 / w0:.2f}x, cpu {c1 / c0:.2f}x")


if __name__ == "__main__":
    main()
