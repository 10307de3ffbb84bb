"""The paired-difference section of an aggregated table: per seed, configuration minus the
table's ``reference`` (:mod:`tuning.stats`), with

* the mean and two-sided 95 % interval of the difference (paired t),
* its p-value, Holm-adjusted over every comparison of the table (one table = one metric),
  and ``*`` where the adjusted p < 0.05,
* for an unresolved difference, the bound its interval sets ("excludes > X": differences
  beyond ±X mm are excluded), so "no significant difference" reads as what it is,
* under the table, the minimal detectable paired difference at 80 % power of the standard
  test set's P1 and P2, from the paired spread pooled over the table's comparisons.
"""

from __future__ import annotations

import math

import numpy as np

from hkmr.eval.results import markdown_table

from .cells import columns, occlusion_columns, table_occlusions
from .stats import ALPHA, POWER, Paired, finite, holm, mde, paired, pooled_sd

_DASH = "—"


def differences(rows: list[dict], configuration: str, reference: str, key: str) -> np.ndarray:
    """Per-seed ``configuration - reference`` of ``key`` over the seeds both finished."""
    ref = {r["seed"]: r.get(key) for r in rows
           if r["configuration"] == reference and r["status"] == "ok"}
    return finite([r[key] - ref[r["seed"]] for r in rows
                   if r["configuration"] == configuration and r["status"] == "ok"
                   and r.get(key) is not None and ref.get(r["seed"]) is not None])


def format_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def format_paired(test: Paired, p_holm: float, digits: int = 2) -> str:
    """``-2.00 ± 0.40 (n=3) p=0.004 *`` or ``+0.07 ± 1.22 (n=3) p=1.000; excludes > 1.29``
    (no ``|``: the text stands in a Markdown table cell)."""
    if test.n == 0 or not math.isfinite(test.mean):
        return _DASH
    if test.n < 2:
        return f"{test.mean:+.{digits}f} (n=1)"
    text = f"{test.mean:+.{digits}f} ± {test.half:.{digits}f} (n={test.n}) {format_p(p_holm)}"
    if p_holm < ALPHA:
        return text + " *"
    return text + f"; excludes > {test.excluded_above:.{digits}f}"


def _layout(table: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(row label, configuration or key) pairs and (column label, ...) of the section."""
    metric, ref = table.get("metric", "mpjpe"), table["reference"]
    if table.get("layout") == "rows_are_configurations":
        names = [(f"{name} − {ref}", name) for name in table["rows"] if name != ref]
        return names, occlusion_columns(table)
    names = [(label, name) for label, name in columns(table) if name != ref]
    keys = [(p, f"{p}_standard_{metric}") for p in ("P1", "P2")]
    return keys, names


def table_tests(table: dict, rows: list[dict]) -> dict[tuple[str, str], tuple[Paired, float]]:
    """Every comparison of the table's paired section, keyed by (row, column) of
    :func:`_layout`: its paired test and Holm-adjusted p-value (the family: this table)."""
    ref = table["reference"]
    by_rows = table.get("layout") == "rows_are_configurations"
    lines, cols = _layout(table)
    tests = {}
    for _, a in lines:
        for _, b in cols:
            name, key = (a, b) if by_rows else (b, a)
            tests[a, b] = paired(differences(rows, name, ref, key))
    return dict(zip(tests, zip(tests.values(), holm([t.p for t in tests.values()]))))


def paired_table(table: dict, rows: list[dict]) -> str:
    """The paired differences to ``table['reference']`` in the layout of ``table``."""
    metric, ref = table.get("metric", "mpjpe"), table["reference"]
    lines, cols = _layout(table)
    results = table_tests(table, rows)
    tests = {cell: test for cell, (test, _) in results.items()}
    adjusted = {cell: p for cell, (_, p) in results.items()}
    family = sum(1 for p in adjusted.values() if math.isfinite(p))
    body = [[label] + [format_paired(tests[a, b], adjusted[a, b]) for _, b in cols]
            for label, a in lines]
    tested = (f"p: two-sided paired t-test, Holm-adjusted over the {family} comparisons of "
              f"this table; * = adjusted p < 0.05; excludes > X: the interval rules out "
              f"differences larger than X mm either way" if family else
              "one seed: no interval, no test")
    title = [f"Paired difference to **{ref}** (same seed; mean ± 95 % CI; negative = lower "
             f"than {ref}; {tested}):", ""]
    text = "\n".join(title) + "\n" + markdown_table([""] + [h for h, _ in cols], body)
    return text + "\n" + power_line(rows, table, metric) + "\n"


def power_line(rows: list[dict], table: dict, metric: str) -> str:
    """The minimal detectable paired difference at P1 and P2 on the table's first test set
    (the standard one, unless the table has none)."""
    names = [n for n in _configurations(table) if n != table["reference"]]
    occlusion = table_occlusions(table)[0]
    parts = []
    for protocol in ("P1", "P2"):
        key = f"{protocol}_{occlusion}_{metric}"
        sd, n = pooled_sd([differences(rows, name, table["reference"], key) for name in names])
        value = mde(sd, n)
        parts.append(f"{protocol} {value:.2f} mm (paired SD {sd:.2f} mm, n={n})"
                     if math.isfinite(value) else f"{protocol} — (n={n})")
    return (f"Minimal detectable paired difference, {occlusion} test set ({POWER:.0%} power, "
            f"two-sided {ALPHA:.0%}, exact noncentral t, one comparison; paired SD pooled over "
            f"this table's comparisons): " + "; ".join(parts) + ".")


def _configurations(table: dict) -> list[str]:
    if table.get("layout") == "rows_are_configurations":
        return list(table["rows"])
    return [name for _, name in columns(table)]
