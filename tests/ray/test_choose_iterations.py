"""The statistics behind tables and seed sizing (tuning.stats.paired, the layouts' paired
sections, tuning.procedures.seed_sizing): known values, a Monte Carlo check of the power
calculation, the bootstrap, and the CLI's refusal of a search sweep. No Ray."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from tuning.experiment.layouts import table_layout
from tuning.experiment.schema import load_experiment
from tuning.stats.crossed import seeds_only
from tuning.stats.paired import holm, mde


def test_holm_adjusts_step_down_and_leaves_untested_entries_out():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    assert holm([0.01, 0.04, math.nan, 0.03]) == pytest.approx([0.03, 0.06, math.nan, 0.06],
                                                               nan_ok=True)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_mde_is_the_difference_the_paired_t_test_detects_80_percent_of_the_time():
    sd, n = 1.5, 5
    delta = mde(sd, n)
    # approximately (t_{0.975} + t_{0.8})·sd/√n, a little larger at small n (exact vs normal)
    approx = (sps.t.ppf(0.975, n - 1) + sps.t.ppf(0.8, n - 1)) * sd / math.sqrt(n)
    assert delta == pytest.approx(approx, rel=0.1)
    rng = np.random.default_rng(1)
    d = rng.normal(delta, sd, (20000, n))
    rate = np.mean(sps.ttest_1samp(d, 0.0, axis=1).pvalue < 0.05)
    assert rate == pytest.approx(0.8, abs=0.015)
    assert math.isnan(mde(sd, 1))


def test_a_tables_paired_section_is_descriptive_an_interval_and_no_test():
    test = seeds_only([0.5, -0.2, 0.3])
    ci = sps.ttest_1samp([0.5, -0.2, 0.3], 0).confidence_interval()
    assert test.interval() == pytest.approx((ci.low, ci.high))
    rows = [{"configuration": c, "seed": s, "status": "ok", "P1_standard_mpjpe": v + 100,
             "P2_standard_mpjpe": v + 90}
            for s, (x, r) in enumerate(((0.5, 0.0), (-0.2, 0.0), (0.3, 0.0)))
            for c, v in (("X", x), ("R", r))]
    text = table_layout({"columns": ["X", "R"], "metric": "mpjpe",
                         "reference": "R"}).paired_section(rows)
    half = (ci.high - ci.low) / 2
    assert f"| P1 | {test.mean:+.2f} ± {half:.2f} (n=3) |" in text
    assert "p=" not in text and "*" not in text.replace("**R**", "")
    assert "Descriptive" in text and "over seeds (the test images fixed)" in text


def test_sweep_of_choose_iterations_is_refused_naming_the_command(capsys):
    from hkmr.cli import main

    assert main(["sweep", "choose_iterations", "--preset", "smoke"]) == 2
    assert "`hkmr choose-iterations --preset smoke`" in capsys.readouterr().err


def test_a_search_sweep_with_several_seeds_is_refused_before_ray(tmp_path):
    from hkmr.config import ConfigError
    from tuning.run.driver import plan_sweep
    from tuning.run.request import SweepRequest

    with pytest.raises(ConfigError, match="is a search: it runs one seed per sampled point"):
        plan_sweep(SweepRequest("loss_weights", "smoke", seeds=2, storage=tmp_path))


def _images(effect: float, seeds=3, images=40, seed=0):
    """Per-image rows: a seed effect, an image effect shared by every configuration (the
    same test images), the configuration's true effect and per-trial noise."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    image_effect = rng.normal(0, 20, images)
    rows = []
    for s in range(seeds):
        seed_effect = rng.normal(0, 5)
        for name, shift in (("X", effect), ("Ref", 0.0)):
            for i in range(images):
                v = 80 + seed_effect + image_effect[i] + shift + rng.normal(0, 2)
                for protocol in ("P1", "P2"):
                    rows.append({"trial_id": f"{name}{s}", "configuration": name, "seed": s,
                                 "image": i, "protocol": protocol, "occlusion": "standard",
                                 "degree": 0, "mpjpe": v, "pa_mpjpe": v / 2})
    return pa.Table.from_pylist(rows)


def test_bootstrap_over_seeds_and_images_covers_the_true_paired_difference():
    from tuning.analysis.image_errors import bootstrap_difference, bootstrap_section

    mean, low, high, seeds, images = bootstrap_difference(_images(3.0), "X", "Ref")
    assert (seeds, images) == (3, 40)
    assert low < 3.0 < high and high - low < 3  # the shared image effect cancels
    assert low > 0  # a 3 mm effect over noise of 2 mm per image is resolved
    text = bootstrap_section(_images(0.0),
                             [table_layout({"columns": ["X", "Ref"], "reference": "Ref"})], 500)
    assert "| X − Ref | P1 | MPJPE |" in text and "| 3 | 40 |" in text
    covered = sum(lo < 0 < hi for _, lo, hi, _, _ in
                  (bootstrap_difference(_images(0.0, seed=k), "X", "Ref", resamples=500)
                   for k in range(40)))
    assert covered >= 32  # measured: 40 of 40 intervals cover the true 0


def test_target_mde_adds_seed_batches_sized_by_the_spread_and_says_what_stopped_it():
    import pyarrow as pa

    from tuning.analysis.aggregate import header
    from tuning.analysis.power_statement import power_statement
    from tuning.procedures.seed_sizing import run_to_target

    from tuning.stats.paired import differences

    exp = load_experiment("table2")  # reference: Full model; primary: P1_standard_mpjpe
    rng = np.random.default_rng(0)

    def noisy(configuration):  # the family's noisiest comparison decides
        return 3.0 if configuration == "Forward only" else 1.0

    def trials(calls, sd):
        def run_batch(first, n):
            calls.append((first, n))
            rows = []
            for seed in range(first, first + n):
                effect = rng.normal(0, 5)
                rows += [{"configuration": c, "seed": seed, "status": "ok",
                          "P1_standard_mpjpe": 70 + effect + rng.normal(0, sd * noisy(c)),
                          "P2_standard_mpjpe": 60 + effect + rng.normal(0, sd)}
                         for c in exp.configurations]
            return pa.Table.from_pylist(rows)
        return run_batch

    calls = []
    table, record = run_to_target(exp, 3, 100.0, 10, trials(calls, 1.0))
    assert calls == [(0, 3)] and "reached the target at 3 seeds" in record["stopped_by"]
    calls = []
    table, record = run_to_target(exp, 3, 0.01, 6, trials(calls, 1.0))
    assert calls[0] == (0, 3) and sum(n for _, n in calls) == 6 == record["seeds"]
    assert [f for f, _ in calls] == [0, 3] + [f for f, _ in calls][2:]  # no seed twice
    assert "--max-seeds 6 was reached" in record["stopped_by"]
    assert sorted({r["seed"] for r in table.to_pylist()}) == list(range(6))
    kept = table.filter(pa.compute.less(table.column("seed"), 3))  # --extend: seeds 0..2 kept
    calls = []
    table, record = run_to_target(exp, 3, 0.01, 6, trials(calls, 1.0), kept=kept)
    assert calls[0][0] == 3 and sum(n for _, n in calls) == 3 and record["seeds"] == 6
    assert table.slice(0, kept.num_rows).equals(kept)
    calls = []
    table, record = run_to_target(exp, 3, 1.5, 30, trials(calls, 0.3))
    assert 3 < record["seeds"] < 30 and record["mde"] <= 1.5
    assert "reached the target" in record["stopped_by"]
    # the worst comparison of the confirmatory family (m = 6), at Holm's first level α/6
    assert record["comparison"] == "Forward only (P1_standard_mpjpe)" and record["family"] == 6
    d = differences(table.to_pylist(), "Forward only", "Full model", "P1_standard_mpjpe")
    assert record["mde"] == pytest.approx(mde(d.std(ddof=1), len(d), 0.05 / 6))
    assert record["mde"] > mde(d.std(ddof=1), len(d))  # the old, unadjusted figure
    text = header(exp, "smoke", {"seeds": record["seeds"], "power": record})
    assert power_statement(record) in text and "`--target-mde 1.5` (max 30)" in text
