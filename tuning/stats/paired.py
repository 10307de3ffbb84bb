"""Paired statistics behind every table and decision: per-seed differences to a reference
(their intervals and tests: :mod:`tuning.stats.crossed`), Holm's step-down
adjustment within a family of comparisons (Holm 1979), the minimal detectable paired
difference at a given power (for any standard error and degrees of freedom, so also for the
seeds x images error of :mod:`tuning.stats.crossed` and at Holm's level), and the spread
pooled over comparisons.

Trials of one seed share the data order, the flips and, in the frozen-features regime, the
encoder, so the seed's common effect cancels in ``configuration - reference`` of that seed;
the tests on them are one-sample t-tests (the paired t-test).

The minimal detectable difference (MDE) is the exact one of the two-sided paired t-test: the
true mean difference Δ at which a test at level α rejects with probability ``power``, where the
statistic follows the noncentral t with n - 1 degrees of freedom and noncentrality
Δ·√n / sd (``scipy.stats.nct``), solved for Δ with ``scipy.optimize.brentq``. It uses only the
observed spread (sd of the differences), never their mean; sizing a sweep by it is still not
exactly error-neutral (:mod:`tuning.stats.sequential` measures by how much).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

ALPHA, POWER = 0.05, 0.8


def paired_by_seed(rows: list[dict], configuration: str, reference: str, key: str
                   ) -> dict[int, float]:
    """seed -> ``configuration - reference`` of ``key``, over the seeds both finished (status
    ``ok``, a finite value), in seed order (``rows``: trial rows with ``configuration``,
    ``seed``, ``status`` and the metric)."""
    def values(name):
        return {int(r["seed"]): r[key] for r in rows
                if r["configuration"] == name and r["status"] == "ok"
                and r.get(key) is not None and math.isfinite(r[key])}
    ref, own = values(reference), values(configuration)
    return {s: own[s] - ref[s] for s in sorted(set(ref) & set(own))}


def differences(rows: list[dict], configuration: str, reference: str, key: str) -> np.ndarray:
    """The per-seed differences of :func:`paired_by_seed`, as an array."""
    return np.asarray(list(paired_by_seed(rows, configuration, reference, key).values()), float)


def format_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (NaN entries are not tested and stay NaN):
    the i-th smallest of m p-values becomes max over j <= i of (m - j + 1)·p_(j), capped
    at 1. Rejecting where the adjusted p < α keeps the family-wise error rate at α."""
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, math.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = len(tested)
    if m == 0:
        return out.tolist()
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out.tolist()


def power_se(delta: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """Power of a two-sided t test at level ``alpha`` whose estimate has standard error se
    and df degrees of freedom, for a true difference delta: the noncentral t with
    noncentrality delta / se (``scipy.stats.nct``)."""
    nc = delta / se
    crit = stats.t.ppf(1 - alpha / 2, df)
    lower = stats.nct.cdf(-crit, df, nc)  # NaN where it underflows (large nc, df = 1)
    return float(stats.nct.sf(crit, df, nc) + (lower if math.isfinite(lower) else 0.0))


def mde_se(se: float, df: float, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest true difference a two-sided t test at level ``alpha`` (estimate with
    standard error se, df degrees of freedom) detects with probability ``target``."""
    if not (math.isfinite(se) and math.isfinite(df)) or df < 1:
        return math.nan
    if se == 0:  # no spread: any difference shows
        return 0.0
    upper = se
    while power_se(upper, se, df, alpha) < target:
        upper *= 2
    return float(optimize.brentq(lambda x: power_se(x, se, df, alpha) - target, 0.0, upper,
                                 xtol=1e-6))


def power(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` for a true difference delta."""
    return power_se(delta, sd / math.sqrt(n), n - 1, alpha)


def mde(sd: float, n: int, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest true paired difference detected with probability ``target`` by the
    two-sided paired t-test at level ``alpha`` with n seeds and paired spread sd (mm);
    NaN below 2 seeds."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return mde_se(sd / math.sqrt(n), n - 1, alpha, target)


def pooled_sd(groups: list[np.ndarray]) -> tuple[float, int]:
    """The paired spread pooled over comparisons (root of the df-weighted mean variance)
    and the smallest number of seeds among them."""
    usable = [g for g in groups if len(g) >= 2]
    if not usable:
        return math.nan, max((len(g) for g in groups), default=0)
    df = sum(len(g) - 1 for g in usable)
    var = sum((len(g) - 1) * g.var(ddof=1) for g in usable) / df
    return float(math.sqrt(var)), min(len(g) for g in usable)
