"""Aggregation: every trial of a sweep into one Arrow table, then the paper's tables and plots.

``trials.parquet`` holds one row per trial: configuration, seed, status (``ok``, ``stopped``
by the early-stopping scheduler or an interrupted sweep, ``failed`` with a non-finite loss,
``error`` when the trial crashed past its retries), the error, the per-epoch metrics, the final
metrics and ``unreadable``: the file and line of a trial's ``result.json`` that could not be
read (its epochs there are missing from the table, and ``tables.md`` lists the trial). Its
columns are the union of every trial's, with declared types
(:func:`tuning.analysis.queryable.table_of_rows`).
``tables.md`` lays the final metrics out as the paper's Tables 1-4 with mean ± 95 %
confidence interval over seeds (Student's t) and the number of seeds. First comes the
experiment's **confirmatory family** (:mod:`tuning.analysis.confirmatory_section`): the paired
comparisons its claim is about, tested with Holm over the family (t and sign-flip), with
their power; a table with a ``reference`` configuration then shows **paired differences**
descriptively: per seed, configuration minus reference (trials of one seed share the data
order, the flips and, under the frozen-encoder protocol, the encoder, so most seed-to-seed
variation cancels), with intervals over seeds, or seeds x test images where the folder has
per-image errors (:mod:`tuning.analysis.estimates`; each table's layout,
:mod:`tuning.experiment.layouts`). PNG plots show MPJPE
against iterations (Table 3) and against the degree of occlusion (Fig. 6). Every file records
the command, preset, seeds, git revision and date that made it.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hkmr.eval.results import format_value as fmt
from hkmr.eval.results import markdown_table
from hkmr.io import atomic_path

from ..experiment.schema import Experiment
from ..experiment.trial_spec import SEED, configuration_label, search_values
from ..stats.intervals import cell
from .confirmatory_section import confirmatory_section
from .estimates import Estimates
from .image_error_files import read_images
from .image_errors import save_images
from .plots import plot_degrees, plot_iterations
from .power_statement import extension_statement, power_statement
from .queryable import TRIAL_TYPES, table_of_rows, with_search_columns, write_epochs

_SKIP = {"config", "trial_id", "date", "hostname", "node_ip", "pid", "experiment_tag",
         "checkpoint_dir_name", "checkpoint_path", "done", "should_checkpoint"}
#: the trial table's "protocol" column of results written before the training regime had
#: its own name
_OLD_REGIME = {"frozen features": "frozen_features", "end to end": "end_to_end"}


def upgrade_trials(table: pa.Table) -> pa.Table:
    """A trials table of an older hkmr in today's vocabulary (``protocol`` -> ``regime``)."""
    names = table.column_names
    if "protocol" not in names or "regime" in names:
        return table
    values = [_OLD_REGIME.get(v, v) for v in table.column("protocol").to_pylist()]
    i = names.index("protocol")
    return table.set_column(i, "regime", pa.array(values, pa.string()))


def _status(result, metrics: dict) -> str:
    if result.error is not None:
        return "error"
    if metrics.get("failed"):
        return "failed"
    if metrics.get("final"):
        return "ok"
    return "stopped"


def status_counts(statuses) -> str:
    """``"1 error, 2 ok, 3 stopped"``: the one wording of the trial counts (the statuses of
    ``trials.parquet``: ok, stopped, failed, error), used by ``tables.md`` and the line after
    a sweep alike, so the two never disagree (Ray's own "0 errored" did not count the
    stopped trials)."""
    return ", ".join(f"{n} {s}" for s, n in sorted(Counter(statuses).items()))


def grid_statuses(grid) -> list[str]:
    """The status of every trial of a ResultGrid, as the trials table records it."""
    return [_status(result, dict(result.metrics or {})) for result in grid]


def unreadable_result(result) -> str | None:
    """``FILE line N: why`` for the first line of a trial's ``result.json`` that is not
    JSON (Ray skips such lines with a warning, and the epochs there are lost), else None."""
    fs = getattr(result, "filesystem", None)
    path = posixpath.join(str(result.path), "result.json")
    try:
        if fs is None:
            text = Path(path).read_text()
        else:
            with fs.open_input_stream(path) as fh:
                text = fh.read().decode(errors="replace")
    except (OSError, FileNotFoundError) as err:
        # a trial that never reported has no file; one that reported must have it
        return f"{path}: {type(err).__name__}: {err}" if result.metrics else None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as err:
                return f"{path} line {number}: {err}"
    return None


def trials_table(grid, exp: Experiment) -> pa.Table:
    """One row per trial of a ResultGrid."""
    rows = []
    for result in grid:
        config = result.config or {}
        metrics = dict(result.metrics or {})
        frame = result.metrics_dataframe
        epochs = []
        if frame is not None and "epoch" in frame:
            per_epoch = frame[frame["epoch"] > 0]  # the last epoch's row is the final one
            cols = [c for c in per_epoch.columns if c.startswith(("val_", "train_"))
                    or c in ("epoch", "images_seen", "images_per_second")]
            epochs = json.loads(per_epoch[cols].to_json(orient="records"))
        row = {"trial_id": metrics.get("trial_id") or Path(result.path).name,
               "configuration": configuration_label(config, exp), "seed": config.get(SEED, 0),
               "status": _status(result, metrics),
               "error": str(result.error) if result.error is not None else metrics.get("error"),
               "search": json.dumps(search_values(config, exp)),
               "epochs_json": json.dumps(epochs), "node_id": metrics.get("node_id"),
               "regime": metrics.get("regime"), "encoder_hash": metrics.get("encoder_hash"),
               "unreadable": unreadable_result(result)}
        row.update({k: float(v) for k, v in metrics.items()
                    if k not in _SKIP and k not in row and isinstance(v, (int, float))
                    and not isinstance(v, bool)})
        rows.append(row)
    return table_of_rows(rows, TRIAL_TYPES, default=pa.float64())


def status_section(rows: list[dict]) -> str:
    """The trial counts by status and a table of every trial that failed, errored or whose
    results could not all be read (with the file)."""
    text = "Trials: " + status_counts(r["status"] for r in rows) + "\n"
    bad = [r for r in rows if r["status"] in ("failed", "error") or r.get("unreadable")]
    if bad:
        body = []
        for r in bad:
            error = (r.get("error") or "").replace("|", "/").splitlines()
            reason = error[0][:160] if error else ""
            if r.get("unreadable"):
                reason = (reason + "; " if reason else "") + "unreadable: " + r["unreadable"]
            body.append([r.get("trial_id") or "?", r["configuration"], str(r["seed"]),
                         r["status"], reason.replace("|", "/")])
        text += "\n" + markdown_table(["trial", "configuration", "seed", "status", "error"], body)
    return text


def search_table(rows: list[dict]) -> str:
    """Search experiments: every sampled configuration, best first."""
    names = sorted({r["configuration"] for r in rows})
    keys = ("P1_standard_mpjpe", "P2_standard_mpjpe", "P1_standard_pa_mpjpe")
    cells = {n: [cell(rows, n, k) for k in keys] for n in names}
    names.sort(key=lambda n: (math.isnan(cells[n][0][0]), cells[n][0][0]))
    body = [[n] + [fmt(c) for c in cells[n]]
            + [", ".join(sorted(r["status"] for r in rows if r["configuration"] == n))]
            for n in names]
    return "### Sampled configurations, best first\n\n" + markdown_table(
                   ["configuration", "P1 MPJPE", "P2 MPJPE", "P1 PA-MPJPE",
                    "trials (statuses)"], body)


def trials_section(rows: list[dict]) -> str:
    """What each trial had: regime, epochs, steps, images seen and throughput."""
    def num(r, key, digits=0):
        v = r.get(key)
        return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"

    body = [[r["configuration"], str(r["seed"]), r["status"], r.get("regime") or "end_to_end",
             num(r, "epoch"), num(r, "step"), num(r, "images_seen"),
             num(r, "images_per_second", 1), num(r, "trial_work_seconds", 1),
             num(r, "val_mpjpe", 1), num(r, "val_pa_mpjpe", 1)]
            for r in sorted(rows, key=lambda r: (r["configuration"], r["seed"]))]
    return "### Trials\n\n" + markdown_table(
                   ["configuration", "seed", "status", "regime", "epochs", "steps",
                    "images seen", "images/s", "work (s)", "val MPJPE", "val PA-MPJPE"], body)


def header(exp: Experiment, preset: str, info: dict[str, Any]) -> str:
    return (f"# {exp.title}\n\nExperiment `{exp.name}`, preset `{preset}`, seeds "
            f"{info.get('seeds', '?')}; made by `{info.get('command') or 'hkmr sweep'}` at git "
            f"revision `{info.get('git_revision')}` on {info.get('date')}. Cells: mean ± 95 % "
            f"CI over seeds (n seeds); test split of the synthetic benchmark, mm.\n\n"
            + "".join(extension_statement(record) for record in info.get("extensions", []))
            + (power_statement(info["power"]) if info.get("power") else ""))


def aggregate_grid(grid, exp: Experiment, preset: str, out_dir: str | Path,
                   sweep_info: dict | None = None) -> Path:
    """Write trials.parquet, epochs.parquet (:mod:`tuning.analysis.queryable`), images.parquet
    (:mod:`tuning.analysis.image_errors`), tables.md and plots for a ResultGrid into ``out_dir``."""
    trials = trials_table(grid, exp)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    save_images(grid, trials, Path(out_dir))  # first: the tables' intervals read them
    return write_results(trials, exp, preset, out_dir, sweep_info or {})


def write_results(table: pa.Table, exp: Experiment, preset: str, out_dir: str | Path,
                  info: dict) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = with_search_columns(table)
    write_epochs(table, out_dir)
    with atomic_path(out_dir / "trials.parquet") as tmp:
        pq.write_table(table.replace_schema_metadata(
            {"hkmr_sweep": json.dumps(info, default=str)}), tmp)
    rows = table.to_pylist()
    images = read_images(out_dir)
    estimates: dict[str, Estimates] = {}

    def estimate(reference: str | None) -> Estimates | None:
        if reference and reference not in estimates:
            estimates[reference] = Estimates(rows, reference, images)
        return estimates.get(reference)

    text = header(exp, preset, info) + status_section(rows) + "\n"
    family = exp.confirmatory
    if family and family.comparisons and any(k in r for r in rows for k in family.keys()):
        first = exp.presets[preset].seeds if preset in exp.presets else None
        text += confirmatory_section(exp.confirmatory, estimate(exp.confirmatory.reference),
                                     info.get("power"), first)
    for layout in exp.tables:
        text += layout.render(rows, estimate(layout.reference)) + "\n"
        if layout.plot_axis():
            png = plot_iterations(layout, rows, out_dir)
            text += f"![{layout.plot_axis()}]({png.name})\n\n"
    if exp.is_search:
        text += search_table(rows) + "\n"
    if "degrees" in exp.plots:
        png = plot_degrees(exp, rows, out_dir)
        text += f"![degree of occlusion]({png.name})\n\n"
    text += trials_section(rows)
    with atomic_path(out_dir / "tables.md") as tmp:
        tmp.write_text(text)
    return out_dir
