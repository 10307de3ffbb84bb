"""The GPU check in one command: run it on a machine with one CUDA GPU (under 8 minutes).

    python benchmarks/gpu_check.py --out gpu_check            # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gc   # the tests' dry run

Measured side by side in one run, each figure also in ``OUT/gpu_check.json``:

1. **Regressor latency** (Φ given, 2048-d as ResNet50's; T=3, P=4): HMR, HKMR fast (the exact
   triangular solve) and HKMR reference (joint by joint), batch 1 and 64, eager and — on CUDA —
   under CUDA graphs (``torch.cuda.make_graphed_callables``) and ``torch.compile``; medians of
   ``torch.utils.benchmark.Timer`` (which synchronises CUDA), ratios to HMR.
2. **End to end** with the ResNet50 encoder at 224 px, batch 1 (``--tiny``: the small CNN at
   64 px): HMR vs HKMR fast; the paper reports 0.044 s per image for HKMR against 0.009 s
   for HMR (and 0.062 s for CMR) on a Tesla V100, so HKMR / HMR = 4.9x (Sec. 4, Table 1).
3. **One epoch of the smoke config** on the device with and without mixed precision
   (``train.amp``; a CPU run has no AMP, so both rows are float32 there): images/s.
4. **A smoke sweep whose trials are 1-GPU Ray Train ``TorchTrainer`` s** (``workers_per_trial:
   1``, ``use_gpu`` on CUDA): wall time and the trials' status.
5. **A 2-GPU trial** (``workers_per_trial: 2``, DDP over NCCL, the global batch split between
   the GPUs: :mod:`hkmr.train.distributed`) when the machine has 2 CUDA GPUs: its status,
   the trial's images/s and how many ranks evaluated validation (1); otherwise the JSON says
   it was skipped and why.
6. **Speed switches** (:mod:`hkmr.train.speed`): one epoch of the smoke config (ResNet50 at
   224 px; ``--tiny``: the small CNN) with none, each, and all of pinned memory, AMP,
   channels-last and ``torch.compile``: images/s side by side (a CPU runs them all eager).
7. **GPUs packed with small trials**: keypoint Table 2 trials (``cpu_keypoints``, HKMR; the
   ``--tiny`` run: ``smoke_keypoints``, a few steps) N at once on the one GPU through Ray's
   fractional GPUs (``gpus_per_trial: 1/N``), N = 1, 4, 8 (``--tiny``: 1, 2): trials per hour
   per GPU. On a CPU the GPU is a logical one Ray is told about: the packing is real, the
   arithmetic runs on the CPU.

Nothing here is asserted against a target: the JSON is the record, the tests only run the
dry run so the code cannot rot.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.utils.benchmark as tbench
import yaml

from hkmr.config import load_config, make_config
from hkmr.io import atomic_path
from hkmr.model import MeanParams, MeshEstimator, build_regressor

REGRESSORS = {"HMR": {"regressor": "hmr"},
              "HKMR fast": {"regressor": "hkmr", "chain_impl": "fast"},
              "HKMR reference": {"regressor": "hkmr", "chain_impl": "reference"}}
TINY = {"data.synth_train": 8, "data.synth_val": 4, "data.synth_test": 4, "data.synth_size": 64,
        "model.encoder": "small_cnn", "model.prior": "none", "train.batch_size": 4,
        "train.steps_per_epoch": 2, "model.embed_dim": 16, "model.head_hidden": 16,
        "train.prior_corpus": 500}


def median_ms(fn, min_run_time: float) -> float:
    """Median of ``fn()`` in ms by torch's own benchmark timer (CUDA-synchronised)."""
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn})
    return 1000 * timer.blocked_autorange(min_run_time=min_run_time).median


def variants(reg, phi, device):
    """(name, callable or the reason it is skipped) for eager, CUDA graphs, torch.compile."""
    def eager():
        return reg(phi)[-1].pose

    out = [("eager", eager)]
    if device.type != "cuda":
        return out + [("cuda graphs", "needs CUDA"), ("torch.compile", "needs CUDA")]
    try:
        graphed = torch.cuda.make_graphed_callables(lambda x: reg(x)[-1].pose, (phi,))
        out.append(("cuda graphs", lambda: graphed(phi)))
    except Exception as err:  # some ops are not capturable: record why
        out.append(("cuda graphs", f"{type(err).__name__}: {err}"[:200]))
    try:
        compiled = torch.compile(reg, mode="reduce-overhead")
        compiled(phi)  # compile outside the timing
        out.append(("torch.compile", lambda: compiled(phi)[-1].pose))
    except Exception as err:
        out.append(("torch.compile", f"{type(err).__name__}: {err}"[:200]))
    return out


@torch.no_grad()
def regressor_latency(device, batches, feat_dim, min_run_time) -> dict:
    result = {}
    for name, model in REGRESSORS.items():
        cfg = make_config({"model": {**model, "outer_iters": 3, "inner_iters": 4}})
        torch.manual_seed(0)
        reg = build_regressor(cfg.model, feat_dim, MeanParams.default()).to(device).eval()
        for batch in batches:
            phi = torch.randn(batch, feat_dim, device=device)
            for variant, fn in variants(reg, phi, device):
                key = f"{name} | batch {batch} | {variant}"
                result[key] = fn if isinstance(fn, str) else round(median_ms(fn, min_run_time), 4)
    for key, value in list(result.items()):  # ratios to HMR's same batch and variant
        hmr = result.get("HMR | " + key.split(" | ", 1)[1])
        if isinstance(value, float) and isinstance(hmr, float):
            result[key.replace(" | ", " | ratio to HMR | ", 1)] = round(value / hmr, 3)
    return result


@torch.no_grad()
def end_to_end(device, tiny, min_run_time) -> dict:
    encoder, size = ("small_cnn", 64) if tiny else ("resnet50", 224)
    img = torch.randn(1, 3, size, size, device=device)
    ms = {}
    for name in ("HMR", "HKMR fast"):
        cfg = make_config({"model": {**REGRESSORS[name], "encoder": encoder}})
        torch.manual_seed(0)
        model = MeshEstimator(cfg.model).to(device).eval()
        ms[name] = round(median_ms(lambda: model(img)[-1].pose, min_run_time), 3)
    return {"encoder": encoder, "image_size": size, "ms": ms,
            "HKMR fast / HMR": round(ms["HKMR fast"] / ms["HMR"], 3),
            "paper (V100)": {"HKMR s": 0.044, "HMR s": 0.009, "HKMR / HMR": 4.9}}


def one_epoch(device, tiny, tmp: Path) -> dict:
    from hkmr.train.source import prepare_source
    from hkmr.train.trainer import Trainer, TrainerHooks

    rows = {}
    for amp in (False, True):
        overrides = {**(TINY if tiny else {}), "train.epochs": 1, "train.amp": amp,
                     "train.device": device.type}
        cfg = load_config("smoke", overrides)
        quiet = TrainerHooks(log=lambda msg: None)
        start = time.perf_counter()
        trainer = Trainer(cfg, tmp / f"epoch_amp{int(amp)}", prepare_source(cfg, progress=False),
                          quiet)
        last = trainer.fit()
        rows[f"amp={amp}"] = {"images_per_second": round(last["images_per_second"], 1),
                              "val_mpjpe": round(last["val_mpjpe"], 2),
                              "amp_active": trainer.amp,
                              "wall_seconds": round(time.perf_counter() - start, 1)}
    return rows


def gpu_sweep(device, tiny, tmp: Path, workers: int = 1) -> dict:
    """A smoke sweep whose trials are Ray Train groups of ``workers`` (one GPU each)."""
    import ray

    from tuning.run.driver import run_sweep

    from tuning.run.request import SweepRequest

    gpu = device.type == "cuda"
    # the dry run starts one TorchTrainer (each costs ~25 s of Ray Train start-up here)
    configurations = {"HKMR": {}} if tiny or workers > 1 else {
        "HMR": {"model.regressor": "hmr"}, "HKMR": {}}
    preset = {"config": "smoke", "seeds": 1, "eval_limit": 8, "suites": ["table1"],
              "workers_per_trial": workers, "use_gpu": gpu,
              "overrides": {**(TINY if tiny else {"train.epochs": 1}), "train.epochs": 1,
                            "train.device": "cuda" if gpu else "cpu"}}
    spec = {"name": "gpu_check", "title": "GPU check sweep",
            "configurations": configurations,
            "tables": [{"title": "MPJPE (mm)", "columns": list(configurations),
                        "metric": "mpjpe"}],
            "presets": {"smoke": preset}}
    path = tmp / f"gpu_check_{workers}.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.perf_counter()
    try:
        grid, out = run_sweep(SweepRequest(path, "smoke", storage=tmp / f"store_{workers}",
                                           results_dir=tmp / f"results_{workers}",
                                           max_concurrent=1))
    finally:
        ray.shutdown()
    keys = ("P1_standard_mpjpe", "val_mpjpe", "images_per_second", "train_workers",
            "val_evaluations")
    trials = {r.config["configuration"]: {**{k: r.metrics.get(k) for k in keys},
                                          "error": None if r.error is None else str(r.error)}
              for r in grid}
    return {"trials": trials, "errors": grid.num_errors, "use_gpu": gpu,
            "workers_per_trial": workers, "wall_seconds": round(time.perf_counter() - start, 1)}


def two_gpu_trial(device, tiny, tmp: Path) -> dict:
    """Section 5: a 2-worker trial on 2 GPUs, or why it was skipped."""
    if device.type != "cuda":
        return {"skipped": f"needs 2 CUDA GPUs; --device {device.type}"}
    if torch.cuda.device_count() < 2:
        return {"skipped": f"needs 2 CUDA GPUs; this machine has {torch.cuda.device_count()}"}
    return gpu_sweep(device, tiny, tmp, workers=2)


SWITCHES = {"none": {}, "pin_memory": {"train.pin_memory": True},
            "amp": {"train.amp": True}, "channels_last": {"train.channels_last": True},
            "compile": {"train.compile": True},
            "all": {"train.pin_memory": True, "train.amp": True, "train.channels_last": True,
                    "train.compile": True}}


def speed_switches(device, tiny, tmp: Path) -> dict:
    """Images/s of one smoke epoch per switch setting (:data:`SWITCHES`; all off but those)."""
    from hkmr.train.source import prepare_source
    from hkmr.train.trainer import Trainer, TrainerHooks

    off = {"train.pin_memory": False, "train.amp": False, "train.channels_last": False,
           "train.compile": False}
    rows = {}
    for name, switches in SWITCHES.items():
        overrides = {**(TINY if tiny else {"model.encoder": "resnet50"}), "train.epochs": 1,
                     "train.device": device.type, **off, **switches}
        cfg = load_config("smoke", overrides)
        trainer = Trainer(cfg, tmp / f"switch_{name}", prepare_source(cfg, progress=False),
                          TrainerHooks(log=lambda msg: None))
        trainer.train_epoch()  # warm-up (and compilation)
        rows[name] = {"images_per_second": round(trainer.train_epoch()["images_per_second"], 1),
                      "active": device.type == "cuda" or not switches}
    base = rows["none"]["images_per_second"]
    for row in rows.values():
        row["speed-up"] = round(row["images_per_second"] / base, 3)
    return rows


def packed_trials(device, tiny, tmp: Path) -> dict:
    """Trials per hour per GPU with N keypoint trials sharing it (see the module docstring)."""
    import os

    import ray

    from tuning.run.driver import plan_sweep, prepare_shared, run_sweep
    from tuning.run.request import SweepRequest

    cpus = len(os.sched_getaffinity(0))
    base = {"train.device": device.type}
    if tiny:
        base.update({"data.synth_train": 48, "data.synth_test": 16, "train.epochs": 1,
                     "train.steps_per_epoch": 3, "model.prior": "none"})
    out = {}
    for n in (1, 2) if tiny else (1, 4, 8):
        preset = {"config": "smoke_keypoints" if tiny else "cpu_keypoints", "seeds": n,
                  "suites": ["table1", "degrees"], "use_gpu": True, "gpus_per_trial": 1 / n,
                  "cpus_per_trial": max(1, cpus // n), "overrides": base}
        spec = {"name": f"packed{n}", "title": "keypoint trials sharing a GPU",
                "configurations": {"HKMR": {}}, "presets": {"packed": preset}}
        path = tmp / f"packed{n}.yaml"
        path.write_text(yaml.safe_dump(spec))
        request = SweepRequest(path, "packed", storage=tmp / "store", results_dir=None)
        prepare_shared(plan_sweep(request))  # the pool, once: not the trials' cost
        ray.init(address="local", num_cpus=cpus, num_gpus=1, include_dashboard=False,
                 log_to_driver=False)
        start = time.perf_counter()
        try:
            grid, _ = run_sweep(request)
        finally:
            ray.shutdown()
        wall = time.perf_counter() - start
        out[f"{n} per GPU"] = {"trials": n, "errors": grid.num_errors,
                               "wall_seconds": round(wall, 1),
                               "trials_per_hour_per_gpu": round(3600 * n / wall, 1)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the tests' dry run)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run it on the GPU machine, or "
                         "--device cpu --tiny for the dry run")
    device = torch.device(args.device)
    min_run_time = 0.05 if args.tiny else 0.5
    summary = {"torch": torch.__version__, "device": str(device),
               "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
               "tiny": args.tiny}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        tmp = Path(tmp)
        summary["regressor_ms"] = regressor_latency(
            device, (1, 4) if args.tiny else (1, 64), 64 if args.tiny else 2048, min_run_time)
        summary["end_to_end"] = end_to_end(device, args.tiny, min_run_time)
        summary["one_epoch"] = one_epoch(device, args.tiny, tmp)
        summary["speed_switches"] = speed_switches(device, args.tiny, tmp)
        if not args.skip_sweep:
            summary["sweep"] = gpu_sweep(device, args.tiny, tmp)
            summary["two_gpu_trial"] = two_gpu_trial(device, args.tiny, tmp)
            summary["trials_per_gpu"] = packed_trials(device, args.tiny, tmp)
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "gpu_check.json") as out:
        out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
