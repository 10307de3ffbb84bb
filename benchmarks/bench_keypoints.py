"""Per-step training cost in the keypoint regime (``model.encoder: keypoints``), side by side in
one run: HMR, CMR (CPU preset sizes), HKMR with linear chain layers (fast solve) and HKMR with
MLP chain layers (``model.chain_layer=mlp``, joint by joint); then what a table costs against
its number of seeds, projected from those medians.

Every model trains on the same batches of a keypoint pool (the ``smoke_keypoints`` data at
``--batch`` samples, one torch thread as a sweep trial has) with the ``cpu_keypoints``
training settings; the steps of the models are interleaved (model A step, model B step, ...)
so a change in machine load hits all of them alike. Prints the median ms per step and the
ratio to HKMR linear.

The projection: a table of C configurations x S seeds on ``--cores`` one-core trials takes
about ceil(C S / cores) rounds of (steps x step time + ``--overhead`` s per trial for Ray
start-up and the test suites); the per-configuration step times are the medians measured here.

    python benchmarks/bench_keypoints.py [--repeats 15] [--batch 128] [--steps 500]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from hkmr.config import load_config
from hkmr.train.source import prepare_source
from hkmr.train.trainer import Trainer, TrainerHooks

MODELS = (("HMR", ["model.regressor=hmr"]),
          ("CMR", ["model.regressor=cmr", "model.prior=none"]),
          ("HKMR linear (fast)", ["model.regressor=hkmr"]),
          ("HKMR mlp", ["model.regressor=hkmr", "model.chain_layer=mlp"]),
          ("HKMR linear, discriminator", ["model.regressor=hkmr", "model.prior=discriminator"]))
#: Table 2's columns as step-cost classes: 4 ablations cost what HKMR does, one is the
#: discriminator; Table 3's (T, P) pairs scale the HKMR step by T P / 12 (measured close)
TABLES = {"table1": ["HMR", "CMR", "HKMR linear (fast)"],
          "table2 (linear)": ["HKMR linear (fast)"] * 4 + ["HKMR linear, discriminator"],
          "table2 (mlp)": ["HKMR mlp"] * 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=500, help="steps of a trial (projection)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--overhead", type=float, default=15.0, help="s per trial besides steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = ["train.lr_schedule=cosine", f"train.batch_size={args.batch}", "train.threads=1"]
    cfg0 = load_config("smoke_keypoints", base)
    source = prepare_source(cfg0, log=lambda m: None)
    loader = DataLoader(source.train, batch_size=args.batch, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    batches = [b for _, b in zip(range(args.repeats + 2), loader)]
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in MODELS:
            cfg = load_config("smoke_keypoints", base + overrides)
            trainers[name] = Trainer(cfg, f"{tmp}/{len(trainers)}", source,
                                     TrainerHooks(log=lambda m: None))
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for i, batch in enumerate(batches):
            for name, trainer in trainers.items():  # interleaved: same load for all
                start = time.perf_counter()
                trainer.train_step(batch)
                if i >= 2:  # warm-up
                    times[name].append(time.perf_counter() - start)
    med = {name: 1000 * statistics.median(t) for name, t in times.items()}
    ref = med["HKMR linear (fast)"]
    print(f"torch {torch.__version__}, 1 thread, batch {args.batch}, T=3, P=4, "
          f"{args.repeats} interleaved steps each; median ms per training step")
    print(f"{'':28s}{'ms/step':>10s}{'ratio':>8s}")
    for name, ms in med.items():
        print(f"{name:28s}{ms:10.1f}{ms / ref:8.2f}")
    print(f"\nprojected wall time of a table on {args.cores} cores, {args.steps} steps a "
          f"trial, {args.overhead:.0f} s overhead a trial (minutes)")
    seeds = (3, 6, 9, 12)
    print(f"{'':20s}" + "".join(f"{f'{s} seeds':>10s}" for s in seeds))
    for table, columns in TABLES.items():
        trial = [args.steps * med[c] / 1000 + args.overhead for c in columns]
        row = []
        for s in seeds:
            work = sum(trial) * s  # trials are spread over the cores
            rounds = math.ceil(len(columns) * s / args.cores)
            row.append(max(work / args.cores, rounds * min(trial)) / 60)
        print(f"{table:20s}" + "".join(f"{m:10.1f}" for m in row))


if __name__ == "__main__":
    main()
