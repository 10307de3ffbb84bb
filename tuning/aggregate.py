"""Aggregation: every trial of a sweep into one Arrow table, then the paper's tables and plots.

``trials.parquet`` holds one row per trial: configuration, seed, status (``ok``, ``stopped``
by the early-stopping scheduler, ``failed`` with a non-finite loss, ``error`` when the trial
crashed past its retries), the error, the per-epoch metrics and the final metrics.
``tables.md`` lays the final metrics out as the paper's Tables 1-4 with mean ± 95 %
confidence interval over seeds (Student's t) and the number of seeds. A table with a
``reference`` configuration also gets its **paired differences**: per seed, configuration minus
reference (trials of one seed share the data order, the flips and, under the frozen-encoder
protocol, the encoder, so most seed-to-seed variation cancels), with the t interval of the
mean difference and ``*`` where it excludes 0. PNG plots show MPJPE
against iterations (Table 3) and against the degree of occlusion (Fig. 6). Every file records
the command, preset, seeds, git revision and date that made it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hkmr.io import atomic_path

from .space import Experiment

OCCLUSIONS = ("standard", "bar", "circle", "rectangle")
_SKIP = {"config", "trial_id", "date", "hostname", "node_ip", "pid", "experiment_tag",
         "checkpoint_dir_name", "checkpoint_path", "done", "should_checkpoint"}


def configuration_label(config: dict) -> str:
    if "_configuration" in config:
        return config["_configuration"]
    keys = sorted(k for k in config if not k.startswith("_") and k != "seed")
    return " ".join(f"{k.split('.')[-1]}={config[k]}" for k in keys)


def _status(result, metrics: dict) -> str:
    if result.error is not None:
        return "error"
    if metrics.get("failed"):
        return "failed"
    if metrics.get("final"):
        return "ok"
    return "stopped"


def trials_table(grid) -> pa.Table:
    """One row per trial of a ResultGrid."""
    rows = []
    for result in grid:
        config = result.config or {}
        metrics = dict(result.metrics or {})
        frame = result.metrics_dataframe
        epochs = []
        if frame is not None and "epoch" in frame:
            per_epoch = frame[(frame["epoch"] > 0) & (frame.get("final", 0) != 1)]
            cols = [c for c in per_epoch.columns if c.startswith(("val_", "train_"))
                    or c in ("epoch", "images_seen", "images_per_second")]
            epochs = json.loads(per_epoch[cols].to_json(orient="records"))
        row = {"trial_id": metrics.get("trial_id") or Path(result.path).name,
               "configuration": configuration_label(config), "seed": config.get("seed", 0),
               "status": _status(result, metrics),
               "error": str(result.error) if result.error is not None else metrics.get("error"),
               "search": json.dumps({k: v for k, v in config.items()
                                     if not k.startswith("_") and k != "seed"}),
               "epochs_json": json.dumps(epochs), "node_id": metrics.get("node_id"),
               "protocol": metrics.get("protocol"), "encoder_hash": metrics.get("encoder_hash")}
        row.update({k: float(v) for k, v in metrics.items()
                    if k not in _SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)})
        rows.append(row)
    return pa.Table.from_pylist(rows)


def mean_ci(values: list[float]) -> tuple[float, float, int]:
    """Mean, half-width of the 95 % confidence interval (t-distribution; NaN for n = 1), n."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v[0]), math.nan, 1
    half = stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return float(v.mean()), float(half), n


def fmt(cell: tuple[float, float, int]) -> str:
    mean, half, n = cell
    if n == 0:
        return "—"
    return f"{mean:.2f} ± {half:.2f} (n={n})" if math.isfinite(half) else f"{mean:.2f} (n=1)"


def cell(rows: list[dict], configuration: str, key: str) -> tuple[float, float, int]:
    return mean_ci([r.get(key) for r in rows
                    if r["configuration"] == configuration and r["status"] == "ok"])


def paired_cell(rows: list[dict], configuration: str, reference: str,
                key: str) -> tuple[float, float, int]:
    """Mean ± 95 % CI of (configuration - reference) over the seeds both finished."""
    ref = {r["seed"]: r.get(key) for r in rows
           if r["configuration"] == reference and r["status"] == "ok"}
    return mean_ci([r[key] - ref[r["seed"]] for r in rows
                    if r["configuration"] == configuration and r["status"] == "ok"
                    and r.get(key) is not None and ref.get(r["seed"]) is not None])


def fmt_difference(cell: tuple[float, float, int]) -> str:
    mean, half, n = cell
    if n == 0:
        return "—"
    if not math.isfinite(half):
        return f"{mean:+.2f} (n=1)"
    return f"{mean:+.2f} ± {half:.2f} (n={n}){' *' if abs(mean) > half else ''}"


def paired_table(table: dict, rows: list[dict]) -> str:
    """The differences to ``table['reference']`` in the layout of ``table``."""
    metric, ref = table.get("metric", "mpjpe"), table["reference"]
    lines = [f"Paired difference to **{ref}** (same seed; mean ± 95 % CI; negative = lower "
             f"than {ref}; * = the interval excludes 0):", ""]
    if table.get("layout") == "rows_are_configurations":
        keys = [(f"{occ.capitalize()} {p}", f"{p}_{occ}_{metric}")
                for occ in OCCLUSIONS for p in ("P1", "P2")]
        lines += ["| | " + " | ".join(h for h, _ in keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name in (n for n in table["rows"] if n != ref):
            lines.append(f"| {name} − {ref} | " + " | ".join(
                fmt_difference(paired_cell(rows, name, ref, k)) for _, k in keys) + " |")
    else:
        cols = [(label, name) for label, name in _columns(table) if name != ref]
        lines += ["| | " + " | ".join(label for label, _ in cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        for protocol in ("P1", "P2"):
            lines.append(f"| {protocol} | " + " | ".join(
                fmt_difference(paired_cell(rows, name, ref, f"{protocol}_standard_{metric}"))
                for _, name in cols) + " |")
    return "\n".join(lines) + "\n"


def _columns(table: dict) -> list[tuple[str, str]]:
    cols = table.get("columns", [])
    return list(cols.items()) if isinstance(cols, dict) else [(c, c) for c in cols]


def markdown_table(table: dict, rows: list[dict]) -> str:
    metric = table.get("metric", "mpjpe")
    lines = [f"### {table.get('title', metric)}", ""]
    if table.get("layout") == "rows_are_configurations":
        heads = [f"{occ.capitalize()} {p}" for occ in OCCLUSIONS for p in ("P1", "P2")]
        lines += ["| | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
        for name in table["rows"]:
            cells = [fmt(cell(rows, name, f"{p}_{occ}_{metric}"))
                     for occ in OCCLUSIONS for p in ("P1", "P2")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    elif table.get("layout") == "invisible":  # Table 4 (right)
        lines += ["| | MPJPE (pixel) | PCK (%) |", "|---|---|---|"]
        for name in table["rows"]:
            cells = [fmt(cell(rows, name, key)) for key in ("invisible_mpjpe_2d_px",
                                                           "invisible_pck")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    else:
        cols = _columns(table)
        lines += ["| | " + " | ".join(label for label, _ in cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        for protocol in ("P1", "P2"):
            cells = [fmt(cell(rows, name, f"{protocol}_standard_{metric}")) for _, name in cols]
            lines.append(f"| {protocol} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if table.get("reference") and table.get("layout") != "invisible":
        text += "\n" + paired_table(table, rows)
    return text


def status_section(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    text = "Trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "\n"
    bad = [r for r in rows if r["status"] in ("failed", "error")]
    if bad:
        text += "\n| trial | configuration | seed | status | error |\n|---|---|---|---|---|\n"
        for r in bad:
            error = (r.get("error") or "").replace("|", "/").splitlines()
            text += (f"| {r['trial_id']} | {r['configuration']} | {r['seed']} | {r['status']} "
                     f"| {error[0][:160] if error else ''} |\n")
    return text


def search_table(rows: list[dict]) -> str:
    """Search experiments: every sampled configuration, best first."""
    names = sorted({r["configuration"] for r in rows})
    keys = ("P1_standard_mpjpe", "P2_standard_mpjpe", "P1_standard_pa_mpjpe")
    cells = {n: [cell(rows, n, k) for k in keys] for n in names}
    names.sort(key=lambda n: (math.isnan(cells[n][0][0]), cells[n][0][0]))
    lines = ["### Sampled configurations, best first", "",
             "| configuration | P1 MPJPE | P2 MPJPE | P1 PA-MPJPE | trials (statuses) |",
             "|---|---|---|---|---|"]
    for n in names:
        statuses = ", ".join(sorted(r["status"] for r in rows if r["configuration"] == n))
        lines.append(f"| {n} | " + " | ".join(fmt(c) for c in cells[n]) + f" | {statuses} |")
    return "\n".join(lines) + "\n"


def trials_section(rows: list[dict]) -> str:
    """What each trial had: protocol, epochs, steps, images seen and throughput."""
    lines = ["### Trials", "", "| configuration | seed | status | protocol | epochs | steps "
             "| images seen | images/s | work (s) | val MPJPE | val PA-MPJPE |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def num(r, key, digits=0):
        v = r.get(key)
        return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"

    for r in sorted(rows, key=lambda r: (r["configuration"], r["seed"])):
        lines.append(f"| {r['configuration']} | {r['seed']} | {r['status']} | "
                     f"{r.get('protocol') or 'end to end'} | {num(r, 'epoch')} | "
                     f"{num(r, 'step')} | {num(r, 'images_seen')} | "
                     f"{num(r, 'images_per_second', 1)} | {num(r, 'trial_work_seconds', 1)} | "
                     f"{num(r, 'val_mpjpe', 1)} | {num(r, 'val_pa_mpjpe', 1)} |")
    return "\n".join(lines) + "\n"


def header(exp: Experiment, preset: str, info: dict[str, Any]) -> str:
    return (f"# {exp.title}\n\nExperiment `{exp.name}`, preset `{preset}`, seeds "
            f"{info.get('seeds', '?')}; made by `{info.get('command') or 'hkmr sweep'}` at git "
            f"revision `{info.get('git_revision')}` on {info.get('date')}. Cells: mean ± 95 % "
            f"CI over seeds (n seeds); test split of the synthetic benchmark, mm.\n\n")


def aggregate_grid(grid, exp: Experiment, preset: str, out_dir: str | Path,
                   sweep_info: dict | None = None) -> Path:
    """Write trials.parquet, tables.md and plots for a ResultGrid into ``out_dir``."""
    return write_results(trials_table(grid), exp, preset, out_dir, sweep_info or {})


def write_results(table: pa.Table, exp: Experiment, preset: str, out_dir: str | Path,
                  info: dict) -> Path:
    from .plots import plot_degrees, plot_iterations

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "trials.parquet") as tmp:
        pq.write_table(table.replace_schema_metadata(
            {"hkmr_sweep": json.dumps(info, default=str)}), tmp)
    rows = table.to_pylist()
    text = header(exp, preset, info) + status_section(rows) + "\n"
    for spec in exp.tables:
        text += markdown_table(spec, rows) + "\n"
        if spec.get("plot"):
            png = plot_iterations(spec, rows, out_dir)
            text += f"![{spec['plot']}]({png.name})\n\n"
    if exp.is_search:
        text += search_table(rows) + "\n"
    if "degrees" in exp.plots:
        png = plot_degrees(exp, rows, out_dir)
        text += f"![degree of occlusion]({png.name})\n\n"
    text += trials_section(rows)
    with atomic_path(out_dir / "tables.md") as tmp:
        tmp.write_text(text)
    return out_dir
