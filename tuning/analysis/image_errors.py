"""Per-test-image errors of a sweep, and intervals bootstrapped over seeds x images.

Every trial writes the per-image errors behind its final metrics
(:func:`hkmr.eval.suites.evaluate_suites_per_image`: image id, protocol, occlusion kind and
degree, MPJPE, PA-MPJPE) as ``per_image.parquet`` into its final checkpoint; aggregation
collects them, with each trial's id, configuration and seed, into ``images.parquet`` beside
``trials.parquet`` (long format, one row per trial x image x pass; split by seed into more
files when it would exceed 1.8 MB, :mod:`tuning.analysis.image_error_files`).

A seed-level interval treats a trial's mean as one number; the bootstrap here resamples both
sources of variation of a paired difference ``configuration - reference``: the seeds (with
replacement) and, crossed with them, the test images (with replacement, the same draw for
every seed, since every trial sees the same images). The interval is the percentile interval
of the mean difference over the resamples.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hkmr.eval.results import markdown_table
from hkmr.io import atomic_path

from ..experiment.layouts import TableLayout
from .image_error_files import IMAGES_FILE, read_images, write_images

TRIAL_FILE = "per_image.parquet"


def write_trial_images(images: dict[str, list], folder: Path) -> None:
    with atomic_path(Path(folder) / TRIAL_FILE) as tmp:
        pq.write_table(pa.table(images), tmp)


def _trial_images(result) -> pa.Table | None:
    """A trial's per-image errors from its final checkpoint: the Tune result's, or for a Ray
    Train trial the ``checkpoint_path`` its ``TuneReportCallback`` reports (a folder or URI)."""
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as folder:
            path = Path(folder) / TRIAL_FILE
            return pq.read_table(path) if path.exists() else None
    where = (result.metrics or {}).get("checkpoint_path")
    if not where:
        return None
    fs, root = pafs.FileSystem.from_uri(where if "://" in where else str(Path(where).resolve()))
    path = f"{root}/{TRIAL_FILE}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    return pq.read_table(path, filesystem=fs)


def collect_images(grid, labels: list[tuple[str, str, int]]) -> pa.Table | None:
    """The per-image rows of every trial of a ResultGrid whose final checkpoint has them;
    ``labels``: (trial id, configuration, seed) of each result, in grid order."""
    parts = []
    for result, (trial_id, configuration, seed) in zip(grid, labels):
        table = _trial_images(result)
        if table is None:
            continue
        n = table.num_rows
        parts.append(table.add_column(0, "trial_id", pa.array([trial_id] * n, pa.string()))
                     .add_column(1, "configuration", pa.array([configuration] * n, pa.string()))
                     .add_column(2, "seed", pa.array([seed] * n, pa.int64())))
    return pa.concat_tables(parts) if parts else None


def save_images(grid, trials: pa.Table, out_dir: Path) -> list[Path] | None:
    """The per-image files of a ResultGrid into ``out_dir`` (``trials``: its trials table, in
    grid order); None when no trial wrote per-image errors."""
    labels = [(r["trial_id"], r["configuration"], int(r["seed"])) for r in trials.to_pylist()]
    table = collect_images(grid, labels)
    return None if table is None else write_images(table, out_dir)


def _errors(rows: list[dict], configuration: str, metric: str) -> dict[int, dict[int, float]]:
    out: dict[int, dict[int, float]] = {}
    for r in rows:
        if r["configuration"] == configuration and math.isfinite(r[metric]):
            out.setdefault(int(r["seed"]), {})[int(r["image"])] = r[metric]
    return out


def bootstrap_difference(images: pa.Table, configuration: str, reference: str,
                         protocol: str = "P1", occlusion: str = "standard",
                         metric: str = "mpjpe", resamples: int = 2000, seed: int = 0
                         ) -> tuple[float, float, float, int, int]:
    """Mean paired difference and 95 % percentile interval over seeds x images; returns
    (mean, low, high, seeds, images) over the seeds and images both configurations have."""
    rows = [r for r in images.to_pylist() if r["protocol"] == protocol
            and r["occlusion"] == occlusion and r["degree"] == 0]
    a, b = _errors(rows, configuration, metric), _errors(rows, reference, metric)
    seeds = sorted(set(a) & set(b))
    common = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds))) if seeds else []
    if not seeds or not common:
        return math.nan, math.nan, math.nan, len(seeds), len(common)
    diff = np.array([[a[s][i] - b[s][i] for i in common] for s in seeds])  # seeds x images
    rng = np.random.default_rng(seed)
    s_idx = rng.integers(0, len(seeds), (resamples, len(seeds)))
    i_idx = rng.integers(0, len(common), (resamples, len(common)))
    per_seed = diff[:, i_idx].mean(axis=2)  # seeds x resamples: each resample's image draw
    means = np.take_along_axis(per_seed.T, s_idx, axis=1).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high), len(seeds), len(common)


def bootstrap_section(images: pa.Table, tables: list[TableLayout], resamples: int = 2000) -> str:
    """Markdown: per table with a reference, each configuration's bootstrapped difference
    on the standard test set, P1 and P2."""
    lines = [f"### Paired differences bootstrapped over seeds x images ({resamples} "
             "resamples, 95 % percentile interval, standard test set)", ""]
    body, seen = [], set()
    for layout in tables:
        ref, metric = layout.reference, layout.metric
        if not ref or not layout.has_reference:
            continue
        for name in layout.configurations():
            for protocol in ("P1", "P2"):
                key = (name, ref, metric, protocol)
                if name == ref or key in seen:
                    continue
                seen.add(key)
                mean, low, high, s, n = bootstrap_difference(images, name, ref, protocol,
                                                             metric=metric,
                                                             resamples=resamples)
                body.append([f"{name} − {ref}", protocol, metric.replace("_", "-").upper(),
                             "—" if not math.isfinite(mean) else
                             f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]", str(s), str(n)])
    return "\n".join(lines) + "\n" + markdown_table(
        ["difference", "protocol", "metric", "mean [95 % interval] (mm)", "seeds", "images"],
        body)


#: fewest resamples ``hkmr report --bootstrap`` takes: a 95 % percentile interval from fewer
#: than 40 has no resample beyond its 2.5 % and 97.5 % points (at 3 it excluded its own
#: estimate); 100 still leaves only 2-3 resamples in each tail
MIN_RESAMPLES = 100


def write_bootstrap(folder: Path, tables: list[TableLayout], resamples: int) -> Path:
    """``folder/bootstrap.md`` (:func:`bootstrap_section`); ValueError for fewer than
    :data:`MIN_RESAMPLES` resamples."""
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"--bootstrap {resamples}: a 95 % interval needs at least "
                         f"{MIN_RESAMPLES} resamples (2000 is usual)")
    images = read_images(folder)
    if images is None:
        raise FileNotFoundError(f"{Path(folder) / IMAGES_FILE} is missing: this sweep's trials "
                                "wrote no per-image errors (made before they did, or without "
                                "the table1 suite)")
    out = Path(folder) / "bootstrap.md"
    with atomic_path(out) as tmp:
        tmp.write_text(bootstrap_section(images, tables, resamples))
    return out
