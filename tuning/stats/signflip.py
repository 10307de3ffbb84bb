"""The sign-flip (permutation) test of a mean paired difference: distribution-free.

Under H0 each seed's difference is as likely to have either sign, so the observed mean is
compared with the means of all 2^n sign patterns: p = #{s in {±1}^n : |mean(s·d)| >= |mean(d)|}
/ 2^n, the identity included (``scipy.stats.permutation_test`` with one sample and
``permutation_type="samples"``). Exact (every pattern) up to :data:`EXACT_UP_TO` seeds; beyond,
a Monte Carlo estimate from :data:`RESAMPLES` patterns drawn with a fixed seed, so a table
re-renders identically. The smallest exact p is 2 / 2^n: within a Holm family of m at level
α it can pass only when 2 / 2^n <= α / m (:func:`fewest_seeds`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

EXACT_UP_TO = 16  # 65,536 patterns
RESAMPLES = 20_000


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def signflip_p(per_seed, exact_up_to: int = EXACT_UP_TO, resamples: int = RESAMPLES,
               seed: int = 0) -> float:
    """Two-sided sign-flip p-value of H0: the mean paired difference is 0 (NaN below 2)."""
    d = np.asarray([v for v in per_seed if v is not None and math.isfinite(v)], float)
    if len(d) < 2:
        return math.nan
    if not np.any(d):
        return 1.0
    exact = len(d) <= exact_up_to
    result = stats.permutation_test((d,), _mean, permutation_type="samples", vectorized=True,
                                    n_resamples=np.inf if exact else resamples,
                                    alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


def smallest_p(n: int) -> float:
    """The smallest two-sided p-value the exact sign-flip test can give with n seeds."""
    return 2.0 / 2 ** n


def fewest_seeds(m: int, alpha: float = 0.05) -> int:
    """The fewest seeds with which a sign-flip test can pass Holm in a family of m:
    2 / 2^n <= alpha / m."""
    return max(2, math.ceil(math.log2(2 * m / alpha) - 1e-12))
