"""Per-step cost of end-to-end vs frozen-feature training, HMR and HKMR, side by side in one run.

For each regressor the real :class:`hkmr.train.trainer.Trainer` runs ``--steps`` training
steps twice on the same rendered dataset: end to end (images through the encoder, the
preset's data workers and augmentation) and with ``model.freeze_encoder=true`` on a feature
cache extracted once here (features in memory, flipped copies). A step is the wall time from
asking the loader for a batch to the end of the optimiser step, so data loading counts. The
four trainers take turns (one end-to-end step, then frozen steps), so all see the same
background load. Prints median ms per step, images/s, the end-to-end / frozen ratio and the
same from this process's CPU time (which leaves out the loader worker, so it flatters end to
end); then what extraction cost per image.

Defaults follow the ``cpu`` presets (small CNN, 64 px, batch 64, VAE prior, T=3, P=4); the
encoder's weights do not change a step's cost, so an untrained one is used.

    python benchmarks/bench_features.py [--steps 10] [--frozen-steps 30] [--batch 64]
        [--encoder small_cnn --size 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


class Stepper:
    """Times training steps of one trainer: wall seconds (fetch + train_step) and the CPU
    seconds of this process (robust to other load; loader worker processes not included)."""

    def __init__(self, trainer):
        self.trainer, self.wall, self.cpu = trainer, [], []
        trainer.model.train()
        trainer.sampler.set_epoch(0)
        if hasattr(trainer.train_set, "set_epoch"):
            trainer.train_set.set_epoch(0)
        self.it = iter(trainer.train_loader)

    def step(self, record: bool = True) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            batch = next(self.it)
        except StopIteration:
            self.it = iter(self.trainer.train_loader)
            batch = next(self.it)
        self.trainer.train_step(batch)
        if record:
            self.wall.append(time.perf_counter() - wall)
            self.cpu.append(time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed end-to-end steps")
    parser.add_argument("--frozen-steps", type=int, default=30, help="timed frozen steps")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--encoder", default="small_cnn", choices=("small_cnn", "resnet50"))
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--prior", default="vae", choices=("vae", "discriminator", "none"))
    parser.add_argument("--workers", type=int, default=1, help="end-to-end loader workers")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (a sweep trial has 1; 0: torch's default)")
    parser.add_argument("--train", type=int, default=48, help="training subject-poses (x4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    os.environ.setdefault("HKMR_CACHE", str(tmp / "cache"))
    import torch

    from hkmr.checkpoint import build_estimator, load_encoder, save_checkpoint
    from hkmr.config import load_config, to_dict
    from hkmr.data.synthetic import ensure_synthetic
    from hkmr.features.cache import extract
    from hkmr.train.source import prepare_source
    from hkmr.train.trainer import Trainer, TrainerHooks

    if args.threads:
        torch.set_num_threads(args.threads)
    base = [f"train.threads={args.threads}", f"data.synth_train={args.train}",
            "data.synth_val=4", "data.synth_test=4", f"data.synth_size={args.size}",
            f"model.encoder={args.encoder}", f"model.prior={args.prior}",
            f"train.batch_size={args.batch}",
            f"data.workers={args.workers}", "train.prior_corpus=5000", "train.epochs=1"]
    cfg = load_config(None, base)
    start = time.perf_counter()
    root = ensure_synthetic(cfg.data, progress=False)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f};"
          f" {4 * args.train} training images at {args.size} px rendered in "
          f"{time.perf_counter() - start:.0f} s")
    # an encoder checkpoint and its feature cache
    torch.manual_seed(0)
    model = build_estimator(cfg)
    ckpt = save_checkpoint(tmp / "encoder" / "checkpoint.pt",
                           {"model": model.state_dict(), "config": to_dict(cfg)})
    encoder = load_encoder(ckpt)
    start = time.perf_counter()
    cache = extract(encoder, root, tmp / "features", progress=False, log=lambda m: None)
    extract_s = time.perf_counter() - start
    n_img = sum(v["rows"] for v in cache.manifest["variants"].values())

    quiet = TrainerHooks(log=lambda m: None)
    steppers = {}
    for regressor in ("hmr", "hkmr"):
        for regime, extra in (("end to end", []),
                                ("frozen", ["model.freeze_encoder=true",
                                            f"data.features={cache.path}",
                                            f"model.encoder_checkpoint={ckpt}"])):
            run_cfg = load_config(None, base + [f"model.regressor={regressor}"] + extra)
            trainer = Trainer(run_cfg, tmp / f"run-{regressor}-{len(extra)}",
                              prepare_source(run_cfg, progress=False), quiet)
            steppers[regressor, regime] = Stepper(trainer)
    # interleaved rounds, so every variant sees the same background load
    for stepper in steppers.values():
        stepper.step(record=False)
    per_round = {"end to end": 1, "frozen": max(1, args.frozen_steps // args.steps)}
    for _ in range(args.steps):
        for (regressor, regime), stepper in steppers.items():
            for _ in range(per_round[regime]):
                stepper.step()

    print(f"\nper training step, batch {args.batch}, {args.encoder} at {args.size} px, prior "
          f"{args.prior}, T=3 P=4, {torch.get_num_threads()} thread(s); median over "
          f"{args.steps} / {args.steps * per_round['frozen']} interleaved steps")
    print(f"{'':6s}{'end to end':>26s}{'frozen features':>26s}{'ratio':>8s}"
          f"{'CPU s/step e2e':>17s}{'frozen':>9s}{'ratio':>7s}")
    for regressor in ("hmr", "hkmr"):
        e2e, frozen = steppers[regressor, "end to end"], steppers[regressor, "frozen"]
        we, wf = statistics.median(e2e.wall), statistics.median(frozen.wall)
        ce, cf = statistics.median(e2e.cpu), statistics.median(frozen.cpu)
        print(f"{regressor.upper():6s}{1000 * we:12.1f} ms {args.batch / we:7.0f} img/s"
              f"{1000 * wf:12.1f} ms {args.batch / wf:7.0f} img/s{we / wf:7.1f}x"
              f"{ce:17.3f}{cf:9.3f}{ce / cf:6.1f}x")
    print(f"\nextraction: {n_img} feature rows (train + flipped, val, test + 18 occluded test "
          f"sets) in {extract_s:.1f} s = {1000 * extract_s / n_img:.2f} ms per image")


if __name__ == "__main__":
    main()
