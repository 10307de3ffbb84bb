"""PNG plots of aggregated sweeps: MPJPE against iterations (Table 3) and against the degree
of occlusion (Fig. 6), mean ± 95 % CI over seeds (drawn by :mod:`hkmr.eval.figures`)."""

from __future__ import annotations

import re
from pathlib import Path

from hkmr.data.occlusion import DEGREE_PROTOCOLS, DEGREES, KINDS, degree_key
from hkmr.eval.figures import errorbar, plot_degree_curves, pyplot, save_png

from ..experiment.layouts import ColumnsTable
from ..stats.intervals import cell


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def plot_iterations(layout: ColumnsTable, rows: list[dict], out_dir: Path) -> Path:
    """Table 3 as a plot: the metric of each column (an iteration count) for P1 and P2."""
    metric = layout.metric
    fig, ax = pyplot().subplots(figsize=(4.5, 3.2))
    cols = layout.columns
    x = [float(label) for label, _ in cols]
    for protocol in ("P1", "P2"):
        errorbar(ax, x, [cell(rows, name, f"{protocol}_standard_{metric}")[:2]
                         for _, name in cols], label=protocol)
    ax.set_xlabel(layout.plot_axis())
    ax.set_ylabel(f"{metric.upper().replace('_', '-')} (mm)")
    ax.set_xticks(x)
    ax.legend()
    ax.grid(alpha=0.3)
    return save_png(fig, out_dir / f"{_slug(layout.plot_axis())}.png")


def plot_degrees(exp, rows: list[dict], out_dir: Path) -> Path:
    """Fig. 6 over the sweep: one curve per configuration that has degree results, a row of
    panels for P1 and one for P2 (sweeps from before P2 points existed: P1 only)."""
    curves = {}
    for protocol in DEGREE_PROTOCOLS:
        curves[protocol] = {}
        for name in exp.configurations:
            by_kind = {kind: [cell(rows, name, degree_key(protocol, kind, d)) for d in DEGREES]
                       for kind in KINDS}
            if any(c[2] for points in by_kind.values() for c in points):
                curves[protocol][name] = {k: [c[:2] for c in points]
                                          for k, points in by_kind.items()}
    return plot_degree_curves(curves, out_dir / "degree_of_occlusion.png")
