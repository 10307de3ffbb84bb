"""Choosing a configuration against a pre-set reference, seed batch by seed batch.

The reference is the configuration the user would otherwise run, fixed before any data (for
the iteration counts: the paper's T = 3, P = 4). Every candidate is paired with it per seed,
Δ = candidate - reference (validation MPJPE, mm; lower is better), and at each **look** (after
each batch of seeds, at most K = ceil(cap / batch) looks):

* a candidate **cheaper** than the reference is **non-inferior** when the one-sided test of
  H0: Δ ≥ δ rejects; the level is α/K at every look (**Bonferroni alpha spending** over the
  planned looks: the chance of any wrong claim over all looks is at most the sum, α) and Holm
  runs over the candidates tested at that look. It is **worse than δ** (dropped, a futility
  stop) when the one-sided 95 % lower bound of Δ exceeds δ; a futility stop only removes a
  candidate, so it cannot make a wrong non-inferiority claim more likely (non-binding);
* any candidate is **better by more than δ** when the one-sided test of H0: Δ ≥ -δ rejects at
  the same corrected level (reported; it does not change the choice);
* candidates not cheaper than the reference take part in the first look only (they cannot be
  the choice; they are there for the superiority report).

The choice is the cheapest candidate shown non-inferior, else the reference. Once a candidate
is shown non-inferior, the open candidates costlier than it are no longer needed. The
procedure stops when no open candidate is cheaper than the current choice (**decided**) or
at the cap (**inconclusive at N seeds**: the candidates still open are named, with the seeds
their observed spread says would decide them, and the choice so far is kept).
:func:`simulate` runs the whole rule on normal paired differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .paired import ALPHA, holm, mde

OPEN, NONINFERIOR, WORSE, SUPERIOR, DONE = ("open", "non-inferior", "worse than δ",
                                            "better by more than δ", "not needed")


@dataclass(frozen=True)
class Design:
    delta: float = 1.0  # the margin δ (mm)
    batch: int = 4  # seeds per look
    cap: int = 24  # at most this many seeds per candidate
    alpha: float = ALPHA

    @property
    def looks(self) -> int:
        return math.ceil(self.cap / self.batch)

    @property
    def level(self) -> float:
        """The level of each look's tests (Bonferroni spending over the planned looks)."""
        return self.alpha / self.looks

    def describe(self) -> str:
        return (f"δ = {self.delta:g} mm, {self.batch} seeds a look, at most {self.cap} seeds "
                f"({self.looks} looks), one-sided tests at α/K = {self.alpha:g}/{self.looks} = "
                f"{self.level:.4f} per look (Bonferroni alpha spending), Holm over the "
                f"candidates tested at a look")


@dataclass
class Candidate:
    name: str
    cost: float
    values: dict[int, float] = field(default_factory=dict)  # seed -> paired difference Δ
    status: str = OPEN
    look: int = 0  # the look that decided it
    superior: bool = False

    def differences(self) -> np.ndarray:
        return np.array([self.values[s] for s in sorted(self.values)], float)


def _one_sided(d: np.ndarray, bound: float, alternative: str) -> float:
    """p of the one-sided t test of the mean of d against ``bound``."""
    if len(d) < 2:
        return math.nan
    sd = d.std(ddof=1)
    if sd == 0:
        below = d.mean() < bound
        return 0.0 if below == (alternative == "less") else 1.0
    t = (d.mean() - bound) / (sd / math.sqrt(len(d)))  # scipy.stats.ttest_1samp's statistic
    return float(stats.t.cdf(t, len(d) - 1) if alternative == "less"
                 else stats.t.sf(t, len(d) - 1))


def _lower_bound(d: np.ndarray, alpha: float = ALPHA) -> float:
    if len(d) < 2:
        return -math.inf
    return float(d.mean() - stats.t.ppf(1 - alpha, len(d) - 1) * d.std(ddof=1)
                 / math.sqrt(len(d)))


def choice(candidates: list[Candidate], reference_cost: float) -> Candidate | None:
    """The cheapest non-inferior candidate cheaper than the reference (None: the reference)."""
    shown = [c for c in candidates if c.status in (NONINFERIOR, SUPERIOR)
             and c.cost < reference_cost]
    return min(shown, key=lambda c: c.cost) if shown else None


def look(candidates: list[Candidate], reference_cost: float, design: Design, k: int) -> None:
    """Decide what look k (1-based) can: update each open candidate's status in place."""
    tested = [c for c in candidates if c.status == OPEN and len(c.values) >= 2]
    cheaper = [c for c in tested if c.cost < reference_cost]
    p_ni = holm([_one_sided(c.differences(), design.delta, "less") for c in cheaper])
    p_sup = holm([_one_sided(c.differences(), -design.delta, "less") for c in tested])
    for c, p in zip(tested, p_sup):
        if p < design.level:
            c.superior = True
    for c, p in zip(cheaper, p_ni):
        if p < design.level:
            c.status, c.look = (SUPERIOR if c.superior else NONINFERIOR), k
        elif _lower_bound(c.differences()) > design.delta:
            c.status, c.look = WORSE, k
    for c in tested:
        if c.status == OPEN and c.cost >= reference_cost:
            c.status, c.look = (SUPERIOR if c.superior else DONE), k
    current = choice(candidates, reference_cost)
    limit = current.cost if current else reference_cost
    for c in candidates:
        if c.status == OPEN and c.cost >= limit:
            c.status, c.look = DONE, k


def still_open(candidates: list[Candidate]) -> list[Candidate]:
    return [c for c in candidates if c.status == OPEN]


def seeds_to_decide(c: Candidate, design: Design, tested: int, limit: int = 10_000) -> int | None:
    """The seeds the observed spread says would decide an open candidate with 80 % power:
    non-inferiority at the last look's Holm level (observed Δ below δ), else the futility
    stop; None beyond ``limit``."""
    d = c.differences()
    if len(d) < 2:
        return None
    sd, gap = float(d.std(ddof=1)), design.delta - float(d.mean())
    # a one-sided test at level a has the power of the two-sided one at 2a
    alpha = 2 * design.level / max(tested, 1) if gap > 0 else 2 * ALPHA
    for n in range(len(d), limit + 1):
        if mde(sd, n, alpha) <= abs(gap):
            return n
    return None


@dataclass(frozen=True)
class Simulated:
    chosen: dict[str, float]  # name (or "reference") -> probability of being the choice
    inconclusive: float
    noninferior: dict[str, float]  # name -> probability of being shown non-inferior
    repetitions: int
    decided: dict[str, float] = field(default_factory=dict)  # name -> P(decided, this choice)

    def contradicting(self, ours: str) -> float:
        """Probability that a replay decides on another choice than ``ours``."""
        return sum(p for name, p in self.decided.items() if name != ours)


def run(means, sds, costs, reference_cost: float, design: Design, rng) -> tuple[str, bool, set]:
    """One replay of the procedure on normal paired differences: (choice, decided, the
    candidates shown non-inferior)."""
    cands = [Candidate(str(i), cost) for i, cost in enumerate(costs)]
    draws = rng.normal(np.asarray(means, float), np.asarray(sds, float),
                       (design.cap, len(costs)))
    seeds, k = 0, 0
    while True:
        k += 1
        batch = range(seeds, min(seeds + design.batch, design.cap))
        active = [i for i, c in enumerate(cands) if c.status == OPEN]
        for i in active:
            for s in batch:
                cands[i].values[s] = float(draws[s, i])
        seeds = batch.stop
        look(cands, reference_cost, design, k)
        if not still_open(cands) or seeds >= design.cap:
            break
    chosen = choice(cands, reference_cost)
    shown = {c.name for c in cands if c.status in (NONINFERIOR, SUPERIOR)}
    return ("reference" if chosen is None else chosen.name), not still_open(cands), shown


def simulate(means, sds, costs, reference_cost: float, design: Design,
             repetitions: int = 2000, seed: int = 0) -> Simulated:
    """The procedure replayed ``repetitions`` times (independent candidates)."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, int] = {}
    shown: dict[str, int] = {}
    decided_as: dict[str, int] = {}
    inconclusive = 0
    for _ in range(repetitions):
        name, decided, ni = run(means, sds, costs, reference_cost, design, rng)
        chosen[name] = chosen.get(name, 0) + 1
        inconclusive += not decided
        if decided:
            decided_as[name] = decided_as.get(name, 0) + 1
        for n in ni:
            shown[n] = shown.get(n, 0) + 1
    return Simulated({k: v / repetitions for k, v in chosen.items()}, inconclusive / repetitions,
                     {k: v / repetitions for k, v in shown.items()}, repetitions,
                     {k: v / repetitions for k, v in decided_as.items()})
