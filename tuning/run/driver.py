"""``hkmr sweep``: an experiment's trials as a Ray Tune run, then the aggregated tables.

The driver (1) resolves and validates every trial config and the :class:`TrialSpec` before Ray
starts, (2) connects to a cluster (``--address``) or starts an embedded local Ray sized to the
machine, (3) prepares what every trial shares once (on a cluster as one Ray task on a node that
can train, :mod:`tuning.run.shared_artifacts`), (4) runs the trials with ``ray.tune.Tuner`` (grid x seeds, or
Optuna search — a grid sampler over finite spaces — + ASHA), each asking for its resources and
queued by Tune until they fit, or continues an interrupted run with ``Tuner.restore``, and (5)
aggregates the results into ``results/<experiment>/<preset>/`` and copies them to the storage.
Scheduling and storage are Ray's; retries are Tune's only (:mod:`tuning.run.retry`). ``STORAGE`` is
a folder or a URI (:mod:`tuning.run.storage`). Before Ray starts, the driver takes the lock of
its storage and results folder and, for ``--resume``, checks that the sweep's state is whole
and that it is the same sweep (:mod:`tuning.run.identity`).
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hkmr.config import ConfigError, get_key
from hkmr.digest import git_revision

from ..experiment.schema import (Experiment, check_overrides_keep_configurations,
                                 load_experiment, parse_overrides)
from ..experiment.trial_spec import CONFIGURATION, SEED, TrialSpec
from .identity import check_name, check_resume, driver_lock, fingerprint, write_fingerprint
from .request import SweepRequest
from .search_algorithm import search_algorithm, search_budget
from .shared_artifacts import prepare_shared, prepare_shared_task
from .storage import (RESULTS_FOLDER, SWEEP_FILE, check_reachable, exists, is_uri, join,
                      read_json, upload_folder, write_text)
from .trainable import hkmr_trial, remove_orphaned_trial_folders, trial_placement



@dataclass
class SweepPlan:
    experiment: Experiment
    preset: str
    name: str
    storage: Path | str
    param_space: dict[str, Any]
    spec: TrialSpec
    num_samples: int
    max_concurrent: int | None


def _search_space(exp: Experiment) -> dict[str, Any]:
    from ray import tune

    space = {}
    for key, dist in exp.search.items():
        kind, args = next(iter(dist.items()))
        space[key] = getattr(tune, kind)(args) if kind == "choice" else getattr(tune, kind)(*args)
    return space


def _configuration_columns(exp: Experiment, preset: str, overrides: dict) -> dict[str, Any]:
    """Display columns of the live trial table: each key any configuration sets, with its
    value in the trial's configuration (``tune.sample_from``, resolved per trial)."""
    from ray import tune

    keys = sorted({k for values in exp.configurations.values() for k in values})
    resolved = {name: exp.resolve(preset, name, overrides=overrides)
                for name in exp.configurations}
    value = {name: {k: get_key(cfg, k) for k in keys} for name, cfg in resolved.items()}
    return {k: tune.sample_from(lambda config, k=k: value[config[CONFIGURATION]][k])
            for k in keys}


def plan_sweep(request: SweepRequest) -> SweepPlan:
    """Everything a sweep needs, validated (no Ray involved); a grid sweep trains the seeds
    ``first_seed, first_seed + 1, ...`` of ``configurations`` (default: all)."""
    exp = load_experiment(request.experiment)
    preset, first_seed, configurations = request.preset, request.first_seed, \
        request.configurations
    p = exp.preset(preset)
    cli = parse_overrides(list(request.overrides))
    check_overrides_keep_configurations(exp, cli)
    n_seeds = request.seeds if request.seeds is not None else p.seeds
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {n_seeds}")
    if request.max_concurrent is not None and request.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {request.max_concurrent} "
                          "(leave it out for as many trials as the resources fit)")
    for configuration in exp.configurations or [None]:  # validate the overrides now
        exp.resolve(preset, configuration, overrides=cli)
    storage = request.storage or os.environ.get("HKMR_STORAGE") or "ray_results"
    storage = storage if is_uri(str(storage)) else Path(storage).expanduser().resolve()
    name = check_name(request.name) if request.name is not None else f"{exp.name}-{preset}"
    spec = TrialSpec.of(exp, preset, storage, cli, request.callbacks, request.workers_per_trial)
    from ray import tune

    if exp.is_search:
        if n_seeds > 1:
            raise ConfigError(f"experiment {exp.name} is a search: it runs one seed per "
                              f"sampled point (Optuna cannot sample a grid of {n_seeds} "
                              "seeds); re-run the points it finds with seeds as "
                              "configurations" + (", which `hkmr choose-iterations` does"
                                                  if exp.name == "choose_iterations" else ""))
        space = {**_search_space(exp), SEED: 0}
        samples = search_budget(exp, p.samples or 8)
    else:
        unknown = set(configurations or ()) - set(exp.configurations)
        if unknown:
            raise ConfigError(f"experiment {exp.name} has no configurations {sorted(unknown)}")
        space = {CONFIGURATION: tune.grid_search(list(configurations or exp.configurations)),
                 SEED: tune.grid_search(list(range(first_seed, first_seed + n_seeds))),
                 **_configuration_columns(exp, preset, cli)}
        samples = 1
    return SweepPlan(exp, preset, name, storage, space, spec, samples, request.max_concurrent)


#: environment variables passed on to Ray's workers when set
_FORWARDED_ENV = ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S",)


def _init_ray(address: str | None, cpus: int | None = None) -> None:
    import ray

    if ray.is_initialized():
        return
    # Ray settings the caller exported (the tests shorten Train's health check) reach every
    # worker, also on a cluster; nothing is forced on users
    env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    runtime_env = {"env_vars": env} if env else None
    if address:
        ray.init(address=address, runtime_env=runtime_env)
    else:  # a new local Ray, never a cluster that happens to run here (that is --address auto);
        # cpus None: Ray's own detection, which honours container (cgroup) CPU limits
        ray.init(address="local", num_cpus=cpus, runtime_env=runtime_env,
                 include_dashboard=False)
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        from hkmr.cli import sigterm_as_sigint

        # ray.init installs a SIGTERM handler that exits at once (rc 134, no tables); a
        # SIGTERM stops the sweep as Ctrl-C does (Tune's graceful stop, then the tables)
        signal.signal(signal.SIGTERM, sigterm_as_sigint)


def shared_root(storage: Path | str, address: str | None) -> Path | None:
    """Where the frozen-features regime's encoder and feature cache go: the sweep storage
    (``<storage>/hkmr_shared``) when trials run on a cluster with a shared-folder storage,
    else None (``$HKMR_CACHE``; with a URI storage it must be a folder all nodes share)."""
    if address and not is_uri(str(storage)):
        return Path(storage) / "hkmr_shared"
    return None


def sweep_info(plan: SweepPlan, seeds: int, command: str) -> dict:
    """What a sweep is, as its results record it: experiment, preset, seeds, command, git
    revision, date, trial spec and the experiment's YAML."""
    return {"experiment": plan.experiment.name, "preset": plan.preset, "seeds": seeds,
            "command": command, "git_revision": git_revision(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "spec": dataclasses.asdict(plan.spec),
            "experiment_yaml": plan.experiment.recorded_yaml()}


def _write_sweep_file(plan: SweepPlan, seeds: int, command: str) -> None:
    """``STORAGE/NAME/hkmr_sweep.json``: what the sweep is (also on a URI storage)."""
    info = sweep_info(plan, seeds, command)
    write_text(sweep_path(plan, SWEEP_FILE), json.dumps(info, indent=2) + "\n")


def sweep_path(plan: SweepPlan, *parts: str) -> str:
    """``STORAGE/NAME[/parts...]`` of a sweep (a URI or a local path)."""
    return join(str(plan.storage), plan.name, *parts)


def search_concurrency(plan: SweepPlan) -> int:
    """How many trials a search sweep's Optuna searcher has out at once: ``--max-concurrent``,
    else about a quarter of its samples (at least 2, at most all): more suggestions at once
    fill a cluster, fewer let Optuna learn from finished trials before it suggests the next."""
    if plan.max_concurrent is not None:
        return plan.max_concurrent
    return max(1, min(plan.num_samples, max(2, math.ceil(plan.num_samples / 4))))


def tuner_for(plan: SweepPlan, resume: bool, optuna_storage: str | None = None):
    """The Tuner of a sweep; a search's Optuna study goes to ``optuna_storage`` (an
    SQLAlchemy URL) under the sweep's name when given (:func:`tuning.run.optuna_storage.study_storage`).

    Each trial asks for its resources (:func:`tuning.run.trainable.trial_placement`); a grid
    sweep hands Tune all its trials at once, so the trials that do not fit wait as pending
    placement groups an autoscaler sees. ``--max-concurrent`` caps the trials at once; a
    search's Optuna searcher is limited by it (``ConcurrencyLimiter``) or by
    :func:`search_concurrency`, never by the CPUs the cluster has now."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    from .grid_generator import ResumableGrid
    from .progress import MODE, live_reporter
    from .optuna_storage import study_storage

    trainable = tune.with_resources(tune.with_parameters(hkmr_trial, spec=plan.spec),
                                    trial_placement(plan.spec))
    path = sweep_path(plan)
    if resume:
        if not tune.Tuner.can_restore(path):
            raise FileNotFoundError(f"--resume: no sweep to continue at {path}")
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                  resume_errored=True)
    exp, preset = plan.experiment, plan.experiment.preset(plan.preset)
    # in-process trials of equal resources reuse their worker process: no second start-up
    # (imports of torch, smplx, ...) per trial
    tune_config = {"num_samples": plan.num_samples,
                   "reuse_actors": plan.spec.workers_per_trial == 0,
                   "metric": exp.metric, "mode": MODE}
    if plan.max_concurrent and not exp.is_search:
        # Tune's max_concurrent_trials, but resumable after a killed driver (tuning.run.grid_generator)
        tune_config["search_alg"] = ResumableGrid(max_concurrent=plan.max_concurrent)
    if exp.is_search:
        epochs = exp.resolve(plan.preset, overrides=plan.spec.overrides).train.epochs
        limit = search_concurrency(plan)
        # Tune keeps as many trials pending (placement groups requested) as the
        # ConcurrencyLimiter allows: the searcher's trials all wait as demand
        searcher = search_algorithm(exp, study_name=plan.name,
                                    storage=study_storage(optuna_storage, plan.name))
        tune_config.update(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=limit),
            scheduler=ASHAScheduler(max_t=epochs + 1, grace_period=preset.grace_epochs,
                                    reduction_factor=2))
    return tune.Tuner(
        trainable, param_space=plan.param_space, tune_config=tune.TuneConfig(**tune_config),
        run_config=tune.RunConfig(
            name=plan.name, storage_path=str(plan.storage), verbose=1,
            progress_reporter=live_reporter(list(plan.param_space)),
            # the one retry layer (tuning.run.retry): Tune retries a crashed trial
            failure_config=tune.FailureConfig(max_failures=preset.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))


def sweep_exists(plan: SweepPlan) -> bool:
    """Whether the storage holds the Tune run of this plan (to resume)."""
    from ray import tune

    return tune.Tuner.can_restore(sweep_path(plan))


def run_sweep(request: SweepRequest):
    """Plan, run (or resume) and aggregate a sweep (:class:`~tuning.run.request.SweepRequest`);
    returns (ResultGrid, output folder). A search keeps its Optuna study in
    ``request.optuna_storage`` (default: ``optuna.db`` in the results folder,
    :mod:`tuning.run.optuna_storage`); the shared artefacts are built as a Ray task on a
    cluster and in the driver on an embedded local Ray (the same machine: a task would only
    cost a worker start-up). The results folder is also copied to
    ``STORAGE/NAME/hkmr_results`` (:mod:`tuning.run.storage`)."""

    plan = plan_sweep(request)
    seeds_used = request.seeds if request.seeds is not None else \
        plan.experiment.preset(plan.preset).seeds
    folder = None if request.results_dir is None else \
        Path(request.results_dir) / plan.experiment.name / plan.preset
    identity = fingerprint(plan, request.first_seed, seeds_used, request.configurations)
    if not request.address:  # leftovers of an earlier sweep killed on this machine
        remove_orphaned_trial_folders()
        _clean_at_exit()
    check_reachable(plan.storage)
    if request.tracking:
        from hkmr.tracking import check_tracking_reachable

        check_tracking_reachable(request.tracking)
    with driver_lock(plan.storage, plan.name, folder):
        if request.resume:
            check_resume(sweep_path(plan), identity)
        try:
            return _run_locked(request, plan, seeds_used, folder, identity)
        finally:  # also after SIGINT/SIGTERM: the folders of trials killed with the sweep
            if not request.address:
                remove_orphaned_trial_folders()


@functools.cache
def _clean_at_exit() -> None:
    """Once per process, before ray.init: at exit, after Ray's own exit handler has stopped
    the trial processes, remove their folders."""
    atexit.register(remove_orphaned_trial_folders, wait_s=5.0)


def _run_locked(request: SweepRequest, plan: SweepPlan, seeds_used: int, folder: Path | None,
                identity: dict):
    """:func:`run_sweep` once the driver holds its locks and the sweep is checked."""
    from .optuna_storage import default_study_url

    _init_ray(request.address, request.cpus)
    root = shared_root(plan.storage, request.address)
    as_task = request.shared_task
    if as_task if as_task is not None else bool(request.address):
        prepare_shared_task(plan, root)
    else:
        prepare_shared(plan, root)
    if not request.resume:
        _write_sweep_file(plan, seeds_used, request.command or "")
        write_fingerprint(sweep_path(plan), identity)
    optuna_storage = request.optuna_storage
    if plan.experiment.is_search and not optuna_storage and folder is not None:
        optuna_storage = default_study_url(folder)
    grid = tuner_for(plan, request.resume, optuna_storage).fit()
    out = None
    if folder is not None:
        info = _read_sweep_file(plan)
        out = _aggregate(grid, plan, folder, info)
        upload_folder(out, sweep_path(plan, RESULTS_FOLDER))
        if request.tracking:
            from .tracking import track_sweep

            track_sweep(request.tracking, grid, plan, out, info)
    return grid, out


def _aggregate(grid, plan: SweepPlan, folder: Path, info: dict) -> Path:
    """Aggregate into ``folder``; when the driver cannot write there (a read-only image),
    into a temporary folder, which then only the storage's copy keeps."""
    from ..analysis.aggregate import aggregate_grid

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        import tempfile

        print(f"hkmr sweep: cannot write {folder} ({err}); the results go to the storage "
              f"only: {sweep_path(plan, RESULTS_FOLDER)}")
        folder = Path(tempfile.mkdtemp(prefix="hkmr-results-"))
    return aggregate_grid(grid, plan.experiment, plan.preset, folder, sweep_info=info)


def _read_sweep_file(plan: SweepPlan) -> dict:
    path = sweep_path(plan, SWEEP_FILE)
    return read_json(path, "sweep record") if exists(path) else {}
