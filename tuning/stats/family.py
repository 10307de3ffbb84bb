"""A confirmatory family: the comparisons a claim is about, tested together.

Every comparison of the family (a paired difference, :class:`tuning.stats.crossed.Difference`)
gets two tests of H0: Δ = 0, each Holm-adjusted over the family (:func:`tuning.stats.paired.holm`):

* the t test on the difference's own standard error (seeds, or seeds x images);
* the exact sign-flip test on the per-seed differences (:mod:`tuning.stats.signflip`), which
  assumes no normality.

A comparison is **resolved** when both adjusted p-values are below α; where only one is, the
result says which ("t only", "sign-flip only"). Its power: the minimal detectable difference
at 80 % power of the t test at level α/m (the level Holm applies to the first rejection, and
so a conservative choice for every step: Bonferroni's), from the comparison's own standard
error. Its simultaneous interval is the Bonferroni interval at α/m, so "the family excludes
differences beyond X" is a family-wise statement at level α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .crossed import Difference
from .paired import ALPHA, POWER, holm, mde_se
from .signflip import fewest_seeds, signflip_p

RESOLVED, T_ONLY, SIGNFLIP_ONLY, OPEN = "resolved", "t only", "sign-flip only", "not resolved"


@dataclass(frozen=True)
class ComparisonResult:
    """One comparison of a family, tested."""

    difference: Difference
    p_t: float
    p_signflip: float
    p_t_holm: float
    p_signflip_holm: float
    mde: float  # at level alpha / m, POWER
    simultaneous: tuple[float, float]  # Bonferroni interval at alpha / m
    alpha: float = ALPHA

    @property
    def outcome(self) -> str:
        t, flip = self.p_t_holm < self.alpha, self.p_signflip_holm < self.alpha
        return RESOLVED if t and flip else T_ONLY if t else SIGNFLIP_ONLY if flip else OPEN

    @property
    def excludes_beyond(self) -> float:
        """The simultaneous interval rules out true differences larger than this (either
        sign)."""
        low, high = self.simultaneous
        return max(abs(low), abs(high))


def family_tests(differences: dict, per_seed: dict, alpha: float = ALPHA,
                power: float = POWER) -> dict:
    """Test every comparison of a family. ``differences``: key -> Difference; ``per_seed``:
    key -> the per-seed differences the sign-flip test permutes. Comparisons with fewer than
    two seeds are not tested and do not count towards m."""
    keys = list(differences)
    m = sum(1 for k in keys if differences[k].testable)
    p_t = [differences[k].p() for k in keys]
    p_flip = [signflip_p(per_seed[k]) if differences[k].testable else math.nan for k in keys]
    t_holm, flip_holm = holm(p_t), holm(p_flip)
    level = alpha / max(m, 1)
    out = {}
    for j, k in enumerate(keys):
        d = differences[k]
        out[k] = ComparisonResult(d, p_t[j], p_flip[j], t_holm[j], flip_holm[j],
                        mde_se(d.se, d.df, level, power) if d.testable else math.nan,
                        d.interval(level), alpha)
    return out


def family_size(tested: dict) -> int:
    return sum(1 for t in tested.values() if math.isfinite(t.p_t))


def signflip_floor(m: int, alpha: float = ALPHA) -> int:
    """The fewest seeds at which the sign-flip test can resolve anything in a family of m."""
    return fewest_seeds(m, alpha)
