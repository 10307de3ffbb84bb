"""The sequential choice against a pre-set reference (tuning.stats.sequential_choice), checked
on constructed data and by simulating the whole procedure (fixed seeds; repetitions and Monte
Carlo error stated per test). Default design: δ = 1 mm, 4 seeds a look, at most 24."""

import math

import numpy as np
import pytest

from tuning.stats.sequential_choice import (DONE, NONINFERIOR, OPEN, SUPERIOR, WORSE, Candidate,
                                            Design, choice, look, seeds_to_decide, simulate)

REPS = 1000
MC = math.sqrt(0.05 * 0.95 / REPS)  # Monte Carlo SE of a 5 % rate


def _cand(name, cost, diffs):
    return Candidate(name, cost, {s: float(v) for s, v in enumerate(diffs)})


def test_a_look_decides_non_inferior_worse_and_not_needed_candidates():
    design = Design(delta=1.0, batch=8, cap=8)  # one look: level α = 0.05
    rng = np.random.default_rng(0)
    close = _cand("close", 1.0, 0.1 + rng.normal(0, 0.2, 8))  # cheaper, Δ ≈ 0.1 mm
    bad = _cand("bad", 0.5, 4.0 + rng.normal(0, 0.2, 8))  # cheapest, Δ ≈ 4 mm
    costly = _cand("costly", 5.0, -0.1 + rng.normal(0, 0.2, 8))  # not cheaper
    cands = [close, bad, costly]
    look(cands, reference_cost=2.0, design=design, k=1)
    assert close.status == NONINFERIOR and bad.status == WORSE and costly.status == DONE
    assert choice(cands, 2.0) is close
    # better by more than δ: shown and reported, also for a cheaper candidate
    great = _cand("great", 1.5, -3.0 + rng.normal(0, 0.2, 8))
    look([great], reference_cost=2.0, design=design, k=1)
    assert great.status == SUPERIOR and great.superior


def test_an_open_candidate_costlier_than_the_current_choice_is_no_longer_needed():
    design = Design(delta=1.0, batch=4, cap=12)
    rng = np.random.default_rng(1)
    cheap_ok = _cand("cheap", 1.0, rng.normal(0.0, 0.05, 4))
    middle = _cand("middle", 1.5, rng.normal(0.5, 3.0, 4))  # noisy: would stay open
    look([cheap_ok, middle], reference_cost=2.0, design=design, k=1)
    assert cheap_ok.status == NONINFERIOR and middle.status == DONE
    lone = _cand("lone", 1.5, rng.normal(0.5, 3.0, 4))
    look([lone], reference_cost=2.0, design=design, k=1)
    assert lone.status == OPEN and seeds_to_decide(lone, design, 1) is not None


def test_a_cheap_candidate_within_half_delta_is_chosen_at_least_90_percent():
    """Reference (cost 3) against: a cheaper one truly δ/2 worse, a cheaper one 2δ worse, a
    costlier equal one; paired SD 0.5 mm (δ/2), the default cap. 1,000 replays."""
    sim = simulate([0.5, 2.0, 0.0], [0.5, 0.5, 0.5], [2.0, 1.0, 5.0], 3.0, Design(), REPS)
    assert sim.chosen.get("0", 0) >= 0.90 - 2 * math.sqrt(0.9 * 0.1 / REPS), sim
    assert sim.chosen.get("1", 0) <= 0.05 + 2 * MC  # 2δ worse: never the choice


def test_a_candidate_truly_worse_by_two_delta_is_chosen_at_most_5_percent():
    """The only cheaper candidate 2δ worse, at the committed spreads' size (SD 2 mm)."""
    sim = simulate([2.0, 0.0], [2.0, 2.0], [1.0, 5.0], 3.0, Design(), REPS)
    assert sim.chosen.get("0", 0) <= 0.05 + 2 * MC, sim


def test_interim_looks_keep_a_wrong_non_inferiority_claim_below_alpha():
    """Three cheaper candidates exactly at the margin (Δ = δ: H0 true) at two spreads; the
    chance that any is declared non-inferior over all six looks stays <= 5 %."""
    for sd in (0.5, 2.0):
        sim = simulate([1.0, 1.0, 1.0], [sd] * 3, [1.0, 1.5, 2.0], 3.0, Design(), REPS,
                       seed=int(sd * 10))
        wrong = 1 - sim.chosen.get("reference", 0)
        assert wrong <= 0.05 + 2 * MC, (sd, sim)
    # without the spending (one look at full α, six times) the same rule errs more often
    loose = Design(delta=1.0, batch=4, cap=24, alpha=0.05 * 6)
    sim = simulate([1.0, 1.0, 1.0], [0.5] * 3, [1.0, 1.5, 2.0], 3.0, loose, REPS, seed=5)
    assert 1 - sim.chosen.get("reference", 0) > 0.05 + 2 * MC


def test_replays_at_committed_spreads_report_inconclusive_and_never_contradict_much():
    """At spreads like the committed linear-layer confirmation (paired SD 2-2.5 mm, nominal
    differences under δ) the cap leaves most replays inconclusive; a decided replay that
    contradicts another decided choice is rare because every claim is error-controlled."""
    sim = simulate([0.0, 0.57, 1.18], [2.0, 2.5, 2.0], [1.0, 2.0, 2.5], 3.0, Design(), REPS)
    assert sim.inconclusive > 0.3
    assert sim.contradicting("0") < 0.1
    assert sum(sim.chosen.values()) == pytest.approx(1.0)
