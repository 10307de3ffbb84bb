"""The cluster path on a real multi-node Ray cluster on this machine
(``ray.cluster_utils.Cluster``, loopback only, one cluster for the module, stopped at its end):
a head with 0 CPUs, worker nodes with 1 CPU each, a shared folder as storage. Trials that do
not fit wait as pending placement groups (the autoscaler's demand) and start when a node
joins; the shared artefacts are built once, by a task on a worker node, also when two sweeps
start together; a trial whose node is removed resumes on another node from its checkpoint."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from faults import FailOnce
from test_sweeps import TINY, write_experiment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head with 0 CPUs and one 1-CPU worker node; a fresh $HKMR_CACHE the nodes inherit.
    Nodes are noticed dead within about a second."""
    import ray
    from ray.cluster_utils import Cluster

    mp = pytest.MonkeyPatch()
    mp.setenv("HKMR_CACHE", str(tmp_path_factory.mktemp("cluster_cache")))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "_system_config": {"health_check_initial_delay_ms": 0,
                                          "health_check_period_ms": 300,
                                          "health_check_failure_threshold": 3}})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        mp.undo()


def _worker_nodes(cluster) -> list:
    return [n for n in cluster.list_all_nodes() if n is not cluster.head_node]


def _in_thread(fn, *args, **kwargs):
    """Run ``fn`` in a thread; returns (thread, box) where box gets 'value' or 'error'."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - re-raised by the test
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _result(thread, box, timeout: float = 300):
    thread.join(timeout)
    assert not thread.is_alive(), "the sweep did not finish"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _placement_groups() -> dict[str, int]:
    """State -> number of the cluster's placement groups (PENDING: waiting for resources,
    the demand the autoscaler scales for; CREATED: placed). Read from the GCS through this
    driver's connection (``placement_group_table``), not the dashboard's state API: under load
    the head's dashboard may not have registered when the test asks."""
    from ray.util import placement_group_table

    counts: dict[str, int] = {}
    for group in placement_group_table().values():
        counts[group["state"]] = counts.get(group["state"], 0) + 1
    return counts


def test_shared_artefacts_are_built_once_on_a_worker_node_also_for_two_sweeps(
        cluster, tmp_path):
    from hkmr.io import cache_dir
    from tuning.run.shared_artifacts import BUILD_LOG, prepare_shared_task
    from tuning.run.driver import plan_sweep
    from tuning.run.request import SweepRequest

    exp = write_experiment(tmp_path, {"A": {}, "B": {"model.embed_dim": 8}})
    plans = [plan_sweep(SweepRequest(exp, storage=tmp_path / "store", name=f"sweep{i}")) for i in (1, 2)]
    runs = [_in_thread(prepare_shared_task, plan) for plan in plans]  # started together
    results = [_result(*run, timeout=120) for run in runs]
    log = [json.loads(line) for line in (cache_dir() / BUILD_LOG).read_text().splitlines()]
    assert [e["what"] for e in log] == ["dataset"], "one build for both sweeps"
    workers = {n.node_id for n in _worker_nodes(cluster)}
    assert log[0]["node_id"] in workers and log[0]["node_id"] != cluster.head_node.node_id
    assert sorted(len(r["built"]) for r in results) == [0, 1], "the other sweep reused it"
    assert (Path(log[0]["path"]) / "manifest.json").exists()


def test_trials_that_do_not_fit_wait_as_pending_demand_and_run_when_a_node_joins(
        cluster, tmp_path):
    from tuning.run.driver import run_sweep
    from tuning.run.request import SweepRequest

    (first,) = _worker_nodes(cluster)
    exp = write_experiment(tmp_path, {"HMR": {"model.regressor": "hmr"}, "HKMR": {}})
    run = _in_thread(run_sweep, SweepRequest(exp, "smoke", storage=tmp_path / "store",
                                             results_dir=tmp_path / "results",
                                             address=cluster.address))
    deadline, seen = time.time() + 120, (0, 0)
    while time.time() < deadline and seen != (1, 3):
        groups = _placement_groups()
        seen = (groups.get("CREATED", 0), groups.get("PENDING", 0))
        time.sleep(0.3)
    assert seen == (1, 3), "1 trial placed on the 1-CPU node, 3 waiting as demand"
    joined = cluster.add_node(num_cpus=1)
    grid, out = _result(*run)
    rows = pq.read_table(out / "trials.parquet").to_pylist()
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    # trials ran on both worker nodes (the new one too), none on the 0-CPU head
    assert {r["node_id"] for r in rows} == {first.node_id, joined.node_id}


def test_a_trial_whose_node_is_removed_resumes_on_another_from_its_checkpoint(
        cluster, tmp_path):
    from tuning.run.driver import run_sweep
    from tuning.run.request import SweepRequest

    while len(_worker_nodes(cluster)) < 2:
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    exp = write_experiment(tmp_path, {"HKMR": {}}, seeds=1)
    markers, epochs = tmp_path / "markers", 6
    run = _in_thread(run_sweep, SweepRequest(
        exp, "smoke", storage=tmp_path / "store", results_dir=tmp_path / "results",
        address=cluster.address, overrides=[f"train.epochs={epochs}"],
        callbacks=[FailOnce(marker_dir=str(markers))]))  # logs each epoch's node
    deadline, log = time.time() + 120, []
    while time.time() < deadline and not any(e["epoch"] >= 2 for e in log):
        log = [json.loads(line) for f in markers.glob("attempts-*")
               for line in f.read_text().splitlines()]
        time.sleep(0.1)
    lost = log[-1]["node_id"]
    (node,) = [n for n in _worker_nodes(cluster) if n.node_id == lost]
    cluster.remove_node(node, allow_graceful=False)
    grid, out = _result(*run)
    (result,) = list(grid)
    log = [json.loads(line) for f in markers.glob("attempts-*")
           for line in f.read_text().splitlines()]
    starts = [i for i, e in enumerate(log) if e["event"] == "start"]
    assert len(starts) == 2, "one retry"
    first, second = log[:starts[1]], log[starts[1]:]
    assert {e["node_id"] for e in first} == {lost} and lost not in {e["node_id"]
                                                                   for e in second}
    done = max(e["epoch"] for e in first)
    resumed = second[1]["epoch"]
    # from its last checkpoint: at most the epoch that was running (or being reported) when
    # the node went is trained again, never from the start
    assert 2 <= resumed <= done + 1, (done, resumed)
    assert result.error is None and result.metrics["epoch"] == epochs
    assert result.metrics["step"] == epochs * TINY["train.steps_per_epoch"]
    rows = pq.read_table(out / "trials.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok"] and rows[0]["node_id"] != lost
