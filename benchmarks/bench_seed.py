"""What a seed costs against its arithmetic, in the keypoint regime, side by side in one run.

For HMR, CMR, HKMR (linear chain layers) and HKMR (MLP chain layers) at a keypoint preset
(default the ``cpu_keypoints`` config with Table 1's suites, as ``table1 --preset
cpu_keypoints`` runs them), one torch thread:

* **floor** = steps of a trial x the median time of one optimisation step (forward, losses,
  backward, optimiser) on batches already in memory; the models' steps interleaved so that
  machine load hits all of them alike;
* **per trial** = core-seconds a trial of a real sweep pays: a local Ray sweep of all four
  configurations x ``--seeds``, one trial at a time (``max_concurrent 1``, one CPU a trial,
  as the CPU presets run them); a trial's cost is the time from its attempt's start to the
  next trial's (the last: to the end of the sweep), so it carries its share of Tune's work
  and of the next trial's start; the sweep's one-off start (Tuner, first actor) is printed
  apart;
* **split** of a trial, measured in this process on the same config: data (reading the
  trainer's batches, per batch x steps), step (the floor's step x steps), evaluation (the
  per-epoch validation x epochs, plus the final test suites), start-up and the rest (the
  per-trial cost less those three: making the data source and trainer, checkpoints, Tune);
* **ratio** = per trial / floor.

    flock /tmp/hkmr-heavy.lock python benchmarks/bench_seed.py [--seeds 2] [--repeats 20]
        [--config cpu_keypoints] [--override train.steps_per_epoch=50 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml

from tuning.run.request import TrialCallback

MODELS = {"HMR": {"model.regressor": "hmr"},
          "CMR": {"model.regressor": "cmr", "model.prior": "none"},
          "HKMR_linear": {"model.regressor": "hkmr"},
          "HKMR_mlp": {"model.regressor": "hkmr", "model.chain_layer": "mlp"}}
SUITES = ["table1", "degrees"]  # what the keypoint presets evaluate
KEPT = ("train_loss", "val_mpjpe", "P1_standard_mpjpe", "P1_bar_mpjpe")


@dataclass(frozen=True)
class _Stamps(TrialCallback):
    """A trial callback that appends (trial, configuration, time) to a file at each attempt
    start (it runs in the trial process; the file is how it reaches the benchmark)."""

    path: str

    def on_attempt_start(self, trial_id, configuration, node_id):
        with open(self.path, "a") as fh:
            fh.write(json.dumps([trial_id, configuration, time.time()]) + "\n")


def _config(name: str, overrides: list[str], model: dict):
    from hkmr.config import load_config

    return load_config(name, overrides + [f"{k}={v}" for k, v in model.items()]
                       + ["train.threads=1"])


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cycle(loader):
    while True:
        yield from loader


def in_process(args, folder: Path) -> dict[str, dict[str, float]]:
    """Floor step, data per batch, evaluation and start-up of each model, in this process."""
    from hkmr.model.priors import default_vae
    from hkmr.train.source import ensure_data, prepare_source
    from hkmr.train.trainer import Trainer, TrainerHooks
    from tuning.run.trainable import final_metrics

    spec = SimpleNamespace(eval_limit=0, degree_limit=0, suites=SUITES)
    cfg = _config(args.config, args.override, {})
    ensure_data(cfg)  # the pool and the VAE prior, once per sweep: no trial's cost
    default_vae(cfg.train.prior_corpus)
    out, trainers = {}, {}
    for name, model in MODELS.items():
        cfg = _config(args.config, args.override, model)
        start = time.perf_counter()
        source = prepare_source(cfg, log=lambda m: None)
        trainers[name] = Trainer(cfg, folder / name, source, TrainerHooks(log=lambda m: None))
        out[name] = {"startup": time.perf_counter() - start,
                     "steps": cfg.train.epochs * trainers[name].steps_per_epoch(),
                     "epochs": cfg.train.epochs}
    for name, trainer in trainers.items():  # data: the trainer's own loader, batch by batch
        batches = _cycle(trainer.train_loader)
        next(batches)
        out[name]["data"] = _median_s(lambda: next(batches), args.repeats)
    batches = [next(iter(trainers["HKMR_linear"].train_loader)) for _ in range(3)]
    steps = {name: [] for name in trainers}
    for i in range(args.repeats + 2):  # interleaved, 2 warm-up steps
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_step(batches[i % len(batches)])
            if i >= 2:
                steps[name].append(time.perf_counter() - start)
    for name, trainer in trainers.items():
        out[name]["step"] = statistics.median(steps[name])
        out[name]["val"] = _median_s(trainer.evaluate, 3)
        start = time.perf_counter()
        final_metrics(trainer, trainer.cfg, spec)
        out[name]["test"] = time.perf_counter() - start
    return out


def in_sweep(args, folder: Path) -> tuple[dict[str, list[float]], float, list[dict]]:
    """Per-trial seconds of each model in a real local Ray sweep; the sweep's one-off start;
    each trial's final metrics (same seed, same numbers: the check of a change)."""
    import ray

    from tuning.run.driver import plan_sweep, prepare_shared, run_sweep
    from tuning.run.request import SweepRequest

    overrides = dict(o.split("=", 1) for o in args.override)
    exp = {"name": "bench_seed", "title": "cost of a seed",
           "configurations": MODELS,
           "presets": {"bench": {"config": args.config, "seeds": args.seeds, "suites": SUITES,
                                 "overrides": {k: yaml.safe_load(v)
                                               for k, v in overrides.items()}}}}
    path = folder / "bench_seed.yaml"
    path.write_text(yaml.safe_dump(exp))
    stamps = folder / "stamps.jsonl"
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    request = SweepRequest(path, "bench", storage=folder / "store", results_dir=None,
                           max_concurrent=1, callbacks=(_Stamps(str(stamps)),))
    prepare_shared(plan_sweep(request))  # the data, once: not a trial's cost
    start = time.time()
    grid, _ = run_sweep(request)
    end = time.time()
    metrics = sorted(({"configuration": r.config["configuration"], "seed": r.config["seed"],
                       **{k: r.metrics.get(k) for k in KEPT}} for r in grid),
                     key=lambda m: (m["configuration"], m["seed"]))
    ray.shutdown()
    rows = [json.loads(line) for line in stamps.read_text().splitlines()]
    rows.sort(key=lambda r: r[2])
    per: dict[str, list[float]] = {name: [] for name in MODELS}
    for k, (_, configuration, t) in enumerate(rows):
        nxt = rows[k + 1][2] if k + 1 < len(rows) else end
        per[configuration].append(nxt - t)
    return per, rows[0][2] - start, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu_keypoints")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, default=2, help="trials per model in the sweep")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps / batches")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
        parts = in_process(args, Path(tmp))
        per, one_off, metrics = in_sweep(args, Path(tmp))
    print(f"torch {torch.__version__}, 1 thread, config {args.config} {' '.join(args.override)},"
          f" {args.seeds} trials a model one at a time; load average at start {load:.2f}, "
          f"at end {os.getloadavg()[0]:.2f}")
    print(f"sweep one-off start (Tuner, first trial process): {one_off:.1f} s\n")
    head = ("model", "steps", "step ms", "floor s", "trial s", "ratio", "data s", "step s",
            "eval s", "start+rest s")
    print("".join(f"{h:>13s}" for h in head))
    summary = {}
    for name, p in parts.items():
        floor = p["steps"] * p["step"]
        trial = statistics.median(per[name])
        data, step = p["steps"] * p["data"], p["steps"] * p["step"]
        evaluation = p["epochs"] * p["val"] + p["test"]
        rest = trial - data - step - evaluation
        summary[name] = {**p, "floor_s": floor, "trial_s": trial, "trials_s": per[name],
                         "ratio": trial / floor, "data_s": data, "step_s": step,
                         "eval_s": evaluation, "startup_and_rest_s": rest}
        print(f"{name:>13s}{p['steps']:13d}{1000 * p['step']:13.1f}{floor:13.1f}"
              f"{trial:13.1f}{trial / floor:13.2f}{data:13.1f}{step:13.1f}{evaluation:13.1f}"
              f"{rest:13.1f}")
    print("\nin-process parts (s): " + "; ".join(
        f"{n}: data/batch {1000 * p['data']:.2f} ms, val {p['val']:.2f}, test suites "
        f"{p['test']:.2f}, source+trainer {p['startup']:.2f}" for n, p in parts.items()))
    print("\nfinal metrics of the sweep's trials (same seed and code path: same numbers)")
    for m in metrics:
        print(f"  {m['configuration']:12s} seed {m['seed']}: " + ", ".join(
            f"{k} {m[k]!r}" for k in KEPT))
    if args.json:
        args.json.write_text(json.dumps({"load": load, "one_off_s": one_off,
                                         "models": summary, "metrics": metrics}, indent=1))


if __name__ == "__main__":
    main()
