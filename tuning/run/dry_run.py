"""``hkmr sweep --dry-run``: what a sweep would run, without starting Ray.

Prints every trial of the plan (:func:`tuning.run.driver.plan_sweep`) — its configuration, the keys
that configuration sets, its seed and the resources Tune would give it — or, for a search
experiment, the space and the number of samples, then each shared artefact the sweep would
build (:mod:`tuning.run.shared_artifacts`) before the first trial (the synthetic dataset, the
VAE prior, the shared encoder, the feature cache) with its path and whether it is already
there (reused) or would be built.
"""

from __future__ import annotations

from pathlib import Path

from hkmr.checkpoint import CHECKPOINT, load_encoder
from hkmr.data.keypoint_pool import pool_root
from hkmr.data.synthetic import synthetic_root, synthetic_settings
from hkmr.features.source import feature_folder
from hkmr.model.priors import default_vae_path
from hkmr.train.shared_encoder import shared_encoder_folder

from .trainable import trial_resources, worker_resources


def _state(done: bool) -> str:
    return "reuse" if done else "build"


def shared_artefacts(plan, root: Path | None = None) -> list[tuple[str, str, Path | str]]:
    """(what, reuse | build | given, path) for everything the sweep's trials share."""
    exp, seen, found = plan.experiment, set(), []
    for configuration in exp.configurations or [None]:
        cfg = exp.resolve(plan.preset, configuration, overrides=plan.spec.overrides)
        if cfg.regime == "keypoints":
            data = pool_root(cfg.data)
            items = [("keypoint pool", _state((data / "manifest.json").exists()), data)]
        else:
            data = synthetic_root(cfg.data)
            items = [("dataset", "given" if cfg.data.synthetic else
                      _state((data / "manifest.json").exists()), data)]
        if cfg.model.prior == "vae" and not cfg.model.vae_checkpoint:
            vae = default_vae_path(cfg.train.prior_corpus)
            items.append(("VAE prior", _state(vae.exists()), vae))
        if cfg.regime == "frozen_features" and cfg.data.features:
            items.append(("feature cache", "given", cfg.data.features))
        elif cfg.regime == "frozen_features":
            checkpoint = cfg.model.encoder_checkpoint
            if not checkpoint:
                folder = shared_encoder_folder(cfg, root)
                done = (folder / "encoder.json").exists()
                items.append(("shared encoder", _state(done), folder))
                checkpoint = folder / CHECKPOINT if done else None
            if checkpoint:
                cache = feature_folder(load_encoder(checkpoint).hash,
                                       synthetic_settings(cfg.data), root)
                items.append(("feature cache", _state((cache / "manifest.json").exists()),
                              cache))
            else:
                items.append(("feature cache", "build", "after the shared encoder, keyed by "
                              "its weights"))
        for item in items:
            if (item[0], str(item[2])) not in seen:
                seen.add((item[0], str(item[2])))
                found.append(item)
    return found


def describe(plan, root: Path | None = None) -> str:
    """The dry run's text for a :class:`tuning.run.driver.SweepPlan`."""
    from ray.tune.search.variant_generator import generate_variants

    exp, spec = plan.experiment, plan.spec
    resources = ", ".join(f"{k}={v:g}" for k, v in trial_resources(spec).items())
    if spec.workers_per_trial:
        batch = exp.resolve(plan.preset, next(iter(exp.configurations or [None])),
                            overrides=spec.overrides).train.batch_size
        each = ", ".join(f"{k.lower()}={v:g}" for k, v in worker_resources(spec).items())
        resources += (f"; a Ray Train group of {spec.workers_per_trial} workers ({each} each), "
                      f"each {batch // spec.workers_per_trial} of the global batch {batch}")
    lines = [f"dry run: {plan.name} (experiment {exp.name}, preset {plan.preset}), storage "
             f"{plan.storage}; Tune metric {exp.metric} (min); no Ray started", ""]
    if exp.is_search:
        lines.append(f"search: {plan.num_samples} Optuna samples of {exp.search}, ASHA; "
                     f"each trial: {resources}")
    else:
        trials = [config for _, config in generate_variants(plan.param_space)]
        lines.append(f"{len(trials)} trials, each: {resources}")
        for i, config in enumerate(trials):
            keys = {k: v for k, v in config.items() if k not in ("configuration", "seed")}
            own = {k: v for k, v in keys.items()
                   if k in exp.configurations[config["configuration"]]}
            lines.append(f"  {i + 1:3d}. {config['configuration']}  seed={config['seed']}  "
                         + " ".join(f"{k}={v}" for k, v in own.items()))
    lines += ["", "shared artefacts (built once per sweep, before the first trial):"]
    lines += [f"  {what:15s} {state:6s} {path}" for what, state, path in
              shared_artefacts(plan, root)]
    return "\n".join(lines) + "\n"
