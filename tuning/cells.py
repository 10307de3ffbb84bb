"""Cells of the aggregated tables: a metric of one configuration over its seeds, as mean ± 95 %
confidence interval (Student's t); paired differences are :mod:`tuning.paired`'s.
A cell is ``(mean, half-width, n)``; formatted by :func:`hkmr.eval.results.format_value`."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from hkmr.eval.suites import COLUMNS as OCCLUSIONS


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


def columns(table: dict) -> list[tuple[str, str]]:
    cols = table.get("columns", [])
    return list(cols.items()) if isinstance(cols, dict) else [(c, c) for c in cols]


def occlusion_columns(table: dict) -> list[tuple[str, str]]:
    """(label, key) of a ``rows_are_configurations`` table's columns: each of its
    ``occlusions`` (default: the standard set and every occluder, Table 1's) at P1 and P2
    (validated in :mod:`tuning.space`). Occluded-joint metrics have no standard column:
    ``occlusions: [bar, circle, rectangle]``."""
    metric = table.get("metric", "mpjpe")
    return [(f"{occ.capitalize()} {p}", f"{p}_{occ}_{metric}")
            for occ in table_occlusions(table) for p in ("P1", "P2")]


def table_occlusions(table: dict) -> tuple[str, ...]:
    """The test sets of a table: its ``occlusions`` in the rows layout, else the standard."""
    if table.get("layout") == "rows_are_configurations":
        return tuple(table.get("occlusions", OCCLUSIONS))
    return ("standard",)
