"""The error rate of sizing seeds sequentially by the observed spread (``--target-mde``).

The rule (:mod:`tuning.procedures.seed_sizing`): after each batch of seeds, compute the
minimal detectable difference from the observed paired spreads; stop when it reaches the
target or the cap, else add the seeds the spread says are needed. The observed differences
never decide, yet the rule is not exactly neutral: it stops earlier when the spread happens
to be estimated small, and then the t statistics are larger than a fixed design's. This
module measures that by simulation, under the null (every true difference 0), with each
comparison's paired differences normal with the spread the table observed (independent
comparisons: the shared reference's correlation is left out). The family-wise type I error is
that of Holm at α over the family: some comparison is rejected exactly when the smallest
p-value is below α / m.

Two sizing rules are simulated: ``worst`` (the worst comparison's MDE at α / m, what the sweep
uses now) and ``pooled`` (the spread pooled over the primary endpoint's comparisons, MDE at α:
what sweeps made before the confirmatory family used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .paired import ALPHA, mde, pooled_sd

REPETITIONS = 20_000


@dataclass(frozen=True)
class SequentialError:
    fwer: float  # simulated family-wise type I error
    mc_error: float  # its Monte Carlo standard error
    repetitions: int
    fixed_fwer: float  # the same family's error with the mean final seed count, fixed
    mean_seeds: float


def _factors(max_seeds: int, alpha: float) -> np.ndarray:
    """k[n] with MDE(sd, n) = k[n]·sd (the MDE is linear in sd at a given n)."""
    k = np.full(max_seeds + 1, np.inf)
    for n in range(2, max_seeds + 1):
        k[n] = mde(1.0, n, alpha)
    return k


def next_seeds(sd: float, k: np.ndarray, target: float, done: int, max_seeds: int) -> int:
    """The rule's next total: the fewest seeds whose MDE at spread sd reaches the target,
    at least one more than ``done``, at most ``max_seeds``."""
    ok = np.flatnonzero(k * sd <= target)
    want = int(ok[0]) if len(ok) else max_seeds
    return min(max_seeds, max(done + 1, want))


def simulate(sds, first: int, target: float, max_seeds: int, rule: str = "worst",
             sizing: list[int] | None = None, alpha: float = ALPHA,
             repetitions: int = REPETITIONS, seed: int = 0) -> SequentialError:
    """Family-wise type I error of Holm at ``alpha`` after sequential sizing. ``sds``: each
    comparison's true paired SD; ``sizing``: the indices of the comparisons the rule looks at
    (default: all)."""
    sds = np.asarray(sds, float)
    m = len(sds)
    sizing = list(range(m)) if sizing is None else sizing
    k = _factors(max_seeds, alpha / m if rule == "worst" else alpha)
    rng = np.random.default_rng(seed)
    rejected, seeds_used = np.zeros(repetitions, bool), np.zeros(repetitions, int)
    for r in range(repetitions):
        d = rng.normal(0.0, sds, (max_seeds, m))
        n = first
        while True:
            x = d[:n, sizing]
            sd = (x.std(axis=0, ddof=1).max() if rule == "worst"
                  else pooled_sd(list(x.T))[0])
            if k[n] * sd <= target or n >= max_seeds:
                break
            n = next_seeds(sd, k, target, n, max_seeds)
        x = d[:n]
        t = x.mean(axis=0) / (x.std(axis=0, ddof=1) / math.sqrt(n))
        p = 2 * stats.t.sf(np.abs(t), n - 1)
        rejected[r] = p.min() < alpha / m
        seeds_used[r] = n
    fwer = float(rejected.mean())
    fixed = 1 - (1 - alpha / m) ** m  # Holm's error for m independent true nulls, fixed n
    return SequentialError(fwer, math.sqrt(fwer * (1 - fwer) / repetitions), repetitions,
                           fixed, float(seeds_used.mean()))
