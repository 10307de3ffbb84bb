"""What ``hkmr sweep`` is asked to do, as one typed object: :class:`SweepRequest` (what to
sweep, where it runs, where its results go), and the extension point of a trial,
:class:`TrialCallback` (called in the trial process, e.g. by the tests' fault injection)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


class TrialCallback:
    """Called inside every trial (in the trial process, or on each Ray Train worker): at the
    start of each attempt and after each epoch's report. Subclass and override; it travels
    with the trial spec, so it must pickle."""

    def on_attempt_start(self, trial_id: str, configuration: str | None, node_id: str) -> None:
        """A (re)started attempt of the trial, on its main process."""

    def on_epoch_end(self, trial_id: str, configuration: str | None, epoch: int,
                     node_id: str) -> None:
        """After the report of ``epoch`` (1-based)."""


@dataclass(frozen=True)
class SweepRequest:
    """A sweep of ``experiment`` (a shipped name or a YAML file) at ``preset``.

    What runs: ``seeds`` per configuration (default: the preset's) from ``first_seed`` (a
    confirmation on fresh seeds, more seeds for ``--target-mde``), only ``configurations`` of
    a grid sweep (default: all), with the config ``overrides`` (``key=value``) on every trial.
    Where: ``address`` of a Ray cluster (default: an embedded local Ray of ``cpus`` CPUs),
    ``storage`` (a folder or URI; default ``$HKMR_STORAGE`` or ``ray_results``) under ``name``
    (default ``EXPERIMENT-PRESET``), at most ``max_concurrent`` trials at once; ``resume`` an
    interrupted sweep; ``shared_task``: build the shared artefacts as a Ray task (default: on
    a cluster) or in the driver. Results: aggregated into ``results_dir/EXPERIMENT/PRESET``
    (None: not aggregated), with ``command`` recorded, logged to the MLflow URI ``tracking``,
    a search's Optuna study in ``optuna_storage``. ``callbacks``: :class:`TrialCallback` s
    every trial calls. ``workers_per_trial``: Ray Train workers of each trial instead of the
    preset's (0: the trial trains in its own process)."""

    experiment: str | Path
    preset: str = "smoke"
    seeds: int | None = None
    first_seed: int = 0
    configurations: tuple[str, ...] | None = None
    overrides: tuple[str, ...] = ()
    address: str | None = None
    cpus: int | None = None
    storage: str | Path | None = None
    name: str | None = None
    max_concurrent: int | None = None
    resume: bool = False
    shared_task: bool | None = None
    results_dir: str | Path | None = "results"
    command: str | None = None
    tracking: str | None = None
    optuna_storage: str | None = None
    callbacks: tuple[TrialCallback, ...] = ()
    workers_per_trial: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "overrides", tuple(self.overrides))
        object.__setattr__(self, "callbacks", tuple(self.callbacks))
        if self.configurations is not None:
            object.__setattr__(self, "configurations", tuple(self.configurations))

    def but(self, **changes) -> SweepRequest:
        """The same request with ``changes``."""
        return dataclasses.replace(self, **changes)
