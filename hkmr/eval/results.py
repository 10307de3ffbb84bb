"""Evaluation results as files: Markdown tables in the paper's shapes, JSON, Parquet and the
Fig. 6 plot (:mod:`hkmr.eval.figures`).

The cell formatters and table functions take a number or a ``(mean, ci, n)`` tuple (a mean
over seeds with the half-width of its confidence interval), so the same code formats one run
(``hkmr eval``) and an aggregated sweep (``tuning.analysis.aggregate``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..data.occlusion import DEGREE_PROTOCOLS, DEGREES, KINDS, degree_key
from ..io import atomic_path
from .figures import plot_degree_curves
from .suites import COLUMNS, PROTOCOLS

Value = float | tuple[float, float, int]
_DASH = "—"


def format_value(value: Value | None, digits: int = 2) -> str:
    """``71.08``; ``71.08 ± 1.20 (n=3)`` for a (mean, ci, n) tuple; ``—`` when missing/NaN."""
    if value is None:
        return _DASH
    if isinstance(value, (tuple, list)):
        mean, ci, n = value
        if mean is None or not math.isfinite(mean):
            return _DASH
        if ci is None or not math.isfinite(ci):
            return f"{mean:.{digits}f} (n={int(n)})"
        return f"{mean:.{digits}f} ± {ci:.{digits}f} (n={int(n)})"
    if not math.isfinite(value):
        return _DASH
    return f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; an empty header cell renders as ``| |``."""
    def line(cells):
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]) + "\n"


def table1_markdown(values: Mapping[str, Value], metric: str = "mpjpe", digits: int = 2,
                    prefix: str = "", protocols=PROTOCOLS) -> str:
    """Table 1's shape: rows P1, P2; columns Standard, Bar, Circle, Rectangle; cells
    ``values[f"{prefix}{P}_{column}_{metric}"]`` (mm for the MPJPE metrics)."""
    header = [metric.replace("_", "-").upper().replace("-24", " (24 joints)")]
    header += [c.capitalize() for c in COLUMNS]
    rows = [[p] + [format_value(values.get(f"{prefix}{p}_{c}_{metric}"), digits)
                   for c in COLUMNS] for p in protocols]
    return markdown_table(header, rows)


def degrees_markdown(values: Mapping[str, Value], digits: int = 2) -> str:
    """Fig. 6 as a table: rows occluder kinds, columns degree of occlusion 1..5 (P1 MPJPE)."""
    header = ["MPJPE (P1) / DoC"] + [str(d) for d in DEGREES]
    rows = [[k.capitalize()] + [format_value(values.get(f"degree_{k}_{d}_mpjpe"), digits)
                                for d in DEGREES] for k in KINDS]
    return markdown_table(header, rows)


def invisible_markdown(values: Mapping[str, Value], digits: int = 2) -> str:
    """Table 4 (right): 2D error (px) and PCK (%) on self-occluded and on all joints."""
    rows = [[name, format_value(values.get(f"{key}_mpjpe_2d_px"), digits),
             format_value(values.get(f"{key}_pck"), digits),
             format_value(values.get(f"{key}_joints"), 0)]
            for name, key in (("Invisible joints", "invisible"), ("All joints", "all"))]
    return markdown_table(["", "MPJPE (pixel) ↓", "PCK (%) ↑", "joints"], rows)


def table4_markdown(runs: Mapping[str, Mapping[str, Value]], metric: str = "mpjpe",
                    digits: int = 2) -> str:
    """Table 4's shape: a row per model (e.g. SPIN and HKMR_MF); columns Standard, Bar,
    Circle, Rectangle x P1, P2 (``metric``, mm), then the invisible joints' 2D MPJPE (px)
    and PCK (%)."""
    header = [metric.replace("_", "-").upper()]
    header += [f"{c.capitalize()} {p}" for c in COLUMNS for p in PROTOCOLS]
    header += ["Invisible MPJPE (pixel) ↓", "Invisible PCK (%) ↑"]
    rows = [[name] + [format_value(values.get(f"{p}_{c}_{metric}"), digits)
                      for c in COLUMNS for p in PROTOCOLS]
            + [format_value(values.get(f"invisible_{k}"), digits) for k in ("mpjpe_2d_px", "pck")]
            for name, values in runs.items()]
    return markdown_table(header, rows)


def segmentation_markdown(values: Mapping[str, Value], digits: int = 2,
                          label: str = "model") -> str:
    """Table 5 (left): FB and part segmentation accuracy (%) and F1 (6 coarse parts as the
    paper's LSP protocol; 24 SMPL parts as well)."""
    header = ["", "FB acc.", "FB f1", "Part acc.", "Part f1", "24-part acc.", "24-part f1"]
    row = [label]
    for task in ("fb", "part", "part24"):
        row += [format_value(values.get(f"seg_{task}_acc"), digits),
                format_value(values.get(f"seg_{task}_f1"), max(digits, 2))]
    return markdown_table(header, [row])


def summary_markdown(metrics: Mapping[str, Value], title: str = "Evaluation",
                     meta: Mapping[str, object] | None = None) -> str:
    """Every table whose keys are present, with the run's metadata on top."""
    parts = [f"# {title}\n"]
    if meta:
        parts.append("\n".join(f"- {k}: {v}" for k, v in meta.items()) + "\n")
    if any(k.startswith(("P1_", "P2_")) for k in metrics):
        parts.append("## Table 1: MPJPE (mm, 14 joints, no Procrustes)\n")
        parts.append(table1_markdown(metrics))
        parts.append("PA-MPJPE (mm, 14 joints):\n\n" + table1_markdown(metrics, "pa_mpjpe"))
        parts.append("MPJPE on all 24 SMPL joints (mm):\n\n"
                     + table1_markdown(metrics, "mpjpe_24"))
        parts.append("Test images: " + ", ".join(
            f"{p} {format_value(metrics.get(f'{p}_standard_images'), 0)}" for p in PROTOCOLS)
            + "\n")
    if any(k.startswith("spin_") for k in metrics):
        groups = sorted({k.split("_")[1] for k in metrics if k.startswith("spin_")})
        joints = (meta or {}).get("spin_joints", "smpl_joints (no H36M regressor)")
        parts.append(f"## Table 1 on the SPIN-format set: MPJPE (mm; joints: {joints})\n")
        parts.append(table1_markdown(metrics, prefix="spin_", protocols=groups))
    if any(k.startswith("degree_") for k in metrics):
        parts.append("## Fig. 6: MPJPE against degree of occlusion\n")
        parts.append(degrees_markdown(metrics))
    if any(k.startswith("invisible_") for k in metrics):
        thr = format_value(metrics.get("pck_threshold_px"), 1)
        parts.append(f"## Table 4 (right): invisible joints (PCK at {thr} px)\n")
        parts.append(invisible_markdown(metrics))
    if any(k.startswith("mpii_") for k in metrics):
        thr = format_value(metrics.get("mpii_pck_threshold_px"), 1)
        parts.append(f"## Table 4 (right) on the SPIN-format MPII set (PCK at {thr} px)\n")
        parts.append(invisible_markdown({k[5:]: v for k, v in metrics.items()
                                         if k.startswith("mpii_")}))
    if any(k.startswith("seg_") for k in metrics):
        n = format_value(metrics.get("seg_images"), 0)
        parts.append(f"## Table 5 (left): segmentation of the rendered prediction ({n} images)\n")
        parts.append(segmentation_markdown(metrics))
    if any(k.startswith("lsp_seg_") for k in metrics):
        n = format_value(metrics.get("lsp_seg_images"), 0)
        parts.append(f"## Table 5 (left) on the SPIN-format LSP set ({n} images)\n")
        parts.append(segmentation_markdown({k[4:]: v for k, v in metrics.items()
                                            if k.startswith("lsp_seg_")}))
    return "\n".join(parts)


def json_ready(metrics: Mapping[str, float]) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()}


def plot_degrees(metrics: Mapping[str, float], path: Path, label: str = "model") -> Path:
    """Fig. 6 of one run: MPJPE against degree of occlusion per occluder kind, P1 and (when
    evaluated) P2."""
    curves = {p: {label: {kind: [(metrics.get(degree_key(p, kind, d), math.nan), math.nan)
                                 for d in DEGREES] for kind in KINDS}}
              for p in DEGREE_PROTOCOLS if degree_key(p, KINDS[0], DEGREES[0]) in metrics}
    return plot_degree_curves(curves, path)


def write_results(out_dir: str | Path, metrics: Mapping[str, float], meta: Mapping[str, object],
                  title: str = "Evaluation") -> dict[str, Path]:
    """Write ``metrics.json`` ({"meta", "metrics"}; NaN as null), ``metrics.parquet`` (one
    row per metric), ``summary.md`` and, with Fig. 6 keys, ``degrees.png`` — each atomically.
    Returns the paths written."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "metrics.json", "parquet": out_dir / "metrics.parquet",
             "markdown": out_dir / "summary.md"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps({"meta": dict(meta), "metrics": json_ready(metrics)},
                                  indent=2, default=str) + "\n")
    table = pa.table({"metric": pa.array(list(metrics), pa.string()),
                      "value": pa.array([float(v) for v in metrics.values()], pa.float64())})
    table = table.replace_schema_metadata({k: str(v) for k, v in meta.items()})
    with atomic_path(paths["parquet"]) as tmp:
        pq.write_table(table, tmp)
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(summary_markdown(metrics, title, meta))
    if any(k.startswith("degree_") for k in metrics):
        paths["plot"] = out_dir / "degrees.png"
        plot_degrees(metrics, paths["plot"])
    return paths
