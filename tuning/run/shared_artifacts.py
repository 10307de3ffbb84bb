"""What every trial of a sweep shares, built once per sweep before the first trial: the
synthetic dataset and the default VAE prior (in ``$HKMR_CACHE``, keyed by their settings), and
for frozen-features experiments (``model.freeze_encoder``) the shared encoder and its feature
cache (under ``root``, default ``$HKMR_CACHE``), which trials then read through
``data.features``.

On a cluster (``--address``) the build is one Ray task (:func:`prepare_shared_task`) with a
trial's resources — its ``cpus_per_trial`` CPUs and, on GPU presets, ``gpus_per_trial``
GPUs — so it runs on a node that can train (the shared encoder of ``paper_frozen`` trains on
``cuda``), not in the driver on a head that has neither. On an embedded local Ray the driver builds them itself
(:func:`prepare_shared`): it is on the one node, and a task would only add a worker start-up
(about 8 s here). The build holds the lock of ``$HKMR_CACHE/hkmr_shared``
(:func:`hkmr.io.folder_lock`) from its check to its end: two sweeps started together (on the
same machine, or on a cluster whose ``$HKMR_CACHE`` is one shared folder) build each artefact
once; the second waits and reuses it. Every artefact built is logged as a JSON line to
``$HKMR_CACHE/hkmr_builds.jsonl`` (what, path, node, sweep, time).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

from hkmr.config import ConfigError
from hkmr.io import cache_dir, folder_lock
from hkmr.model.priors import default_vae
from hkmr.train.source import ensure_data, ensure_features

from .dry_run import shared_artefacts
from ..experiment.trial_spec import TrialSpec

#: the build log of shared artefacts, in $HKMR_CACHE
BUILD_LOG = "hkmr_builds.jsonl"


def build_shared(spec: TrialSpec, root: str | None = None, sweep: str = "",
                 node_id: str = "") -> dict:
    """Build (or find) everything the trials of ``spec`` share; returns ``caches`` (the
    feature caches the configurations read), ``built`` (what this call built) and
    ``node_id``. Raises ConfigError when the configurations need more than one feature
    cache."""
    exp = spec.experiment_file()
    root_path = Path(root) if root else None
    with folder_lock(cache_dir() / "hkmr_shared"):
        plan = SimpleNamespace(experiment=exp, preset=spec.preset, spec=spec)
        missing = [(what, str(path)) for what, state, path in shared_artefacts(plan, root_path)
                   if state == "build"]
        caches = _build(exp, spec, root_path)
        built = [{"what": what, "path": path, "node_id": node_id, "sweep": sweep,
                  "time": time.time()} for what, path in missing]
        if built:
            with open(cache_dir() / BUILD_LOG, "a") as fh:
                fh.writelines(json.dumps(entry) + "\n" for entry in built)
    if len(caches) > 1:
        raise ConfigError(f"experiment {exp.name}: its configurations need {len(caches)} "
                          "feature caches (they differ in data or encoder settings); a sweep "
                          "shares one: move those keys to base or give data.features")
    return {"caches": sorted(caches), "built": built, "node_id": node_id}


def _build(exp, spec: TrialSpec, root: Path | None) -> set[str]:
    seen, caches = set(), set()
    for configuration in exp.configurations or [None]:
        cfg = exp.resolve(spec.preset, configuration, overrides=spec.overrides)
        key = (json.dumps(cfg.data.__dict__, sort_keys=True), cfg.model.prior,
               cfg.train.prior_corpus, cfg.regime, cfg.model.encoder,
               cfg.model.encoder_checkpoint, cfg.model.encoder_epochs)
        if key in seen:
            continue
        seen.add(key)
        ensure_data(cfg)
        if cfg.model.prior == "vae" and not cfg.model.vae_checkpoint:
            default_vae(cfg.train.prior_corpus)
        if cfg.regime == "frozen_features":
            caches.add(str(ensure_features(cfg, root).path))
    return caches


def _apply(plan, result: dict) -> dict:
    """Point the plan's trials at the sweep's feature cache (``data.features``)."""
    if result["caches"] and not plan.spec.overrides.get("data.features"):
        plan.spec = plan.spec.with_overrides(**{"data.features": result["caches"][0]})
    return result


def prepare_shared(plan, root: Path | None = None) -> dict:
    """Build the shared artefacts of a :class:`tuning.run.driver.SweepPlan` in this process (no
    Ray) and add the feature cache to its spec; returns :func:`build_shared`'s result."""
    return _apply(plan, build_shared(plan.spec, str(root) if root else None, plan.name))


def _remote_build(spec: TrialSpec, root: str | None, sweep: str) -> dict:
    import ray

    return build_shared(spec, root, sweep, ray.get_runtime_context().get_node_id())


def prepare_shared_task(plan, root: Path | None = None) -> dict:
    """:func:`prepare_shared` as one Ray task with a trial's resources (Ray must be
    initialised); waits for it. Its ``node_id`` is the node that built."""
    import ray

    spec = plan.spec
    task = ray.remote(_remote_build).options(
        num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial if spec.use_gpu else 0,
        max_retries=1,
        name=f"hkmr-shared-{plan.name}")
    return _apply(plan, ray.get(task.remote(spec, str(root) if root else None, plan.name)))
