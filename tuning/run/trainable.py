"""One Ray Tune trial: one configuration x one seed, trained by the plain hkmr trainer.

``workers_per_trial = 0``: the trainer runs inside the trial process (cheap CPU trials; one
process start-up instead of a Ray Train controller and worker group).
``workers_per_trial >= 1``: the trial builds a Ray Train ``TorchTrainer`` (DDP over gloo on
CPU, NCCL on GPU) whose workers run the same trainer as one DDP training at the global batch
``train.batch_size`` (:mod:`hkmr.train.distributed`: each worker's share of every batch, the
epoch's metrics reduced over the workers, validation on rank 0 only); ``TuneReportCallback``
forwards rank 0's metrics to Tune, and only rank 0 runs the test suites. Its run name is
stable per trial, so a retried trial resumes its training.

Both paths report the same metrics every epoch with a checkpoint Ray can resume from; the
last epoch's report also carries the paper's evaluation suites on the test split and
``final = 1`` (one report, so an early-stopping scheduler never stops a trial between the end
of its training and its final metrics). A trial that hits an error no retry can fix (an
invalid config, a non-finite loss, out of memory: :mod:`tuning.run.retry`) reports ``failed = 1``
and the error, and ends; the sweep goes on. Other errors are retried by Tune only.
The trial's data source (:func:`hkmr.train.source.prepare_source`) is made before its
trainer; the sweep driver has already built what it reads (dataset, prior, feature cache).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hkmr.config import Config
from hkmr.eval.real import check_real, evaluate_real
from hkmr.eval.suites import evaluate_suites_per_image
from hkmr.train.source import prepare_source
from hkmr.train.trainer import Trainer, TrainerHooks

from ..analysis.image_errors import write_trial_images
from .retry import TRAIN_MAX_FAILURES, failure_metrics, is_permanent, permanent_cause
from ..experiment.trial_spec import CONFIGURATION, TrialSpec

#: the name of a trial's temporary folder: this prefix, its process id, a random part
TRIAL_TMP_PREFIX = "hkmr-trial-"


def _numeric(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _restore(checkpoint, out_dir: Path) -> None:
    """Copy a Ray checkpoint's files into the trainer's folder, where it resumes from them."""
    if checkpoint is None:
        return
    with checkpoint.as_directory() as src:
        for item in Path(src).iterdir():
            shutil.copy2(item, out_dir / item.name)


def final_metrics(trainer: Trainer, cfg: Config, spec: TrialSpec
                  ) -> tuple[dict[str, float], dict[str, list]]:
    """The paper's suites on the test split and their per-image errors
    (:func:`hkmr.eval.suites.evaluate_suites_per_image`); a frozen-features trial reads its
    feature cache, so its node needs no rendered dataset. Then the real-data sets the
    config's ``eval.*`` keys name (:mod:`hkmr.eval.real`), into the metrics."""
    regressor, _ = check_real(cfg.eval, trainer.body)
    metrics, per_image = evaluate_suites_per_image(
        trainer.module, trainer.body, trainer.kinematics, trainer.source.test, trainer.device,
        batch_size=cfg.train.batch_size, limit=spec.eval_limit, suites=spec.suites,
        degree_limit=spec.degree_limit)
    metrics.update(evaluate_real(trainer.module, trainer.body, trainer.kinematics, cfg.eval,
                                 trainer.device, size=cfg.data.synth_size,
                                 batch_size=cfg.train.batch_size, limit=spec.eval_limit,
                                 regressor=regressor))
    return metrics, per_image


def _train_and_report(cfg: Config, spec: TrialSpec, hooks: TrainerHooks, report, checkpoint,
                      trial_id: str, is_main: bool, configuration: str | None = None,
                      catch: bool = True) -> None:
    """Shared by both paths: restore, train (reporting every epoch), evaluate, report; with
    ``catch`` a permanent error (:mod:`tuning.run.retry`) is reported as the trial's failure, not
    raised (Ray Train workers raise it: :func:`_fit_torch_trainer` reports it). The spec's
    :class:`~tuning.run.request.TrialCallback` s see each attempt start and each epoch end."""
    if is_main:
        for callback in spec.callbacks:
            callback.on_attempt_start(trial_id, configuration, _node_id())

    def epoch_end(epoch: int) -> None:
        for callback in spec.callbacks:
            callback.on_epoch_end(trial_id, configuration, epoch, _node_id())

    try:
        _attempt(cfg, spec, hooks, report, checkpoint, is_main, epoch_end)
    except Exception as err:  # noqa: BLE001 - classified, re-raised unless permanent
        if not catch or not is_permanent(err):
            raise
        report(failure_metrics(err, _node_id()), None)


def _attempt(cfg: Config, spec: TrialSpec, hooks: TrainerHooks, report, checkpoint,
             is_main: bool, epoch_end) -> None:
    """One attempt of a trial: restore, train (reporting every epoch), evaluate, report."""
    start = time.perf_counter()
    # the process id in the name lets the driver remove the folder of a killed trial
    with tempfile.TemporaryDirectory(prefix=f"{TRIAL_TMP_PREFIX}{os.getpid()}-") as tmp:
        out_dir = Path(tmp)
        _restore(checkpoint, out_dir)

        held: dict = {}

        def on_epoch(metrics: dict, path: Path | None) -> None:
            if metrics["epoch"] >= cfg.train.epochs:
                # the last epoch is reported together with the final metrics: an
                # early-stopping scheduler deciding on this report cannot stop a trial
                # that has finished training before its test evaluation
                held.update(metrics=metrics, path=path)
            else:
                report({**_numeric(metrics), "failed": 0, "node_id": _node_id()},
                       path.parent if path else None)
            epoch_end(metrics["epoch"])

        hooks.on_epoch = on_epoch
        source = prepare_source(cfg, log=hooks.log, progress=False)
        trainer = Trainer(cfg, out_dir, source, hooks)
        last = trainer.fit()
        final, images = final_metrics(trainer, cfg, spec) if is_main and spec.suites else ({},
                                                                                      {})
        if images:  # beside the last checkpoint: the final report's checkpoint folder
            write_trial_images(images, out_dir)
        # the trial's own work (data, model, training, evaluation): what is not Ray overhead
        work = time.perf_counter() - start
        report({**_numeric(held.get("metrics", last)), **final, "failed": 0, "final": 1,
                "node_id": _node_id(), "trial_work_seconds": work, **source.describe()},
               out_dir if held or images else None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_orphaned_trial_folders(root: str | Path | None = None,
                                  wait_s: float = 0.0) -> list[Path]:
    """Delete the temporary trial folders under ``root`` (the temp folder) whose trial process
    is gone: a trial killed with its driver (SIGINT, SIGTERM) cannot remove its own (they
    held 63-84 MB each). Folders of live processes are kept, after waiting up to ``wait_s``
    seconds for them to end (at the driver's exit, while Ray stops its workers); returns the
    folders removed."""
    removed, deadline = [], time.monotonic() + wait_s
    while True:
        live = []
        for path in Path(root or tempfile.gettempdir()).glob(f"{TRIAL_TMP_PREFIX}*"):
            pid = path.name[len(TRIAL_TMP_PREFIX):].split("-")[0]
            if not pid.isdigit():
                continue
            if _alive(int(pid)):
                live.append(path)
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        if not live or time.monotonic() >= deadline:
            return removed
        time.sleep(0.2)


def _resolve(spec: TrialSpec, config: dict[str, Any], report) -> Config | None:
    """The trial's config; None when it is invalid, which is reported as the trial's
    permanent failure (:mod:`tuning.run.retry`)."""
    try:
        return spec.resolve(config)
    except Exception as err:  # noqa: BLE001 - classified, re-raised unless permanent
        if not is_permanent(err):
            raise
        report(failure_metrics(err, _node_id()), None)
        return None


def hkmr_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """The Tune function trainable (``tune.with_parameters(hkmr_trial, spec=...)``)."""
    from ray import tune

    if spec.workers_per_trial >= 1:
        return _fit_torch_trainer(config, spec)
    ctx = tune.get_context()

    def report(metrics: dict, directory: Path | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(directory) if directory else None
        tune.report(metrics, checkpoint=checkpoint)

    cfg = _resolve(spec, config, report)
    if cfg is None:
        return

    _train_and_report(cfg, spec, TrainerHooks(), report, tune.get_checkpoint(),
                      ctx.get_trial_id(), True, config.get(CONFIGURATION))


def _train_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import ray.train.torch

    spec = config["spec"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    hooks = TrainerHooks(
        prepare_model=ray.train.torch.prepare_model,
        prepare_loader=lambda loader: ray.train.torch.prepare_data_loader(
            loader, add_dist_sampler=False),
        rank=rank, world_size=world, device=ray.train.torch.get_device(),
        log=print if rank == 0 else (lambda msg: None))

    def report(metrics: dict, directory: Path | None) -> None:
        checkpoint = (ray.train.Checkpoint.from_directory(directory)
                      if directory and rank == 0 else None)
        ray.train.report(metrics, checkpoint=checkpoint)

    _train_and_report(spec.resolve(config["trial"]), spec, hooks, report,
                      ray.train.get_checkpoint(), config["trial_id"], rank == 0,
                      config["trial"].get(CONFIGURATION), catch=False)


def _fit_torch_trainer(config: dict[str, Any], spec: TrialSpec) -> None:
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    ctx = tune.get_context()
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"trial": config, "spec": spec, "trial_id": ctx.get_trial_id()},
        torch_config=TorchConfig(backend="nccl" if spec.use_gpu else "gloo"),
        scaling_config=scaling_config(spec),
        run_config=ray.train.RunConfig(
            name=f"{ctx.get_experiment_name()}-{ctx.get_trial_id()}-train",
            storage_path=spec.storage, callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=TRAIN_MAX_FAILURES),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1)))
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as err:
        cause = permanent_cause(err)
        if cause is None:
            raise  # Tune retries the trial; its next TorchTrainer resumes the run
        tune.report(failure_metrics(cause, _node_id()))


def worker_resources(spec: TrialSpec) -> dict[str, float]:
    """Resources of each Ray Train worker of a trial (``workers_per_trial >= 1``): its share
    of ``cpus_per_trial`` and, on GPU presets, ``gpus_per_trial`` GPUs (a fraction: several
    trials' workers on one GPU)."""
    per_worker = {"CPU": max(spec.cpus_per_trial - 0.01, 0.01) / spec.workers_per_trial}
    if spec.use_gpu:
        per_worker["GPU"] = spec.gpus_per_trial
    return per_worker


def scaling_config(spec: TrialSpec):
    """The ``ray.train.ScalingConfig`` of a trial's ``TorchTrainer``."""
    import ray.train

    return ray.train.ScalingConfig(num_workers=spec.workers_per_trial, use_gpu=spec.use_gpu,
                                   resources_per_worker=worker_resources(spec))


def trial_placement(spec: TrialSpec):
    """The trial's ``tune.PlacementGroupFactory``: one bundle, the trial process's resources
    (:func:`trial_resources`). A trial's Ray Train workers are not in it: the ``TorchTrainer``
    asks for its own placement group (:func:`scaling_config`: :func:`worker_resources` for
    each worker). Tune requests a placement group for every trial it
    wants to start, so the trials that do not fit wait as pending placement groups, which an
    autoscaler sees as demand."""
    from ray import tune

    return tune.PlacementGroupFactory([{k.upper(): v for k, v in trial_resources(spec).items()}])


def trial_resources(spec: TrialSpec) -> dict[str, float]:
    """Resources of the trial process itself: everything when it trains in-process, a sliver
    when a TorchTrainer's workers hold the CPUs (or the trial would wait for them forever)."""
    if spec.workers_per_trial >= 1:
        return {"cpu": 0.01}
    resources = {"cpu": spec.cpus_per_trial}
    if spec.use_gpu:
        resources["gpu"] = spec.gpus_per_trial  # < 1: Ray packs 1 / it trials on a GPU
    return resources
