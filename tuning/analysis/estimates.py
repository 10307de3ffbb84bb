"""Paired differences of a results folder with every source of error its files allow.

Trial rows give the per-seed differences (``trials.parquet``); per-image errors
(``images.parquet``, every trial since they existed) give the seeds x images matrix of the
standard test set, so its comparisons carry the image term too (:func:`tuning.stats.crossed.
crossed`). Keys without per-image data (occluded test sets, their occluded-joint errors; a
folder made before per-image errors existed) are over seeds only, and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..stats.crossed import Difference, crossed, seeds_only
from ..stats.paired import paired_by_seed

Estimate = Callable[[str, str], tuple[Difference, np.ndarray]]


def _split(key: str) -> tuple[str, str, str]:
    protocol, rest = key.split("_", 1)
    occlusion, metric = rest.split("_", 1)
    return protocol, occlusion, metric


class Estimates:
    """``estimate(configuration, key) -> (Difference, per-seed differences)`` against one
    reference, crossed with the images where ``images`` has the key's test set."""

    def __init__(self, rows: list[dict], reference: str, images: pa.Table | None = None):
        self.rows, self.reference = rows, reference
        self._matrices: dict[tuple[str, str, str], dict[int, np.ndarray]] = {}
        self.images = None
        if images is not None:
            ok = {r["trial_id"] for r in rows if r["status"] == "ok" and r.get("trial_id")}
            mask = pc.and_(pc.equal(images["degree"], 0),
                           pc.is_in(images["trial_id"], pa.array(sorted(ok), pa.string())))
            self.images = images.filter(mask).to_pandas()

    def has_images(self, key: str) -> bool:
        _, occlusion, metric = _split(key)
        return (self.images is not None and occlusion == "standard"
                and metric in ("mpjpe", "pa_mpjpe"))

    def _matrix(self, configuration: str, protocol: str, metric: str) -> dict[int, np.ndarray]:
        """seed -> that trial's errors on the standard test set, by image id."""
        k = (configuration, protocol, metric)
        if k not in self._matrices:
            df = self.images
            part = df[(df["configuration"] == configuration) & (df["protocol"] == protocol)
                      & (df["occlusion"] == "standard")]
            table = part.pivot_table(index="seed", columns="image", values=metric,
                                     aggfunc="first")
            self._matrices[k] = {int(s): table.loc[s] for s in table.index}
        return self._matrices[k]

    def __call__(self, configuration: str, key: str) -> tuple[Difference, np.ndarray]:
        per_seed = paired_by_seed(self.rows, configuration, self.reference, key)
        seeds = sorted(per_seed)
        values = np.array([per_seed[s] for s in seeds], float)
        if not self.has_images(key) or len(seeds) < 2:
            return seeds_only(values), values
        protocol, _, metric = _split(key)
        a = self._matrix(configuration, protocol, metric)
        b = self._matrix(self.reference, protocol, metric)
        if not all(s in a and s in b for s in seeds):
            return seeds_only(values), values
        diff = np.stack([(a[s] - b[s]).to_numpy(float) for s in seeds])
        diff = diff[:, np.isfinite(diff).all(axis=0)]
        if diff.shape[1] < 2:
            return seeds_only(values), values
        return crossed(diff, values), values
