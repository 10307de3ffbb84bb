"""A paired difference as an estimate with its sources of error: seeds, and test images.

Per seed s and test image i, the paired difference ``configuration - reference`` is
d_si = Δ + a_s + b_i + e_si: a seed effect a_s (training noise: initialisation, data order),
an image effect b_i (some images favour one configuration) and a residual, all independent
with variances σ²_seed, σ²_image, σ²_res (two-way crossed random effects). The mean over S
seeds and I images has variance

    σ²_seed / S + σ²_image / I + σ²_res / (S·I),

estimated from the two-way ANOVA mean squares MS_seed, MS_image, MS_res (each with the
expectation σ²_res + I·σ²_seed, σ²_res + S·σ²_image, σ²_res) as
(MS_seed + MS_image - MS_res) / (S·I), with Satterthwaite's degrees of freedom. Over seeds only
(the paired t-test on per-seed means) the variance is MS_seed / (S·I): it treats the test
images as fixed, so its interval describes this test set. The crossed variance is never taken
below the seed-only one (an image term estimated negative counts as zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

SEEDS, SEEDS_IMAGES = "seeds", "seeds × images"


@dataclass(frozen=True)
class Difference:
    """A mean paired difference, its standard error and degrees of freedom, over ``n`` seeds
    (and ``images`` test images when the image term is in the error, ``sources`` says)."""

    mean: float
    se: float
    df: float
    n: int
    sources: str = SEEDS
    images: int = 0
    se_seeds: float = math.nan  # the seed-only standard error, for comparison

    def interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """The two-sided 1 - alpha interval (NaN below 2 seeds)."""
        if not self.testable:
            return math.nan, math.nan
        half = stats.t.ppf(1 - alpha / 2, self.df) * self.se
        return self.mean - half, self.mean + half

    def p(self) -> float:
        """Two-sided p-value of H0: Δ = 0."""
        if not self.testable:
            return math.nan
        if self.se == 0:
            return 0.0 if self.mean != 0 else 1.0
        return float(2 * stats.t.sf(abs(self.mean) / self.se, self.df))

    @property
    def testable(self) -> bool:
        return self.n >= 2 and math.isfinite(self.se) and math.isfinite(self.df)


def seeds_only(per_seed) -> Difference:
    """The paired t-test's view: per-seed differences, the test images fixed."""
    d = np.asarray([v for v in per_seed if v is not None and math.isfinite(v)], float)
    n = len(d)
    if n < 2:
        return Difference(float(d[0]) if n else math.nan, math.nan, math.nan, n)
    se = float(d.std(ddof=1) / math.sqrt(n))
    return Difference(float(d.mean()), se, n - 1, n, SEEDS, 0, se)


@dataclass(frozen=True)
class MeanSquares:
    seed: float
    image: float
    residual: float
    seeds: int
    images: int

    def components(self) -> tuple[float, float, float]:
        """Estimated (σ²_seed, σ²_image, σ²_res), negative estimates as 0."""
        s, i = self.seeds, self.images
        return (max(0.0, (self.seed - self.residual) / i),
                max(0.0, (self.image - self.residual) / s), self.residual)


def mean_squares(matrix) -> MeanSquares:
    """Two-way ANOVA (one observation per cell) of a seeds x images matrix."""
    x = np.asarray(matrix, float)
    s, i = x.shape
    grand = x.mean()
    rows, cols = x.mean(axis=1), x.mean(axis=0)
    ms_seed = i * ((rows - grand) ** 2).sum() / (s - 1)
    ms_image = s * ((cols - grand) ** 2).sum() / (i - 1)
    resid = x - rows[:, None] - cols[None, :] + grand
    ms_res = (resid ** 2).sum() / ((s - 1) * (i - 1))
    return MeanSquares(float(ms_seed), float(ms_image), float(ms_res), s, i)


def crossed(matrix, per_seed=None) -> Difference:
    """The seeds x images view of a seeds x images matrix of paired differences (the same
    images for every seed). ``per_seed``: the seeds' own mean differences when they are known
    more exactly than the matrix's row means (trial metrics in float64 against per-image
    errors stored in float32); they then give the mean and the seed term."""
    x = np.asarray(matrix, float)
    s, i = x.shape
    rows = x.mean(axis=1) if per_seed is None else np.asarray(per_seed, float)
    if s < 2 or i < 2:
        return seeds_only(rows)
    ms = mean_squares(x)
    ms_seed = i * rows.var(ddof=1)  # equals ms.seed when per_seed are the row means
    image_term = ms.image - ms.residual
    se_seeds = math.sqrt(ms_seed / (s * i))
    if image_term <= 0:  # no image effect beyond the residual: the seed-only error
        return Difference(float(rows.mean()), se_seeds, s - 1, s, SEEDS_IMAGES, i, se_seeds)
    var = (ms_seed + image_term) / (s * i)
    df = (ms_seed + ms.image - ms.residual) ** 2 / (
        ms_seed ** 2 / (s - 1) + ms.image ** 2 / (i - 1) + ms.residual ** 2 / ((s - 1) * (i - 1)))
    return Difference(float(rows.mean()), math.sqrt(var), float(df), s, SEEDS_IMAGES, i,
                      se_seeds)
