"""The live trial table of a sweep: which metric Tune optimises and what each row shows.

Every sweep sets Tune's ``metric``/``mode`` to the experiment's primary endpoint (validation
MPJPE while training, lower is better), so ``ResultGrid.get_best_result`` and Tune's "current
best trial" line mean that endpoint, for grid sweeps too. Ray's new console output infers its
columns from the first keys a trial reports and ignores a ``progress_reporter``; the sweep
therefore selects Ray's ``CLIReporter`` (``RAY_AIR_NEW_OUTPUT=0``) with fixed columns: the
configuration, its own keys and the seed (the Tune parameters), then epoch, validation MPJPE
and PA-MPJPE and training images/s. The table is asked for explicitly
(``print_intermediate_tables=True``): left unset, CLIReporter decides from Tune's global
verbosity at construction, which the previous ``Tuner.fit`` of the process has lowered, so the
second sweep of a process (a ``--target-mde`` batch, choose-iterations' confirmation, a test)
printed the status without its trial rows.
"""

from __future__ import annotations

import os

#: Tune's mode for every hkmr endpoint (errors in mm: lower is better)
MODE = "min"
#: reported metric -> column header of the live table
METRIC_COLUMNS = {"epoch": "epoch", "val_mpjpe": "val MPJPE", "val_pa_mpjpe": "val PA-MPJPE",
                  "images_per_second": "images/s"}


def live_reporter(parameters: list[str]):
    """Ray's ``CLIReporter`` over ``parameters`` (Tune config keys) and METRIC_COLUMNS; its
    best-trial line takes the metric and mode of the ``TuneConfig``."""
    from ray import tune

    # the new output engine ignores a progress_reporter (ray/tune/tune.py); the reporter's
    # engine reads this when Tuner.fit starts
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    return tune.CLIReporter(metric_columns=dict(METRIC_COLUMNS), parameter_columns=parameters,
                            max_report_frequency=10, print_intermediate_tables=True)


def best_line(grid, exp) -> str:
    """One line after a sweep: the trials by status, counted as the trials table counts them
    (:func:`tuning.analysis.aggregate.status_counts`), and the best trial by the sweep's
    metric (``get_best_result``)."""
    from ..analysis.aggregate import grid_statuses, status_counts
    from ..experiment.trial_spec import SEED, configuration_label

    text = "trials: " + status_counts(grid_statuses(grid))
    try:
        best = grid.get_best_result()
    except RuntimeError:  # no trial reported a finite metric
        return text + f"; no trial has a finite {exp.metric}"
    config = best.config or {}
    return (text + f"; best by {exp.metric}: {configuration_label(config, exp)} seed "
            f"{config.get(SEED, 0)}, {exp.metric} {best.metrics[exp.metric]:.1f} mm")
