"""The per-image error files of a results folder: written as parts under a size limit, read
back as one table.

A results folder's per-test-image errors (:mod:`tuning.analysis.image_errors`) go to ``images.parquet``
(zstd, the errors as float32). No committed file may exceed 2 MB, so when the whole table
would exceed :data:`PART_LIMIT` bytes it is split by seed into the fewest contiguous seed
ranges of (about) equal size whose files each fit: the first range stays ``images.parquet``,
the others are ``images-seedsA-B.parquet`` (seeds A..B of every configuration, so each
paired seed sits in one file). Every reader goes through :func:`read_images`, which reads all
parts; a write removes the parts of an earlier split it did not rewrite.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hkmr.io import atomic_path

IMAGES_FILE = "images.parquet"
#: the largest part written (bytes); the repository's rule is no committed file over 2 MB
PART_LIMIT = 1_800_000
#: the per-image error columns, stored as float32 (mm; float32's ~1e-7 relative precision)
ERROR_COLUMNS = ("mpjpe", "pa_mpjpe")
_PART = re.compile(r"images-seeds(\d+)-(\d+)\.parquet")


def as_float32(table: pa.Table) -> pa.Table:
    """``table`` with its error columns as float32 (older folders stored float64)."""
    for name in ERROR_COLUMNS:
        if name in table.column_names and table.schema.field(name).type != pa.float32():
            i = table.column_names.index(name)
            table = table.set_column(i, name, pc.cast(table.column(name), pa.float32()))
    return table


def _encode(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _seed_ranges(seeds: list[int], k: int) -> list[list[int]]:
    """``seeds`` (sorted) in ``k`` contiguous groups of sizes differing by at most one."""
    size, extra = divmod(len(seeds), k)
    out, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < extra else 0)
        out.append(seeds[start:end])
        start = end
    return out


def part_name(first: bool, seeds: list[int]) -> str:
    return IMAGES_FILE if first else f"images-seeds{seeds[0]}-{seeds[-1]}.parquet"


def split_images(table: pa.Table, limit: int = PART_LIMIT) -> dict[str, pa.Buffer]:
    """The files (name -> Parquet bytes) of ``table``: one when it fits under ``limit``,
    else the fewest seed ranges that each fit (one seed per file at most: a single seed
    over the limit is written as it is)."""
    table = as_float32(table)
    whole = _encode(table)
    seeds = sorted(set(table.column("seed").to_pylist()))
    if whole.size <= limit or len(seeds) < 2:
        return {IMAGES_FILE: whole}
    for k in range(min(len(seeds), max(2, math.ceil(whole.size / limit))), len(seeds) + 1):
        parts = {}
        for i, group in enumerate(_seed_ranges(seeds, k)):
            mask = pc.is_in(table.column("seed"),
                            pa.array(group, table.schema.field("seed").type))
            parts[part_name(i == 0, group)] = _encode(table.filter(mask))
        if k == len(seeds) or all(buf.size <= limit for buf in parts.values()):
            return parts
    raise AssertionError("unreachable")


def image_files(folder: str | Path) -> list[Path]:
    """The per-image files of a results folder, ``images.parquet`` first, then by seed."""
    folder = Path(folder)
    parts = sorted((int(m.group(1)), p) for p in folder.glob("images-seeds*.parquet")
                   if (m := _PART.fullmatch(p.name)))
    head = [folder / IMAGES_FILE] if (folder / IMAGES_FILE).exists() else []
    return head + [p for _, p in parts]


def write_images(table: pa.Table, folder: str | Path, limit: int = PART_LIMIT) -> list[Path]:
    """Write ``table`` as the per-image files of ``folder`` (each atomically); returns them."""
    folder = Path(folder)
    old = set(image_files(folder))
    written = []
    for name, buf in split_images(table, limit).items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(buf.to_pybytes())
        written.append(folder / name)
    for stale in old - set(written):
        stale.unlink()
    return written


def read_images(folder: str | Path) -> pa.Table | None:
    """Every per-image row of a results folder (all parts), None when it has none."""
    files = image_files(folder)
    if not files:
        return None
    return pa.concat_tables([as_float32(pq.read_table(p)) for p in files])
