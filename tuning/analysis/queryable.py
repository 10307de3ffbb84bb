"""Results as tables a query engine reads: the long-format per-epoch Parquet, typed search
columns and the index of every results folder.

``trials.parquet`` keeps one row per trial; its per-epoch metrics (``epochs_json``) and its
searched values (``search``) are JSON strings for the aggregation's sake. Beside it,
``epochs.parquet`` has one row per trial x epoch — trial_id, configuration, seed, status,
regime, the searched keys, epoch and every per-epoch metric as a typed column — and the
trials table gains each searched key as a typed column of its own, so pandas
(``pd.read_parquet``) and duckdb (``SELECT ... FROM 'results/*/*/epochs.parquet'``) query
them directly. Both tables take the union of every row's columns (:func:`table_of_rows`):
a trial that failed before it reported, first in the grid, drops no other trial's metrics.
``results/index.md`` (``hkmr report --index``) lists every results folder with
its experiment, preset, regime, seeds, date and command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hkmr.eval.results import markdown_table
from hkmr.io import atomic_path

EPOCHS_FILE = "epochs.parquet"
INDEX_FILE = "index.md"
#: the trial columns every epoch row repeats
_TRIAL_KEYS = ("trial_id", "configuration", "seed", "status", "regime")
#: the declared types of the trials table's own columns (every other column is a float metric)
TRIAL_TYPES = {"trial_id": pa.string(), "configuration": pa.string(), "seed": pa.int64(),
                "status": pa.string(), "error": pa.string(), "search": pa.string(),
                "epochs_json": pa.string(), "node_id": pa.string(), "regime": pa.string(),
                "encoder_hash": pa.string(), "unreadable": pa.string()}


def table_of_rows(rows: list[dict], declared: dict[str, pa.DataType] | None = None,
                  default: pa.DataType | None = None) -> pa.Table:
    """An Arrow table of ``rows`` with the union of all rows' columns (in order of first
    appearance; a row without a column holds null there). A column's type is ``declared[name]``,
    else ``default``, else inferred from all its values; a column whose values no one type
    holds raises ValueError naming it (``pa.Table.from_pylist`` takes the first row's columns
    only and would drop the others)."""
    declared = declared or {}
    names = list(dict.fromkeys([*declared, *(k for r in rows for k in r)]))
    columns = {}
    for name in names:
        values = [r.get(name) for r in rows]
        try:
            columns[name] = pa.array(values, declared.get(name, default))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise ValueError(f"column {name!r}: its values have no common type ({err})") from None
    return pa.table(columns) if columns else pa.table({})


def _search(row: dict) -> dict:
    return json.loads(row.get("search") or "{}")


def with_search_columns(trials: pa.Table) -> pa.Table:
    """``trials`` with one typed column per searched key (the key's name, e.g.
    ``model.outer_iters``); a trials table that has them already is returned as it is."""
    rows = trials.to_pylist()
    keys = sorted({k for r in rows for k in _search(r)} - set(trials.column_names))
    for key in keys:
        trials = trials.append_column(key, pa.array([_search(r).get(key) for r in rows]))
    return trials


def epochs_table(trials: pa.Table) -> pa.Table:
    """One row per trial x epoch (long format) from a trials table's ``epochs_json``."""
    rows = []
    for trial in trials.to_pylist():
        head = {k: trial.get(k) for k in _TRIAL_KEYS}
        head.update(_search(trial))
        rows += [{**head, **epoch} for epoch in json.loads(trial.get("epochs_json") or "[]")]
    # trial keys first, then the searched keys and every epoch's metrics, of all rows
    return table_of_rows(rows, {k: TRIAL_TYPES[k] for k in _TRIAL_KEYS})


def write_epochs(trials: pa.Table, out_dir: Path) -> Path:
    path = Path(out_dir) / EPOCHS_FILE
    with atomic_path(path) as tmp:
        pq.write_table(epochs_table(trials), tmp)
    return path


def _info(path: Path) -> dict:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"hkmr_sweep", b"{}"))


def index_rows(root: Path) -> list[list[str]]:
    """One row per results folder under ``root`` (every folder with a trials.parquet)."""
    body = []
    for path in sorted(Path(root).rglob("trials.parquet")):
        folder = path.parent.relative_to(root).as_posix()
        try:
            info = _info(path)
            table = pq.read_table(path, columns=None)
        except (OSError, ValueError, pa.ArrowException) as err:  # listed, not skipped
            body.append([f"`{folder}/`", f"unreadable: {path}: {type(err).__name__}: "
                         f"{str(err).splitlines()[0][:120]}", "?", "?", "?", "?", "—", "—"])
            continue
        names = table.column_names
        regime_col = "regime" if "regime" in names else "protocol"
        regimes = sorted({v or "end_to_end" for v in table.column(regime_col).to_pylist()}) \
            if regime_col in names else ["end_to_end"]
        command = info.get("command") or "—"
        body.append([f"[`{folder}/`]({folder}/tables.md)", info.get("experiment", "?"),
                     info.get("preset", "?"), ", ".join(regimes).replace("frozen features",
                                                                         "frozen_features"),
                     str(info.get("seeds", "?")), str(table.num_rows),
                     (info.get("date") or "—")[:10], f"`{command}`"])
    return body


def write_index(root: str | Path) -> Path:
    """``root/index.md``: every results folder under ``root``, regenerated from the
    provenance its trials.parquet records."""
    root = Path(root)
    text = ("# Index of results\n\nEvery folder under `results/` with a `trials.parquet`, from "
            "the provenance it records (regenerate: `hkmr report --index results`). Per-epoch "
            f"metrics of each folder: `{EPOCHS_FILE}` (one row per trial x epoch).\n\n")
    text += markdown_table(["folder", "experiment", "preset", "regime", "seeds", "trials",
                            "date", "command"], index_rows(root))
    path = root / INDEX_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
