"""The statistics behind every table and decision, pinned on their public functions with
values computed here by other means (the ``statistics`` module, the t distribution's cdf,
by hand), rows in shuffled order and trials that did not finish: what a wrong pooling, a
mis-pairing of seeds or a raw p-value in place of a Holm-adjusted one would change."""

import math
import random
import statistics

import pytest
from scipy import stats as sps

from tuning.experiment.schema import load_experiment
from tuning.procedures.choose import paired as paired_by_seed
from tuning.procedures.seed_sizing import family_mde
from tuning.stats.intervals import cell
from tuning.stats.crossed import seeds_only
from tuning.stats.paired import differences, holm, mde, pooled_sd
from tuning.stats.sequential_choice import NONINFERIOR, OPEN, Candidate, Design, look


def _shuffled(rows: list[dict], seed: int = 0) -> list[dict]:
    """Ray returns trials in any order: so do the tests."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows


def test_pooled_sd_weights_each_comparison_by_its_df_and_reports_the_fewest_seeds():
    import numpy as np

    a, b, lone = [1.0, 2.0, 4.0], [0.0, 3.0, 1.0, 5.0, 6.0], [7.0]
    # df-weighted mean variance: (2 var(a) + 4 var(b)) / 6; a single seed has no spread
    var = (2 * statistics.variance(a) + 4 * statistics.variance(b)) / 6
    sd, n = pooled_sd([np.asarray(a), np.asarray(b), np.asarray(lone)])
    assert sd == pytest.approx(math.sqrt(var), rel=1e-12)
    assert n == 3  # the smallest usable group bounds the power, not the largest (5)


def _table2_rows():
    """table2's configurations over seeds 0..4, each with its own per-seed offset to the
    reference; the reference misses seed 4 (so that seed pairs with nothing), one
    configuration's seed 1 was stopped early."""
    exp = load_experiment("table2")
    names = [n for n in exp.configurations if n != exp.reference]
    seed_effect = [0.0, 11.0, -7.0, 23.0, 5.0]
    rows, expected = [], {}
    for k, name in enumerate(names):
        offsets = [0.3 * k + 0.1 * ((s * (k + 2)) % 5) for s in range(5)]
        expected[name] = {}
        for s in range(5):
            status = "stopped" if (k == 0 and s == 1) else "ok"
            rows.append({"configuration": name, "seed": s, "status": status,
                         exp.primary: 70.0 + seed_effect[s] + offsets[s],
                         "P2_standard_mpjpe": 60.0 + seed_effect[s] + offsets[s]})
            if status == "ok" and s < 4:
                expected[name][s] = offsets[s]
    rows += [{"configuration": exp.reference, "seed": s, "status": "ok",
              exp.primary: 70.0 + seed_effect[s], "P2_standard_mpjpe": 60.0 + seed_effect[s]}
             for s in range(4)]
    return exp, names, _shuffled(rows), expected


def test_family_mde_is_the_worst_comparisons_own_at_holms_level():
    exp, names, rows, expected = _table2_rows()
    family = exp.confirmatory.comparisons  # the paper's three: not "No chain hierarchy"
    m = len(exp.confirmatory)
    worst = max((mde(statistics.stdev(expected[n].values()), len(expected[n]), 0.05 / m), n)
                for n in family)
    value, sd, n, comparison = family_mde(exp, rows)
    # each comparison's own spread (the reference against itself, all zeros, is no comparison)
    assert value == pytest.approx(worst[0], rel=1e-9)
    assert comparison.startswith(worst[1]) and n == len(expected[worst[1]])
    assert sd == pytest.approx(statistics.stdev(expected[worst[1]].values()), rel=1e-9)


def test_differences_pair_by_seed_whatever_the_row_order():
    exp, names, rows, expected = _table2_rows()
    for name in names:
        got = differences(rows, name, exp.reference, exp.primary)
        assert sorted(got.tolist()) == pytest.approx(sorted(expected[name].values()), abs=1e-9)
    # rows of a seed in the reverse order of the reference's: still paired by seed
    mixed = [{"configuration": "R", "seed": s, "status": "ok", "m": 100.0 * s} for s in range(3)]
    mixed += [{"configuration": "X", "seed": s, "status": "ok", "m": 100.0 * s + s + 1}
              for s in (2, 0, 1)]
    assert sorted(differences(mixed, "X", "R", "m").tolist()) == [1.0, 2.0, 3.0]


def test_a_reference_that_did_not_finish_pairs_with_nothing():
    rows = [{"configuration": "R", "seed": 0, "status": "ok", "m": 10.0},
            {"configuration": "R", "seed": 1, "status": "stopped", "m": 50.0},
            {"configuration": "X", "seed": 0, "status": "ok", "m": 11.0},
            {"configuration": "X", "seed": 1, "status": "ok", "m": 12.0}]
    assert differences(_shuffled(rows), "X", "R", "m").tolist() == [1.0]


def test_a_cell_counts_only_trials_that_finished():
    values = {"ok": [70.0, 72.5, 71.0], "stopped": [95.0], "failed": [90.0], "error": [80.0]}
    rows = _shuffled([{"configuration": "A", "seed": i, "status": status, "m": v}
                      for status, vs in values.items() for i, v in enumerate(vs)])
    mean, half, n = cell(rows, "A", "m")
    ok = values["ok"]
    assert (mean, n) == (pytest.approx(statistics.fmean(ok)), 3)
    assert half == pytest.approx(sps.t.ppf(0.975, 2) * statistics.stdev(ok) / math.sqrt(3))


def test_paired_t_test_matches_the_t_distribution_by_hand():
    d = [0.4, 1.1, -0.2, 0.9, 0.6]
    n, mean, sd = len(d), statistics.fmean(d), statistics.stdev(d)
    t = mean / (sd / math.sqrt(n))
    test = seeds_only(d)
    assert test.p() == pytest.approx(2 * sps.t.sf(abs(t), n - 1), rel=1e-9)
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert test.interval() == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_holm_steps_down_with_ties_and_caps_at_one():
    # sorted 0.01, 0.02, 0.02, 0.4 of m = 4: 0.04, 0.06, 0.06 (0.04 raised), 0.4
    assert holm([0.02, 0.4, 0.01, 0.02]) == pytest.approx([0.06, 0.4, 0.04, 0.06])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])


def test_a_candidate_is_non_inferior_on_its_holm_adjusted_p_not_its_raw_p():
    near = [0.2, 0.6, 0.5, 0.9]  # per-seed Δ to the reference; raw one-sided p 0.026 against δ
    n, mean, sd = 4, statistics.fmean(near), statistics.stdev(near)
    raw = sps.t.cdf((mean - 1.0) / (sd / math.sqrt(n)), n - 1)  # H1: Δ < 1
    assert 0.05 / 3 < raw < 0.05  # significant alone, not among three candidates
    design = Design(delta=1.0, batch=4, cap=4)  # one look at α = 0.05

    def cands():
        return [Candidate("near", 0.5, dict(enumerate(near))),
                Candidate("far1", 1.0, {s: 2 + 0.3 * s for s in range(4)}),
                Candidate("far2", 2.0, {s: 3 - 0.2 * s for s in range(4)})]

    three = cands()
    look(three, reference_cost=3.0, design=design, k=1)
    assert three[0].status == OPEN  # Holm: 3 x 0.026 > 0.05
    alone = cands()[:1]
    look(alone, reference_cost=3.0, design=design, k=1)
    assert alone[0].status == NONINFERIOR


def test_the_decision_pairs_candidates_by_seed_not_by_insertion_order():
    ref = {0: 70.0, 1: 82.0, 2: 64.0, 3: 77.0, 4: 90.0}  # a large common effect of the seed
    delta = {0: 0.20, 1: 0.25, 2: 0.15, 3: 0.30, 4: 0.22}
    order = [3, 0, 4, 1, 2]  # the candidate's results arrived in another order ...
    rows = [{"configuration": "reference", "seed": s, "status": "ok", "val_mpjpe": v}
            for s, v in ref.items()]
    rows += [{"configuration": "cheap", "seed": s, "status": "ok",
              "val_mpjpe": ref[s] + delta[s]} for s in order]
    rows.append({"configuration": "cheap", "seed": 7, "status": "ok", "val_mpjpe": 120.0})
    values = paired_by_seed(_shuffled(rows), "cheap")  # ... with a seed the reference lacks
    assert values == pytest.approx(delta)


def test_the_decision_reads_only_finished_trials_by_seed():
    rows = [{"configuration": "reference", "seed": 0, "status": "ok", "val_mpjpe": 70.0},
            {"configuration": "reference", "seed": 1, "status": "ok", "val_mpjpe": 71.5},
            {"configuration": "reference", "seed": 2, "status": "stopped", "val_mpjpe": 95.0},
            {"configuration": "reference", "seed": 3, "status": "error", "val_mpjpe": 90.0}]
    rows += [{"configuration": "T2 P4", "seed": s, "status": "ok", "val_mpjpe": 60.0 + s}
             for s in range(4)]
    assert paired_by_seed(_shuffled(rows), "T2 P4") == pytest.approx({0: -10.0, 1: -10.5})
