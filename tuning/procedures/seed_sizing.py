"""``hkmr sweep EXP --target-mde MM [--max-seeds N]``: as many seeds as the confirmatory
family needs for every comparison to detect a paired difference of MM mm at 80 % power, at
the level Holm uses.

The sweep first trains the preset's seeds. For each comparison of the experiment's
confirmatory family (:mod:`tuning.experiment.confirmatory`) it computes, from that
comparison's own paired spread over seeds, the minimal detectable difference of the two-sided
t test at α/m (:func:`tuning.stats.paired.mde`; m the family's size: Holm's first step,
conservative for the later ones). While the worst of them exceeds MM and fewer than N seeds
ran, it adds the seeds the worst spread says are needed (at least one more) as a further batch
of trials, seeds ``n, n + 1, ...``: the trials already finished are kept (each batch is its own
Tune run under the storage, resumed — not re-run — when the command is repeated). Only the
spreads, never the observed differences, decide how many seeds run; the rule is still not
exactly error-neutral (it stops earlier when a spread happens to be estimated small), so the
table states the family-wise type I error of this rule simulated at the observed spreads
(:mod:`tuning.stats.sequential`). The spread here is over seeds: the test images' share of the
error does not shrink with seeds, and the table's MDE (over seeds x images) can stay above MM.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyarrow as pa

from hkmr.config import ConfigError

from ..experiment.schema import Experiment
from ..stats.paired import ALPHA, differences, mde


def family_mde(exp: Experiment, rows: list[dict]) -> tuple[float, float, int, str]:
    """(MDE, paired SD, seeds, comparison) of the confirmatory family's worst comparison: each
    comparison's own spread, the two-sided t test at α/m."""
    members = exp.confirmatory.members()
    level = ALPHA / len(members)
    worst = (math.nan, math.nan, 0, "")
    for name, key in members:
        d = differences(rows, name, exp.reference, key)
        n = len(d)
        sd = float(d.std(ddof=1)) if n >= 2 else math.nan
        value = mde(sd, n, level)
        if not math.isfinite(value):
            return math.nan, math.nan, n, f"{name} ({key})"
        if not value <= worst[0]:
            worst = (value, sd, n, f"{name} ({key})")
    return worst


def seeds_needed(sd: float, target: float, max_seeds: int, alpha: float = ALPHA) -> int:
    """The fewest seeds whose MDE at paired spread sd is at most ``target`` (<= max_seeds)."""
    for n in range(2, max_seeds + 1):
        if mde(sd, n, alpha) <= target:
            return n
    return max_seeds


def check_target(exp: Experiment, target: float, max_seeds: int, seeds: int) -> None:
    if exp.is_search or not exp.reference or not exp.confirmatory:
        raise ConfigError(f"--target-mde: experiment {exp.name} needs configurations and a "
                          "'reference' (the primary endpoint is a paired difference)")
    if not target > 0:
        raise ConfigError(f"--target-mde must be a positive number of mm, got {target}")
    if max_seeds < seeds:
        raise ConfigError(f"--max-seeds {max_seeds} is below the first batch's {seeds} seeds")


def run_to_target(exp: Experiment, seeds: int, target: float, max_seeds: int,
                  run_batch: Callable[[int, int], pa.Table],
                  kept: pa.Table | None = None) -> tuple[pa.Table, dict]:
    """Run ``run_batch(first_seed, n_seeds) -> trials table`` until the worst Holm-aware MDE
    of the confirmatory family is at most ``target`` or ``max_seeds`` ran; returns (all
    trials, the power record).
    ``kept``: the trials of seeds ``0 .. seeds - 1`` from an earlier sweep (``--extend``),
    which then stand for the first batch: only the seeds after them run."""
    check_target(exp, target, max_seeds, seeds)
    tables, done = [kept if kept is not None else run_batch(0, seeds)], seeds
    while True:
        rows = pa.concat_tables(tables, promote_options="default").to_pylist()
        value, sd, n, worst = family_mde(exp, rows)
        if math.isfinite(value) and value <= target:
            reason = f"the minimal detectable difference reached the target at {done} seeds"
            break
        if done >= max_seeds:
            reason = f"--max-seeds {max_seeds} was reached before the target"
            break
        level = ALPHA / len(exp.confirmatory)
        more = seeds_needed(sd, target, max_seeds, level) if math.isfinite(sd) else done + 1
        more = min(max_seeds, max(done + 1, more))
        tables.append(run_batch(done, more - done))
        done = more
    record = {"target_mde": target, "max_seeds": max_seeds, "seeds": done, "mde": value,
              "paired_sd": sd, "endpoint": exp.primary, "reference": exp.reference,
              "stopped_by": reason, "rule": "worst", "family": len(exp.confirmatory),
              "comparison": worst}
    return pa.concat_tables(tables, promote_options="default"), record
