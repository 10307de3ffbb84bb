"""``hkmr train``: train a model (Sec. 3.3), then evaluate it under the paper's suites.

:func:`register` needs only argparse (``hkmr --help`` builds every parser): the trainer, the
evaluation and TensorBoard (torch) are imported by the command.
"""

from __future__ import annotations

import argparse
import time

from ..config import flatten, load_config, to_dict
from ..options import (add_batch_size, add_device, add_eval_limits, add_out, add_overrides,
                       add_suites, add_tracking, flag_overrides)


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train", help="train a model, then evaluate it on the test split",
        description="Trains with a config (smoke, cpu, paper, their *_frozen variants, or a "
        "YAML file) plus key=value overrides; prints a line per epoch and writes TensorBoard "
        "scalars to OUT/tensorboard. Re-running with the same --out resumes from "
        "OUT/checkpoint.pt. At the end it runs the evaluation suites on the test split and "
        "writes OUT/metrics.json, metrics.parquet, summary.md and degrees.png.")
    train.add_argument("--config", required=True,
                       help="config name (smoke, cpu, paper, ...: hkmr/configs/) or YAML file")
    add_overrides(train, "config overrides, e.g. train.epochs=2 model.outer_iters=2")
    add_out(train, required=True)
    add_suites(train)
    train.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    add_device(train, default=None)
    add_batch_size(train, default=None,
                   what="training and evaluation batch size (train.batch_size)")
    add_eval_limits(train)
    add_tracking(train, "OUT/mlflow.db")
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> None:
    import yaml
    from tensorboardX import SummaryWriter

    from ..checkpoint import CHECKPOINT, check_resume_config, read_checkpoint
    from ..digest import provenance
    from ..eval.commands import evaluate_and_write
    from ..eval.suites import suites_for_regime
    from ..io import atomic_path, check_writable
    from ..tracking import check_tracking_reachable, parse_tracking
    from .source import prepare_source
    from .trainer import Trainer, TrainerHooks

    cfg = load_config(args.config, [*args.overrides, *flag_overrides(args)])
    # everything that can be known before training is checked before it
    tracking = parse_tracking(args.tracking, args.out)
    args.batch_size = cfg.train.batch_size
    suites = () if args.no_eval else suites_for_regime(args.suites, cfg.regime
                                                        or cfg.implied_regime)
    check_writable(args.out)
    if (args.out / CHECKPOINT).exists():  # a resume: the same run, or a refusal
        blob = read_checkpoint(args.out / CHECKPOINT)
        check_resume_config(args.out / CHECKPOINT, blob["config"], to_dict(cfg))
        del blob
    if tracking:
        check_tracking_reachable(tracking)
    with atomic_path(args.out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    writer = SummaryWriter(str(args.out / "tensorboard"))
    epochs: list[dict] = []

    def on_epoch(metrics: dict, checkpoint) -> None:
        epochs.append(dict(metrics))
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and key != "epoch":
                writer.add_scalar(key, value, metrics["epoch"])
        writer.flush()

    def log(msg: str) -> None:
        print(msg, flush=True)

    start = time.perf_counter()
    try:
        source = prepare_source(cfg, log=log)
        trainer = Trainer(cfg, args.out, source, TrainerHooks(on_epoch=on_epoch, log=log))
        print(f"training {cfg.model.regressor} ({cfg.model.encoder}, {cfg.data.synth_size} px, "
              f"{source.regime}) on {trainer.device} for {cfg.train.epochs} epochs; "
              f"{len(trainer.train_set)} training images -> {args.out}", flush=True)
        last = trainer.fit()
        seconds = time.perf_counter() - start
        print(f"trained in {seconds:.0f} s; checkpoint {args.out / CHECKPOINT}", flush=True)
        if args.no_eval:
            if tracking:
                _track(tracking, args, cfg, epochs, {}, provenance())
            return
        meta = provenance(checkpoint=str(args.out / CHECKPOINT), config=str(args.config),
                          overrides=" ".join(args.overrides), epochs=trainer.epoch,
                          train_seconds=round(seconds, 1),
                          val_mpjpe=round(last.get("val_mpjpe", float("nan")), 2))
        metrics = evaluate_and_write(trainer.module, trainer.body, trainer.device, source.test,
                                     args.out, args, suites, meta,
                                     f"hkmr train --config {args.config}", cfg.data.synth_size,
                                     cfg.eval)
        for key, value in metrics.items():
            writer.add_scalar(f"test/{key}", value, trainer.epoch)
        if tracking:
            _track(tracking, args, cfg, epochs, metrics, meta)
    finally:
        writer.close()


def _track(uri: str, args: argparse.Namespace, cfg, epochs: list[dict], metrics: dict,
           meta: dict) -> None:
    """One MLflow run of this training: the config's dotted keys, the epochs, the test
    metrics and the files the run wrote (:mod:`hkmr.tracking`)."""
    from ..tracking import RunRecord, Tracker

    files = [args.out / name for name in ("config.yaml", "metrics.json", "summary.md",
                                          "degrees.png")]
    tags = {"experiment": "hkmr train", "preset": args.config, "configuration": args.config,
            "git_revision": meta.get("git_revision"),
            "command": f"hkmr train --config {args.config} " + " ".join(args.overrides)}
    run_id = Tracker(uri, "hkmr train").log(RunRecord(
        name=args.out.name, params={**flatten(to_dict(cfg)), "seed": cfg.seed}, epochs=epochs,
        final=metrics, tags=tags, artifacts=files))
    print(f"MLflow run {run_id} in {uri}", flush=True)
