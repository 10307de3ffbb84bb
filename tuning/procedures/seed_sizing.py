"""``hkmr sweep EXP --target-mde MM [--max-seeds N]``: as many seeds as the primary endpoint
needs to detect a paired difference of MM mm at 80 % power.

The sweep first trains the preset's seeds. From the paired spread of the primary endpoint
(the experiment's ``primary``, each configuration minus its ``reference``, pooled) it computes
the minimal detectable difference (:func:`tuning.stats.paired.mde`); while that exceeds MM and fewer
than N seeds ran, it adds the seeds the observed spread says are needed (at least one more)
as a further batch of trials, seeds ``n, n + 1, ...``: the trials already finished are kept
(each batch is its own Tune run under the storage, resumed — not re-run — when the command is
repeated). Only the spread, never the observed differences, decides how many seeds run, so the
tests' error rates stay those of a fixed-size design. The table states what stopped the sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyarrow as pa

from hkmr.config import ConfigError

from ..experiment.schema import Experiment
from ..stats.paired import differences, mde, pooled_sd


def primary_mde(exp: Experiment, rows: list[dict]) -> tuple[float, float, int]:
    """(MDE, pooled paired SD, seeds) of the experiment's primary endpoint."""
    others = [name for name in exp.configurations if name != exp.reference]
    sd, n = pooled_sd([differences(rows, name, exp.reference, exp.primary) for name in others])
    return mde(sd, n), sd, n


def seeds_needed(sd: float, target: float, max_seeds: int) -> int:
    """The fewest seeds whose MDE at paired spread sd is at most ``target`` (<= max_seeds)."""
    for n in range(2, max_seeds + 1):
        if mde(sd, n) <= target:
            return n
    return max_seeds


def check_target(exp: Experiment, target: float, max_seeds: int, seeds: int) -> None:
    if exp.is_search or not exp.reference:
        raise ConfigError(f"--target-mde: experiment {exp.name} needs configurations and a "
                          "'reference' (the primary endpoint is a paired difference)")
    if not target > 0:
        raise ConfigError(f"--target-mde must be a positive number of mm, got {target}")
    if max_seeds < seeds:
        raise ConfigError(f"--max-seeds {max_seeds} is below the first batch's {seeds} seeds")


def run_to_target(exp: Experiment, seeds: int, target: float, max_seeds: int,
                  run_batch: Callable[[int, int], pa.Table],
                  kept: pa.Table | None = None) -> tuple[pa.Table, dict]:
    """Run ``run_batch(first_seed, n_seeds) -> trials table`` until the primary endpoint's
    MDE is at most ``target`` or ``max_seeds`` ran; returns (all trials, the power record).
    ``kept``: the trials of seeds ``0 .. seeds - 1`` from an earlier sweep (``--extend``),
    which then stand for the first batch: only the seeds after them run."""
    check_target(exp, target, max_seeds, seeds)
    tables, done = [kept if kept is not None else run_batch(0, seeds)], seeds
    while True:
        rows = pa.concat_tables(tables, promote_options="default").to_pylist()
        value, sd, n = primary_mde(exp, rows)
        if math.isfinite(value) and value <= target:
            reason = f"the minimal detectable difference reached the target at {done} seeds"
            break
        if done >= max_seeds:
            reason = f"--max-seeds {max_seeds} was reached before the target"
            break
        more = seeds_needed(sd, target, max_seeds) if math.isfinite(sd) else done + 1
        more = min(max_seeds, max(done + 1, more))
        tables.append(run_batch(done, more - done))
        done = more
    record = {"target_mde": target, "max_seeds": max_seeds, "seeds": done, "mde": value,
              "paired_sd": sd, "endpoint": exp.primary, "reference": exp.reference,
              "stopped_by": reason}
    return pa.concat_tables(tables, promote_options="default"), record
