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
from tuning.procedures.choose_iterations import decide
from tuning.procedures.seed_sizing import primary_mde
from tuning.stats.intervals import cell
from tuning.stats.paired import differences, holm, paired, pooled_sd


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
                         exp.primary: 70.0 + seed_effect[s] + offsets[s]})
            if status == "ok" and s < 4:
                expected[name][s] = offsets[s]
    rows += [{"configuration": exp.reference, "seed": s, "status": "ok",
              exp.primary: 70.0 + seed_effect[s]} for s in range(4)]
    return exp, names, _shuffled(rows), expected


def test_primary_mde_pools_only_the_comparisons_with_the_reference():
    exp, names, rows, expected = _table2_rows()
    groups = [list(expected[n].values()) for n in names]
    df = sum(len(g) - 1 for g in groups)
    var = sum((len(g) - 1) * statistics.variance(g) for g in groups) / df
    _, sd, n = primary_mde(exp, rows)
    # the reference against itself is all zeros: pooling it in would shrink the spread
    assert sd == pytest.approx(math.sqrt(var), rel=1e-9)
    assert n == min(len(g) for g in groups) == 3


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
    test = paired(d)
    assert test.p == pytest.approx(2 * sps.t.sf(abs(t), n - 1), rel=1e-9)
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert (test.low, test.high) == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_holm_steps_down_with_ties_and_caps_at_one():
    # sorted 0.01, 0.02, 0.02, 0.4 of m = 4: 0.04, 0.06, 0.06 (0.04 raised), 0.4
    assert holm([0.02, 0.4, 0.01, 0.02]) == pytest.approx([0.06, 0.4, 0.04, 0.06])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])


def _candidate(name, latency, values):
    return {"name": name, "T": 1, "P": 1, "latency_b1": latency, "values": values}


def test_a_candidate_is_acceptable_on_its_holm_adjusted_p_not_its_raw_p():
    best = {s: 70.0 + 5 * s for s in range(4)}
    near = [0.2, 0.6, 0.5, 0.9]  # per-seed Δ to the best; raw one-sided p 0.026 against δ = 1
    rows = [_candidate("best", 3.0, best),
            _candidate("near", 0.5, {s: best[s] + near[s] for s in best}),
            _candidate("far1", 1.0, {s: best[s] + 2 + 0.3 * s for s in best}),
            _candidate("far2", 2.0, {s: best[s] + 3 - 0.2 * s for s in best})]
    n, mean, sd = 4, statistics.fmean(near), statistics.stdev(near)
    raw = sps.t.cdf((mean - 1.0) / (sd / math.sqrt(n)), n - 1)  # H1: Δ < 1
    assert 0.05 / 3 < raw < 0.05  # significant alone, not among three candidates
    chosen, annotated = decide(rows, margin=1.0)
    by_name = {r["name"]: r for r in annotated}
    assert by_name["near"]["p"] == pytest.approx(raw, rel=1e-9)
    assert by_name["near"]["p_holm"] == pytest.approx(3 * raw, rel=1e-9)
    assert by_name["near"]["acceptable"] is False
    assert chosen["name"] == "best"


def test_the_decision_pairs_candidates_by_seed_not_by_insertion_order():
    best = {0: 70.0, 1: 82.0, 2: 64.0, 3: 77.0, 4: 90.0}  # a large common effect of the seed
    delta = {0: 0.20, 1: 0.25, 2: 0.15, 3: 0.30, 4: 0.22}
    # the candidate's results arrived in another order, with a seed the best lacks
    order = [3, 0, 4, 1, 2]
    values = {s: best[s] + delta[s] for s in order} | {7: 120.0}
    rows = [_candidate("best", 2.0, best), _candidate("cheap", 1.0, values)]
    chosen, annotated = decide(rows, margin=1.0)
    cheap = next(r for r in annotated if r["name"] == "cheap")
    d = [delta[s] for s in range(5)]
    upper = statistics.fmean(d) + sps.t.ppf(0.95, 4) * statistics.stdev(d) / math.sqrt(5)
    assert cheap["n_paired"] == 5
    assert cheap["diff"] == pytest.approx(statistics.fmean(d), rel=1e-9)
    assert cheap["upper"] == pytest.approx(upper, rel=1e-9)
    assert chosen["name"] == "cheap"


def test_the_decision_reads_only_finished_trials_by_seed():
    import pyarrow as pa

    from tuning.procedures.choose_iterations import per_seed

    rows = [{"configuration": "T3 P4", "seed": 0, "status": "ok", "val_mpjpe": 70.0},
            {"configuration": "T3 P4", "seed": 1, "status": "ok", "val_mpjpe": 71.5},
            {"configuration": "T3 P4", "seed": 2, "status": "stopped", "val_mpjpe": 95.0},
            {"configuration": "T3 P4", "seed": 3, "status": "error", "val_mpjpe": 90.0},
            {"configuration": "T2 P4", "seed": 0, "status": "ok", "val_mpjpe": 60.0}]
    assert per_seed(pa.Table.from_pylist(_shuffled(rows)), "T3 P4") == {0: 70.0, 1: 71.5}
