"""Aggregation and the iteration-count decision on constructed trial rows (no Ray)."""

import math

import pytest

from tuning.analysis.aggregate import status_section
from tuning.experiment.layouts import table_layout
from tuning.stats.intervals import mean_ci


def experiment_table(table: dict, rows: list[dict]) -> str:
    """A table of an experiment file, as its typed layout renders it."""
    return table_layout(table).render(rows)


def test_mean_and_95_percent_ci_over_seeds():
    mean, half, n = mean_ci([70.0, 72.0, 74.0])
    assert (mean, n) == (72.0, 3)
    # t(0.975, 2) = 4.303, sd = 2, sqrt(3) -> 4.97
    assert half == pytest.approx(4.303 * 2 / math.sqrt(3), rel=1e-3)
    assert mean_ci([5.0])[1] != mean_ci([5.0])[1]  # NaN: no interval from one seed
    assert mean_ci([None, float("nan")])[2] == 0


def _rows():
    rows = []
    for name, values in (("A", [80.0, 82.0]), ("B", [70.0, 71.0])):
        for seed, v in enumerate(values):
            rows.append({"configuration": name, "seed": seed, "status": "ok",
                         "P1_standard_mpjpe": v, "P2_standard_mpjpe": v - 1,
                         "P1_bar_mpjpe": v + 5, "P2_bar_mpjpe": v + 4})
    rows.append({"trial_id": "t5", "configuration": "B", "seed": 2, "status": "failed",
                 "P1_standard_mpjpe": None, "error": "non-finite loss at epoch 0 step 3"})
    return rows


def test_tables_in_the_papers_shape_skip_failed_trials_and_say_so():
    rows = _rows()
    text = experiment_table({"title": "T", "columns": ["A", "B"], "metric": "mpjpe"}, rows)
    assert "| P1 | 81.00 ± 12.71 (n=2) | 70.50 ± 6.35 (n=2) |" in text
    assert "| P2 |" in text
    table1 = experiment_table({"title": "T1", "layout": "rows_are_configurations",
                             "rows": ["A", "B"], "metric": "mpjpe"}, rows)
    assert "Standard P1 | Standard P2 | Bar P1" in table1
    assert "| A | 81.00 ± 12.71 (n=2) | 80.00 ± 12.71 (n=2) | 86.00" in table1
    for r in rows[:4]:
        r.update(invisible_mpjpe_2d_px=r["P1_standard_mpjpe"] / 10, invisible_pck=50.0)
    table4 = experiment_table({"title": "T4", "layout": "invisible", "rows": ["B", "A"]}, rows)
    assert "| | MPJPE (pixel) | PCK (%) |" in table4
    assert "| B | 7.05 ± 0.64 (n=2) | 50.00 ± 0.00 (n=2) |" in table4
    assert table4.index("| B |") < table4.index("| A |")
    status = status_section(rows)
    assert "1 failed" in status and "4 ok" in status and "non-finite loss" in status


def test_an_occluded_joints_table_has_only_the_occluded_sets_and_descriptive_differences(tmp_path):
    """Table 1's occluded-joint error: no standard column, since nothing is occluded
    there; its paired differences are descriptive (interval, no test); an unknown set is a
    ConfigError when the experiment is loaded."""
    import yaml

    from hkmr.config import ConfigError
    from tuning.experiment.schema import load_experiment

    rows = []
    for seed in range(3):
        for name, value in (("Ref", 200.0), ("X", 190.0)):
            rows.append({"configuration": name, "seed": seed, "status": "ok",
                         "P1_bar_occluded_mpjpe": value + seed * (name == "X"),
                         "P2_bar_occluded_mpjpe": value})
    spec = {"title": "Occluded", "layout": "rows_are_configurations", "rows": ["X", "Ref"],
            "metric": "occluded_mpjpe", "occlusions": ["bar"], "reference": "Ref"}
    text = experiment_table(spec, rows)
    assert "| | Bar P1 | Bar P2 |" in text and "Standard" not in text
    assert "| X | 191.00 ± 2.48 (n=3) | 190.00 ± 0.00 (n=3) |" in text
    assert "| X − Ref | -9.00 ± 2.48 (n=3)" in text
    assert "Descriptive: per-comparison intervals, no tests" in text and "p=" not in text
    bad = {"name": "b", "title": "B", "configurations": {"a": {}},
           "tables": [{"title": "O", "layout": "rows_are_configurations", "rows": ["a"],
                       "metric": "occluded_mpjpe", "occlusions": ["bar", "cube"]}],
           "presets": {"smoke": {"config": "smoke", "seeds": 1}}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"b.yaml: table 'O': unknown occlusions \['cube'\]"):
        load_experiment(tmp_path / "b.yaml")


def test_candidates_rank_finished_trials_then_early_stopped_ones_by_validation():
    import json

    from tuning.procedures.choose import best_points

    def row(t, p, status, val):
        return {"status": status, "val_mpjpe": val,
                "search": json.dumps({"model.outer_iters": t, "model.inner_iters": p})}

    rows = [row(3, 4, "ok", 70.0), row(2, 4, "ok", 75.0), row(1, 2, "stopped", 60.0),
            row(4, 6, "stopped", 65.0), row(4, 2, "error", None), row(3, 4, "ok", 71.0)]
    picks = best_points(rows, 3)
    assert [(v["model.outer_iters"], v["model.inner_iters"]) for v in picks] == \
        [(3, 4), (2, 4), (1, 2)]


def test_paired_differences_cancel_the_seed_effect_and_skip_unpaired_seeds():
    rows = []
    for seed, shift in enumerate((0.0, 12.0, -9.0, 30.0)):  # a large common effect of the seed
        for name, value in (("Ref", 100.0), ("X", 98.0)):
            if name == "Ref" and seed == 3:
                continue  # seed 3 of the reference did not finish: X's seed 3 is unpaired
            rows.append({"configuration": name, "seed": seed, "status": "ok",
                         "P1_standard_mpjpe": value + shift + 0.1 * seed,
                         "P2_standard_mpjpe": value + shift})
    spec = {"title": "T", "columns": ["X", "Ref"], "metric": "mpjpe", "reference": "Ref"}
    text = experiment_table(spec, rows)
    # unpaired, the seed effect swamps the 2 mm difference ...
    assert "| P1 | 106.40 ± 26.94 (n=4) | 101.10 ± 26.07 (n=3) |" in text
    # ... paired, it is exact: -2 on every paired seed
    assert "Paired difference to **Ref**" in text
    assert "| | X |" in text and "| P1 | -2.00 ± 0.00 (n=3) |" in text
    assert "| P2 | -2.00 ± 0.00 (n=3) |" in text
    rows_layout = experiment_table({"title": "T1", "layout": "rows_are_configurations",
                                  "rows": ["X", "Ref"], "metric": "mpjpe", "reference": "Ref"},
                                 rows)
    assert "| X − Ref | -2.00 ± 0.00 (n=3) | -2.00 ± 0.00 (n=3) | — |" in rows_layout


def test_report_rerenders_a_results_folder_from_its_parquet_without_ray(tmp_path):
    import shutil
    from pathlib import Path

    import ray

    from tuning.run.report import report_sweep

    source = Path(__file__).parents[2] / "results" / "table2" / "cpu_frozen"
    shutil.copytree(source, tmp_path / "t2")
    (tmp_path / "t2" / "tables.md").write_text("stale")
    out = report_sweep(tmp_path / "t2")
    text = (out / "tables.md").read_text()
    assert out == tmp_path / "t2" and not ray.is_initialized()
    assert "made by `hkmr sweep table2 --preset cpu_frozen`" in text  # the sweep's, kept
    assert "Paired difference to **Full model**" in text and "Trials: 12 ok" in text
    (tmp_path / "bare").mkdir()
    shutil.copy(source / "trials.parquet", tmp_path / "bare")
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(tmp_path / "bare" / "trials.parquet")
                   .replace_schema_metadata(None), tmp_path / "bare" / "trials.parquet")
    with pytest.raises(ValueError, match="no 'hkmr_sweep' schema metadata"):
        report_sweep(tmp_path / "bare")


def test_every_committed_results_table_rerenders_byte_identically(tmp_path):
    """Each committed tables.md is what `hkmr report` makes of its trials.parquet today (a
    change to the table code that moves a number or a word shows here)."""
    import shutil
    from pathlib import Path

    from tuning.run.report import rerender_results

    results = Path(__file__).parents[2] / "results"
    folders = sorted(p.parent for p in results.rglob("trials.parquet"))
    assert len(folders) >= 10
    for i, folder in enumerate(folders):
        # keep the folder's place under a results root (older files name their experiment
        # file by its path under results/)
        copy = tmp_path / "results" / folder.relative_to(results)
        shutil.copytree(folder, copy)
        for sibling in folder.parents[1].rglob("confirm_experiment.yaml"):
            target = tmp_path / "results" / sibling.relative_to(results)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(sibling, target)
        rerender_results(copy)
        assert (copy / "tables.md").read_text() == (folder / "tables.md").read_text(), folder


def test_results_of_an_older_hkmr_read_in_todays_vocabulary():
    import pyarrow as pa

    from tuning.analysis.aggregate import trials_section, upgrade_trials

    old = pa.table({"configuration": ["a", "b"], "seed": [0, 0], "status": ["ok", "ok"],
                    "protocol": ["frozen features", "end to end"]})
    rows = upgrade_trials(old).to_pylist()
    assert [r["regime"] for r in rows] == ["frozen_features", "end_to_end"]
    assert "| a | 0 | ok | frozen_features |" in trials_section(rows)


def test_a_results_folder_takes_the_shipped_layout_only_for_the_configurations_it_ran():
    """Table 1's occluded-joints table was added after results/table1/cpu_keypoints ran: the
    folder renders it from its trials; a recorded experiment whose configurations differ from
    the shipped one keeps its own tables; a table no trial measured says so."""
    from pathlib import Path

    import yaml

    from tuning.run.report import read_recorded, recorded_experiment

    folder = Path(__file__).parents[2] / "results" / "table1" / "cpu_keypoints"
    info = read_recorded(folder)[1]
    assert "occluded_mpjpe" not in info["experiment_yaml"]
    titles = [t.title for t in recorded_experiment(info, folder).tables]
    assert titles[-1] == "MPJPE of the occluded joints (mm)"
    other = yaml.safe_load(info["experiment_yaml"])
    other["configurations"]["HMR"] = {"model.regressor": "hmr", "model.embed_dim": 8}
    changed = dict(info, experiment_yaml=yaml.safe_dump(other))
    assert [t.title for t in recorded_experiment(changed, folder).tables] == titles[:-1]
    spec = {"title": "Occ", "layout": "rows_are_configurations", "rows": ["A"],
            "metric": "occluded_mpjpe", "occlusions": ["bar"]}
    assert "No trial here recorded `occluded_mpjpe`" in experiment_table(spec, _rows())


def test_a_trials_status_comes_from_how_it_ended():
    from tuning.analysis.aggregate import _status

    class Finished:
        error = None

    class Crashed:
        error = RuntimeError("worker died")

    assert _status(Crashed(), {"final": 1}) == "error"
    assert _status(Finished(), {"failed": 1}) == "failed"
    assert _status(Finished(), {"final": 1}) == "ok"
    # no final report: the scheduler stopped it early, and a table must not count it
    assert _status(Finished(), {"epoch": 2, "val_mpjpe": 80.0}) == "stopped"


def test_status_section_names_failed_and_crashed_trials_with_their_errors():
    rows = _rows() + [{"trial_id": "t6", "configuration": "A", "seed": 2, "status": "error",
                       "error": "RayTaskError: worker died"},
                      {"trial_id": "t7", "configuration": "A", "seed": 3, "status": "stopped"}]
    text = status_section(rows)
    assert text.startswith("Trials: 1 error, 1 failed, 4 ok, 1 stopped")
    assert "| t5 | B | 2 | failed | non-finite loss" in text
    assert "| t6 | A | 2 | error | RayTaskError: worker died |" in text
    assert "t7" not in text


def test_search_table_lists_the_best_first_and_the_unmeasured_last():
    from tuning.analysis.aggregate import search_table

    rows = [{"configuration": name, "seed": 0, "status": status, "P1_standard_mpjpe": value}
            for name, status, value in (("c", "failed", None), ("a", "ok", 80.0),
                                        ("b", "ok", 70.0))]
    text = search_table(rows)
    assert text.index("| b |") < text.index("| a |") < text.index("| c |")

# -- aggregation that cannot drop data (finding 4) ------------------------------------------
def _result(tmp_path, trial_id, configuration, seed, metrics, epochs=()):
    """A real ray.tune.Result of a finished trial whose folder holds its result.json."""
    import json

    import pandas as pd
    from ray.tune import Result

    folder = tmp_path / trial_id
    folder.mkdir()
    lines = [{**e, "trial_id": trial_id} for e in epochs] or [{"trial_id": trial_id}]
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    from tuning.experiment.trial_spec import CONFIGURATION, SEED

    config = {CONFIGURATION: configuration, SEED: seed}
    return Result(metrics={**metrics, "config": config, "trial_id": trial_id}, checkpoint=None,
                  error=None, path=str(folder),
                  metrics_dataframe=pd.DataFrame(list(epochs)) if epochs else None)


def _grid(tmp_path):
    """The finding's grid: the Discriminator trial failed before it reported a metric and is
    first; two trials are ok, with two epochs each."""
    failed = _result(tmp_path, "t0", "Discriminator", 0,
                     {"failed": True, "error": "non-finite loss at epoch 1 step 2"})
    ok = [_result(tmp_path, f"t{i}", name, 0,
                  {"final": True, "P1_standard_mpjpe": 80.0 + i, "P2_standard_mpjpe": 79.0 + i,
                   "epoch": 2.0},
                  [{"epoch": e, "val_mpjpe": 90.0 - e + i, "images_seen": 8 * e}
                   for e in (1, 2)])
          for i, name in ((1, "Full model"), (2, "Forward only"))]
    return [failed, *ok]


def test_a_failed_trial_first_in_the_grid_drops_no_metric_column(tmp_path):
    import pyarrow as pa

    from tuning.analysis.aggregate import trials_table
    from tuning.analysis.queryable import epochs_table
    from tuning.experiment.schema import load_experiment

    table = trials_table(_grid(tmp_path), load_experiment("table2"))
    assert table.schema.field("P1_standard_mpjpe").type == pa.float64()
    assert table.schema.field("seed").type == pa.int64()
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["failed", "ok", "ok"]
    assert [r["P1_standard_mpjpe"] for r in rows] == [None, 81.0, 82.0]
    epochs = epochs_table(table).to_pylist()
    assert len(epochs) == 4 and {e["configuration"] for e in epochs} == {"Full model",
                                                                         "Forward only"}
    assert [e["val_mpjpe"] for e in epochs] == [90.0, 89.0, 91.0, 90.0]


def test_the_table_of_rows_is_the_union_of_all_rows_and_names_a_mixed_column():
    import pyarrow as pa

    from tuning.analysis.queryable import table_of_rows

    table = table_of_rows([{"a": None}, {"a": 1, "b": 2.5}, {"c": "x"}], {"a": pa.int64()})
    assert table.column_names == ["a", "b", "c"]
    assert table.to_pylist() == [{"a": None, "b": None, "c": None},
                                 {"a": 1, "b": 2.5, "c": None}, {"a": None, "b": None, "c": "x"}]
    with pytest.raises(ValueError, match="column 'b'"):
        table_of_rows([{"b": 1.0}, {"b": "text"}])


def test_a_trial_whose_result_file_is_truncated_is_listed_with_the_file(tmp_path):
    """``hkmr report`` on a storage where one trial's result.json is cut: the trial is listed
    as unreadable with the file and line in trials.parquet and tables.md."""
    import pyarrow.parquet as pq

    from tuning.analysis.aggregate import aggregate_grid
    from tuning.experiment.schema import load_experiment

    grid = _grid(tmp_path)
    damaged = tmp_path / "t2" / "result.json"
    damaged.write_text(damaged.read_text()[:-30])
    out = aggregate_grid(grid, load_experiment("table2"), "smoke", tmp_path / "out")
    rows = pq.read_table(out / "trials.parquet").to_pylist()
    assert rows[2]["unreadable"].startswith(f"{damaged} line 2: ")
    assert rows[0]["unreadable"] is None and rows[1]["unreadable"] is None
    text = (out / "tables.md").read_text()
    assert "Trials: 1 failed, 2 ok" in text
    assert f"unreadable: {damaged} line 2" in text and "non-finite loss at epoch 1" in text
    assert "81.00" in text  # the ok trials' metrics are in the tables


def test_the_line_after_a_sweep_counts_trials_as_the_tables_do(tmp_path):
    """Finding 9: after a SIGINT the line said "0 errored" beside 3 stopped trials; it now
    counts every status as tables.md does."""
    from tuning.analysis.aggregate import grid_statuses, status_counts

    grid = _grid(tmp_path)
    stopped = _result(tmp_path, "t3", "No chain hierarchy", 0, {"epoch": 1.0})
    assert status_counts(grid_statuses([*grid, stopped])) == "1 failed, 2 ok, 1 stopped"


def test_a_corrupt_results_table_is_listed_in_the_index_with_its_path(tmp_path):
    """Finding 8: one corrupt Parquet made ``hkmr report --index`` fail naming no file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tuning.analysis.queryable import write_index

    good = tmp_path / "t2" / "smoke"
    good.mkdir(parents=True)
    pq.write_table(pa.table({"configuration": ["a"], "seed": [0], "status": ["ok"]})
                   .replace_schema_metadata({"hkmr_sweep": '{"experiment": "t2"}'}),
                   good / "trials.parquet")
    bad = tmp_path / "t3" / "smoke" / "trials.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes((good / "trials.parquet").read_bytes()[:40])
    text = write_index(tmp_path).read_text()
    assert f"unreadable: {bad}" in text and "| t2 |" in text


def test_a_bootstrap_of_too_few_resamples_is_refused(tmp_path):
    """Finding 9: ``report --bootstrap 3`` gave an interval that excluded its estimate."""
    from tuning.analysis.image_errors import write_bootstrap

    with pytest.raises(ValueError, match="--bootstrap 3: a 95 % interval needs at least 100"):
        write_bootstrap(tmp_path, [], 3)
    assert not (tmp_path / "bootstrap.md").exists()
