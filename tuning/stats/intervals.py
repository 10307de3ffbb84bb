"""Cells of the aggregated tables: a metric of one configuration over its seeds, as mean ± 95 %
confidence interval (Student's t); paired differences are :mod:`tuning.stats.paired`'s. A cell
is ``(mean, half-width, n)``; formatted by :func:`hkmr.eval.results.format_value`."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci(values: list[float]) -> tuple[float, float, int]:
    """Mean, half-width of the 95 % confidence interval (t-distribution; NaN for n = 1), n."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v[0]), math.nan, 1
    half = stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return float(v.mean()), float(half), n


def cell(rows: list[dict], configuration: str, key: str) -> tuple[float, float, int]:
    return mean_ci([r.get(key) for r in rows
                    if r["configuration"] == configuration and r["status"] == "ok"])
