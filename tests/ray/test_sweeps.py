"""The Ray platform on real local Ray: sweeps, aggregation, fault tolerance, resume, NaN
trials, cluster manifests. Slow: each test starts Ray. A killed driver and its resume:
tests/test_storage.py (on S3); placement on several nodes, node loss, pending demand,
shared work: tests/test_cluster.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from faults import FailOnce, attempts
from hkmr.config import ConfigError

TINY = {"data.synth_train": 8, "data.synth_val": 4, "data.synth_test": 4, "data.synth_size": 64,
        "model.encoder": "small_cnn", "model.prior": "none", "train.batch_size": 4,
        "train.steps_per_epoch": 2, "train.epochs": 2, "model.embed_dim": 16,
        "model.head_hidden": 16}


def write_experiment(tmp_path: Path, configurations: dict, **preset) -> Path:
    spec = {"name": "mini", "title": "Mini sweep", "configurations": configurations,
            "tables": [{"title": "MPJPE (mm)", "columns": list(configurations),
                        "metric": "mpjpe"}],
            "presets": {"smoke": {"config": "smoke", "seeds": 2, "overrides": TINY,
                                  "eval_limit": 8, "suites": ["table1"], **preset}}}
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def ray_local():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_sweep_two_configurations_two_seeds_gives_four_trials_and_a_ci_table(
        tmp_path, ray_local):
    from tuning.run.driver import run_sweep
    from tuning.run.request import SweepRequest

    exp = write_experiment(tmp_path, {"HMR": {"model.regressor": "hmr"},
                                      "HKMR": {"model.regressor": "hkmr"}})
    grid, out = run_sweep(SweepRequest(exp, "smoke", storage=tmp_path / "store",
                          results_dir=tmp_path / "results"))
    table = pq.read_table(out / "trials.parquet").to_pylist()
    assert len(table) == 4
    assert sorted((r["configuration"], r["seed"]) for r in table) == [
        ("HKMR", 0), ("HKMR", 1), ("HMR", 0), ("HMR", 1)]
    assert all(r["status"] == "ok" for r in table)
    assert all(len(json.loads(r["epochs_json"])) == 2 for r in table)
    text = (out / "tables.md").read_text()
    assert "| P1 |" in text and "(n=2)" in text and " ± " in text
    assert "Trials: 4 ok" in text
    # every trial's per-image errors, collected from its final checkpoint
    images = pq.read_table(out / "images.parquet").to_pylist()
    assert {(r["configuration"], r["seed"]) for r in images} == {
        ("HKMR", 0), ("HKMR", 1), ("HMR", 0), ("HMR", 1)}
    p1 = [r["mpjpe"] for r in images if r["trial_id"] == table[0]["trial_id"]
          and (r["protocol"], r["occlusion"]) == ("P1", "standard")]
    assert sum(p1) / len(p1) == pytest.approx(table[0]["P1_standard_mpjpe"], rel=1e-5)
    from tuning.analysis.image_errors import bootstrap_section
    from tuning.experiment.layouts import table_layout

    assert "| HMR − HKMR | P1 | MPJPE |" in bootstrap_section(
        pq.read_table(out / "images.parquet"),
        [table_layout({"columns": ["HMR", "HKMR"], "reference": "HKMR"})], 200)


@pytest.mark.slow
def test_nan_and_bad_config_trials_fail_at_their_first_attempt_and_the_sweep_completes(
        tmp_path, ray_local):
    """Errors no retry can fix (tuning.run.retry) end their trial at once, with their message:
    a non-finite loss (a corrupted prior) and an invalid config (injected after epoch 1)."""
    import torch

    from hkmr.model.priors import PoseVAE
    from tuning.run.driver import run_sweep
    from tuning.run.request import SweepRequest

    vae = PoseVAE()
    with torch.no_grad():
        vae.encoder[0].weight.fill_(float("nan"))  # a corrupted prior checkpoint
    bad = tmp_path / "bad_vae.pt"
    vae.save(bad)
    exp = write_experiment(tmp_path, {"good": {}, "corrupt prior": {
        "model.prior": "vae", "model.vae_checkpoint": str(bad)},
        "bad": {"model.embed_dim": 8}}, seeds=1)
    markers = tmp_path / "markers"
    grid, out = run_sweep(SweepRequest(exp, "smoke", storage=tmp_path / "store",
                          results_dir=tmp_path / "results",
                          callbacks=[FailOnce(1, {"bad": "config"}, str(markers))]))
    rows = {r["configuration"]: r for r in pq.read_table(out / "trials.parquet").to_pylist()}
    assert rows["good"]["status"] == "ok"
    assert rows["corrupt prior"]["status"] == "failed"
    assert "term 'prior'" in rows["corrupt prior"]["error"]
    assert rows["bad"]["status"] == "failed"
    assert "ConfigError: injected invalid config after epoch 1" in rows["bad"]["error"]
    log = attempts(markers)
    for name in ("corrupt prior", "bad", "good"):
        events = [e["event"] for e in log[rows[name]["trial_id"]]]
        assert events.count("start") == 1, (name, events)
    text = (out / "tables.md").read_text()
    assert "2 failed" in text and "corrupt prior" in text and "term 'prior'" in text


@pytest.mark.slow
def test_killed_train_worker_is_retried_by_tune_and_resumes_from_its_checkpoint(
        tmp_path, ray_local):
    """One retry layer (tuning.run.retry): a SIGKILLed Ray Train worker fails its TorchTrainer
    (Train retries nothing), Tune retries the trial once, and the new TorchTrainer resumes from
    the checkpoint (no epoch lost or trained twice)."""
    from tuning.run.driver import run_sweep
    from tuning.run.request import SweepRequest

    exp = write_experiment(tmp_path, {"HKMR": {}}, seeds=1, workers_per_trial=1)
    markers = tmp_path / "markers"
    grid, out = run_sweep(SweepRequest(exp, "smoke", storage=tmp_path / "store",
                          results_dir=tmp_path / "results", overrides=["train.epochs=3"],
                          callbacks=[FailOnce(2, {"HKMR": "kill"}, str(markers))]))
    (result,) = list(grid)
    (events,) = [[(e["event"], e["epoch"]) for e in log] for log in attempts(markers).values()]
    second = events.index(("start", 0), 1)
    assert events[:second] == [("start", 0), ("epoch", 1), ("epoch", 2)], "killed at 2"
    # the retry resumed from a checkpoint (epoch 1's, or 2's if Train had registered it
    # before the kill), not from scratch, and trained on to the end; no third attempt
    assert events[second + 1][1] in (2, 3) and events[-1] == ("epoch", 3)
    assert ("start", 0) not in events[second + 1:]
    assert result.error is None
    frame = result.metrics_dataframe
    # the last epoch is reported with the final metrics (one report: ASHA cannot stop it
    # between the two)
    assert sorted(set(frame[frame["epoch"] > 0]["epoch"])) == [1, 2, 3]
    assert frame[frame["final"] == 1]["epoch"].tolist() == [3]
    assert result.metrics["final"] == 1 and result.metrics["epoch"] == 3
    assert result.metrics["step"] == 3 * TINY["train.steps_per_epoch"], "no epoch trained twice"


def test_bad_experiments_and_overrides_are_rejected_before_ray_starts(tmp_path):
    import ray

    from tuning.run.driver import plan_sweep

    from tuning.run.request import SweepRequest

    exp = write_experiment(tmp_path, {"a": {"model.passes": "sideways"}})
    with pytest.raises(ConfigError, match="model.passes='sideways' is not allowed"):
        plan_sweep(SweepRequest(exp))
    good = write_experiment(tmp_path, {"a": {}})
    with pytest.raises(ConfigError, match="model.outer_iters=0 is out of range"):
        plan_sweep(SweepRequest(good, overrides=["model.outer_iters=0"]))
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        plan_sweep(SweepRequest(good, preset="huge"))
    with pytest.raises(ConfigError, match="unknown experiment 'table9'"):
        plan_sweep(SweepRequest("table9"))
    spec = yaml.safe_load(good.read_text())
    spec["tables"][0]["reference"] = "b"
    good.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="names unknown configuration 'b'"):
        plan_sweep(SweepRequest(good))
    assert not ray.is_initialized()


def test_shipped_experiments_resolve_for_every_preset():
    from tuning.experiment.schema import load_experiment

    base = {"smoke", "cpu", "paper", "smoke_frozen", "cpu_frozen", "paper_frozen"}
    for name in ("table1", "table2", "table3", "table4", "loss_weights", "choose_iterations"):
        exp = load_experiment(name)
        keypoints = set() if name == "table4" else {"smoke_keypoints", "cpu_keypoints"}
        extra = {"cpu_keypoints_mlp"} if name in ("table2", "table3") else set()
        assert set(exp.presets) == base | keypoints | extra, name
        assert exp.presets["cpu"].seeds >= 3 or exp.is_search
        if keypoints and not exp.is_search:  # the powered tables
            assert exp.presets["cpu_keypoints"].seeds >= 6
            assert exp.resolve("cpu_keypoints", None if exp.is_search else
                               next(iter(exp.configurations))).model.encoder == "keypoints"
    mlp = load_experiment("table2").resolve("cpu_keypoints_mlp", "Full model")
    assert mlp.model.chain_layer == "mlp" and mlp.train.lr_schedule == "cosine"
    table3 = load_experiment("table3")
    cfg = table3.resolve("paper", "T3 P4")
    assert (cfg.model.outer_iters, cfg.model.inner_iters, cfg.model.encoder) == (3, 4, "resnet50")
    assert table3.resolve("cpu_frozen", "T1 P4").model.freeze_encoder
    table4 = load_experiment("table4")
    for preset in table4.presets:
        spin, mf = table4.resolve(preset, "SPIN"), table4.resolve(preset, "HKMR_MF")
        assert (spin.model.regressor, mf.model.regressor) == ("hmr", "hkmr")
        assert spin.train.in_the_loop and mf.train.in_the_loop
        assert spin.data.smpl_fraction == mf.data.smpl_fraction < 1
        assert spin.train.smplify_iters == mf.train.smplify_iters
        assert {"table1", "invisible"} <= set(table4.presets[preset].suites)
    assert table4.resolve("paper", "HKMR_MF").train.smplify_iters == 100  # SPIN's


def test_cluster_manifests_parse_and_name_commands_that_exist():
    import shlex

    from hkmr.cli import build_parser
    from tuning.run.driver import plan_sweep
    from tuning.run.request import SweepRequest

    root = Path(__file__).parents[2] / "cluster"
    commands = []
    for path in root.glob("*.yaml"):
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(isinstance(d, dict) for d in docs), path
        text = path.read_text()
        commands += [line.split("--", 1)[1] if line.strip().startswith("ray job submit")
                     else line for line in text.splitlines() if "hkmr sweep" in line]
    for doc in yaml.safe_load_all((root / "kuberay-rayjob.yaml").read_text()):
        commands.append(doc["spec"]["entrypoint"])
    assert commands
    for line in commands:
        words = shlex.split(line[line.index("hkmr sweep"):].rstrip("\\ "))
        args = build_parser().parse_args(words[1:])
        plan_sweep(SweepRequest(args.experiment, args.preset))  # experiment and preset exist
    readme = (root / "README.md").read_text()
    assert "hkmr sweep" in readme and "--address auto" in readme
    check = subprocess.run(["bash", "-n", str(root / "local_cluster.sh")], capture_output=True)
    assert check.returncode == 0, check.stderr


def test_trial_table_shows_each_configuration_and_its_own_keys(tmp_path):
    """The live table shows Tune's searched/grid parameters: the configuration name, the seed
    and every key a configuration sets, with that trial's value; no run internals."""
    import ray
    from ray.tune.search.variant_generator import generate_variants

    from tuning.run.driver import plan_sweep

    from tuning.run.request import SweepRequest

    exp = write_experiment(tmp_path, {"HMR": {"model.regressor": "hmr"},
                                      "small": {"model.embed_dim": 8}})
    plan = plan_sweep(SweepRequest(exp))
    assert set(plan.param_space) == {"configuration", "seed", "model.regressor",
                                     "model.embed_dim"}
    trials = [config for _, config in generate_variants(plan.param_space)]
    shown = {(c["configuration"], c["seed"]): (c["model.regressor"], c["model.embed_dim"])
             for c in trials}
    assert shown == {("HMR", 0): ("hmr", 16), ("HMR", 1): ("hmr", 16),
                     ("small", 0): ("hkmr", 8), ("small", 1): ("hkmr", 8)}
    cfg = plan.spec.resolve(trials[0])
    assert (cfg.model.regressor, cfg.seed) == (shown[trials[0]["configuration"],
                                                     trials[0]["seed"]][0], trials[0]["seed"])
    assert not ray.is_initialized()


def test_the_trial_spec_is_checked_when_the_sweep_is_planned(tmp_path):
    from tuning.experiment.trial_spec import TrialSpec
    from tuning.run.driver import plan_sweep
    from tuning.run.request import SweepRequest

    exp = write_experiment(tmp_path, {"a": {}})
    with pytest.raises(TypeError, match="fail_at"):  # a typed request: no unknown fields
        plan_sweep(SweepRequest(exp, fail_at=2))
    with pytest.raises(ConfigError, match="unknown suites \\['table9'\\]"):
        TrialSpec("mini", str(exp), "smoke", "store", suites=("table9",))
    with pytest.raises(ConfigError, match="cpus_per_trial=0 must be > 0"):
        TrialSpec("mini", str(exp), "smoke", "store", cpus_per_trial=0)
    spec = plan_sweep(SweepRequest(exp, overrides=["train.epochs=1"])).spec
    assert spec.overrides == {"train.epochs": 1} and spec.suites == ("table1",)


def test_permanent_errors_are_found_behind_ray_train_and_ray_task_errors():
    """What tuning.run.retry does not retry: an invalid config, a non-finite loss, out of memory
    (also as a Ray Train worker's failure inside TorchTrainer.fit's WorkerGroupError, the way
    a Train trial sees it); a crash or a dead worker is retried."""
    import torch
    from ray.train import WorkerGroupError

    from hkmr.train.trainer import NonFiniteLossError
    from tuning.run.retry import failure_metrics, permanent_cause

    bad = ConfigError("model.passes='x' is not allowed")
    assert permanent_cause(bad) is bad
    assert permanent_cause(WorkerGroupError("rank 0 failed", {0: bad})) is bad
    for err in (NonFiniteLossError("loss nan"), torch.cuda.OutOfMemoryError("CUDA oom")):
        assert permanent_cause(WorkerGroupError("rank 1 failed", {0: RuntimeError("x"),
                                                                  1: err})) is err
    chained = RuntimeError("while training")
    chained.__cause__ = bad
    assert permanent_cause(chained) is bad
    assert permanent_cause(WorkerGroupError("died", {0: RuntimeError("actor died")})) is None
    assert failure_metrics(bad, "n")["error"] == "ConfigError: model.passes='x' is not allowed"


def test_trials_ask_for_their_resources_and_a_search_is_limited_by_its_samples(tmp_path):
    """What Tune queues (no Ray started): a trial's placement group, and how many trials a
    search's Optuna searcher has out at once (--max-concurrent, else a quarter of its
    samples), never the cluster's CPUs."""
    import ray

    from tuning.experiment.trial_spec import TrialSpec
    from tuning.run.driver import plan_sweep, search_concurrency
    from tuning.run.request import SweepRequest
    from tuning.run.trainable import trial_placement

    exp = write_experiment(tmp_path, {"a": {}})
    bundles = {(w, gpu): trial_placement(TrialSpec("mini", str(exp), "smoke", "s",
                                                   workers_per_trial=w, use_gpu=gpu,
                                                   cpus_per_trial=4)).bundles
               for w in (0, 2) for gpu in (False, True)}
    assert bundles[0, False] == [{"CPU": 4}] and bundles[0, True] == [{"CPU": 4, "GPU": 1}]
    assert bundles[2, True] == [{"CPU": 0.01}], "a TorchTrainer's workers ask for their own"
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({
        "name": "s", "title": "S", "search": {"train.lr": {"loguniform": [1e-5, 1e-3]}},
        "presets": {"smoke": {"config": "smoke", "seeds": 1, "samples": 16, "overrides": TINY,
                              "suites": ["table1"]}}}))
    assert search_concurrency(plan_sweep(SweepRequest(search))) == 4
    assert search_concurrency(plan_sweep(SweepRequest(search, max_concurrent=7))) == 7
    assert not ray.is_initialized()


def test_a_restored_grid_does_not_count_the_killed_drivers_live_trials():
    """A killed driver's saved grid state can list a trial as live that never ended; the
    resumed grid capped by --max-concurrent must not wait for it (it once waited forever)."""
    from ray.tune.search import BasicVariantGenerator

    from tuning.run.grid_generator import ResumableGrid

    saved = BasicVariantGenerator(max_concurrent=1)
    saved._live_trials = {"trial_killed_mid_run"}
    state = saved.get_state()
    plain, resumable = BasicVariantGenerator(max_concurrent=1), ResumableGrid(max_concurrent=1)
    plain.set_state(state)
    resumable.set_state(state)
    assert plain._live_trials == {"trial_killed_mid_run"}, "Tune restores the stale slot"
    assert resumable._live_trials == set()
    assert resumable.get_state()["_uuid_prefix"] == state["_uuid_prefix"]
