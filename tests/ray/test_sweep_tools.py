"""What a sweep user sees around the trials: the live table's metric and columns, the dry
run, the queryable Parquet and index, MLflow tracking and the Optuna study. The fast tests
start no Ray; the two slow ones run the smallest sweep (tests/ray/test_sweeps.py's TINY)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from hkmr.cli import main
from test_sweeps import TINY, write_experiment

RESULTS = Path(__file__).parents[2] / "results"


def test_every_sweep_sets_its_metric_and_the_live_table_shows_validation_mpjpe(tmp_path):
    import ray
    from ray.tune import CLIReporter

    from tuning.run.driver import plan_sweep, tuner_for

    from tuning.run.request import SweepRequest

    exp = write_experiment(tmp_path, {"HMR": {"model.regressor": "hmr"}, "HKMR": {}})
    plan = plan_sweep(SweepRequest(exp, storage=tmp_path / "store"))
    tuner = tuner_for(plan, resume=False)
    assert (tuner._local_tuner._tune_config.metric,
            tuner._local_tuner._tune_config.mode) == ("val_mpjpe", "min")
    reporter = tuner._local_tuner.get_run_config().progress_reporter
    assert isinstance(reporter, CLIReporter)
    assert reporter._metric_columns == {"epoch": "epoch", "val_mpjpe": "val MPJPE",
                                        "val_pa_mpjpe": "val PA-MPJPE",
                                        "images_per_second": "images/s"}
    assert reporter._parameter_columns == ["configuration", "seed", "model.regressor"]
    assert not ray.is_initialized()


def test_dry_run_prints_every_trial_and_the_shared_artefacts_without_ray(
        tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.setenv("HKMR_CACHE", str(tmp_path / "cache"))
    exp = write_experiment(tmp_path, {"HMR": {"model.regressor": "hmr"},
                                      "VAE": {"model.prior": "vae"}})
    assert main(["sweep", str(exp), "--dry-run", "--storage", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "4 trials, each: cpu=1" in out
    for name, seed, keys in (("HMR", 0, "model.regressor=hmr"), ("HMR", 1, "model.regressor=hmr"),
                             ("VAE", 0, "model.prior=vae"), ("VAE", 1, "model.prior=vae")):
        assert f"{name}  seed={seed}  {keys}" in out
    assert "dataset         build" in out and "VAE prior       build" in out
    assert not ray.is_initialized()
    assert not (tmp_path / "store").exists() and not (tmp_path / "cache" / "synth").exists()


def test_workers_per_trial_flag_overrides_the_preset_and_the_dry_run_shows_each_share(
        tmp_path, capsys):
    import ray

    from hkmr.config import ConfigError

    exp = write_experiment(tmp_path, {"HKMR": {}}, workers_per_trial=1)  # TINY: batch 4
    store = ["--storage", str(tmp_path / "store")]
    assert main(["sweep", str(exp), "--dry-run", *store]) == 0
    assert "a Ray Train group of 1 workers (cpu=0.99 each), each 4 of the global batch 4" \
        in capsys.readouterr().out
    assert main(["sweep", str(exp), "--dry-run", "--workers-per-trial", "2", *store]) == 0
    out = capsys.readouterr().out
    assert "2 trials, each: cpu=0.01; a Ray Train group of 2 workers (" in out
    assert "each), each 2 of the global batch 4" in out
    with pytest.raises(ConfigError, match="configuration HKMR: train.batch_size=4 is the "
                       "global batch of a step; it must divide among workers_per_trial=3"):
        from tuning.run.driver import plan_sweep
        from tuning.run.request import SweepRequest

        plan_sweep(SweepRequest(exp, storage=tmp_path / "store", workers_per_trial=3))
    assert not ray.is_initialized()


def test_the_epochs_parquet_of_committed_results_has_one_row_per_trial_and_epoch():
    duckdb = pytest.importorskip("duckdb")
    folder = RESULTS / "table2" / "smoke"
    trials = pq.read_table(folder / "trials.parquet").to_pylist()
    expected = {(t["configuration"], e["epoch"]) for t in trials
                for e in json.loads(t["epochs_json"])}
    rows = duckdb.sql(f"SELECT configuration, epoch, val_mpjpe FROM "
                      f"'{folder / 'epochs.parquet'}' ORDER BY configuration, epoch").fetchall()
    assert len(rows) == len(expected) == 8
    assert {(c, e) for c, e, _ in rows} == expected
    assert all(isinstance(v, float) for _, _, v in rows)


def test_search_values_are_typed_columns_and_the_index_lists_every_results_folder(tmp_path):
    from tuning.analysis.queryable import write_index

    search = pq.read_table(RESULTS / "choose_iterations" / "smoke" / "search" / "trials.parquet")
    assert str(search.schema.field("model.outer_iters").type) == "int64"
    assert search.column("model.outer_iters").to_pylist() == [
        json.loads(s)["model.outer_iters"] for s in search.column("search").to_pylist()]
    copy = tmp_path / "results"
    shutil.copytree(RESULTS, copy)
    (copy / "index.md").unlink()
    assert main(["report", "--index", str(copy)]) == 0
    text = (copy / "index.md").read_text()
    assert text == write_index(copy).read_text()
    assert text == (RESULTS / "index.md").read_text(), "results/index.md is out of date"
    for folder in sorted(p.parent for p in RESULTS.rglob("trials.parquet")):
        assert f"[`{folder.relative_to(RESULTS).as_posix()}/`]" in text
    assert "| table2 | cpu_frozen | frozen_features | 3 | 12 |" in text


def test_tracking_values_are_parsed_or_rejected(tmp_path):
    from hkmr.tracking import parse_tracking

    assert parse_tracking(None, tmp_path) is None
    assert parse_tracking("mlflow", tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert parse_tracking("mlflow:http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    assert parse_tracking(f"mlflow:{tmp_path}/s", tmp_path) == f"sqlite:///{tmp_path}/s/mlflow.db"
    with pytest.raises(ValueError, match="--tracking 'wandb'"):
        parse_tracking("wandb", tmp_path)


def _runs(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return client, runs


@pytest.mark.slow
def test_smoke_sweep_tracks_trials_in_mlflow_and_writes_tensorboard_and_epochs(
        tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    import sys

    import ray

    from test_commands import scalars

    exp = write_experiment(tmp_path, {"HMR": {"model.regressor": "hmr"}, "HKMR": {}}, seeds=1)
    argv = ["sweep", str(exp), "--storage", str(tmp_path / "ray"), "--out",
            str(tmp_path / "results"), "--tracking", f"mlflow:{tmp_path / 'store'}"]
    monkeypatch.setattr(sys, "argv", ["hkmr", *argv])  # the command the sweep records
    # Tune's CLIReporter drops columns that do not fit the terminal; without one (a pipe, an
    # xdist worker) it assumes 80 columns, too few for the metrics
    monkeypatch.setenv("COLUMNS", "250")
    # what a previous Tuner.fit in this process leaves behind (Tune's global verbosity: 1, or
    # 0 after a run with Ray's new output engine); the live table must not depend on it
    from ray.tune.utils.log import Verbosity, set_verbosity
    set_verbosity(Verbosity.V0_MINIMAL)
    try:
        assert main(argv) == 0  # starts a local Ray of os.cpu_count() (2 here) CPUs
    finally:
        ray.shutdown()
    printed = capsys.readouterr().out
    assert "trials: 2 ok; best by val_mpjpe: " in printed
    # the live table's metric columns (padded to the widest value), also in a process whose
    # earlier Tune runs lowered Tune's global verbosity (set_verbosity above)
    assert re.search(r"\|\s+epoch\s+\|\s+val MPJPE\s+\|\s+val PA-MPJPE\s+\|\s+images/s\s+\|",
                     printed), printed[-3000:]
    client, runs = _runs(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["configuration"] for r in children) == ["HKMR", "HMR"]
    for run in children:
        tags, params = run.data.tags, run.data.params
        assert (tags["experiment"], tags["preset"], tags["command"]) == (
            "mini", "smoke", "hkmr " + " ".join(argv))
        assert tags["git_revision"] and params["seed"] == "0"
        assert params["model.regressor"] == ("hmr" if tags["configuration"] == "HMR" else "hkmr")
        history = client.get_metric_history(run.info.run_id, "val_mpjpe")
        assert sorted(m.step for m in history) == [1, 2]
        assert "P1_standard_mpjpe" in run.data.metrics
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "tables.md", "trials.parquet", "epochs.parquet"}
    out = tmp_path / "results" / "mini" / "smoke"
    epochs = pq.read_table(out / "epochs.parquet").to_pandas()
    assert len(epochs) == 2 * TINY["train.epochs"]
    assert sorted(epochs.groupby("configuration").epoch.apply(list).to_dict().items()) == [
        ("HKMR", [1, 2]), ("HMR", [1, 2])]
    trial_dirs = sorted((tmp_path / "ray" / "mini-smoke").glob("hkmr_trial_*"))
    assert len(trial_dirs) == 2
    for folder in trial_dirs:  # Tune's TensorBoard events, one file per trial
        tb = scalars(folder)
        assert [step for step, _ in tb["ray/tune/val_mpjpe"]][:2] == [1, 2], folder


@pytest.mark.slow
def test_search_sweep_keeps_its_optuna_study_where_load_study_finds_it(tmp_path):
    import optuna
    import ray

    from tuning.run.driver import run_sweep

    from tuning.run.request import SweepRequest

    spec = {"name": "minisearch", "title": "Mini search", "search": {
        "model.outer_iters": {"choice": [1, 2]}},
        "presets": {"smoke": {"config": "smoke", "seeds": 1, "samples": 2, "overrides": TINY,
                              "eval_limit": 4, "suites": ["table1"]}}}
    path = tmp_path / "minisearch.yaml"
    path.write_text(yaml.safe_dump(spec))
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        _, out = run_sweep(SweepRequest(path, "smoke", storage=tmp_path / "ray",
                           results_dir=tmp_path / "results"))
    finally:
        ray.shutdown()
    study = optuna.load_study(study_name="minisearch-smoke",
                              storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(study.trials) == 2
    assert all(t.params["model.outer_iters"] in (1, 2) for t in study.trials)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
