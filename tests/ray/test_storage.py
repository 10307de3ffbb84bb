"""A sweep on object storage, end to end, against a real S3-compatible server on loopback
(moto's ``ThreadedMotoServer``): the endpoint and dummy credentials are given the way a user
gives them (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ... in the environment), the driver is
SIGKILLed mid-sweep, ``--resume`` from the URI finishes the rest, ``hkmr report <uri>`` writes
the table. Every process and server the test starts is stopped by it (nothing else)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from test_sweeps import write_experiment

BUCKET = "hkmr-test"


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server on 127.0.0.1 (a free port), with one bucket; stopped at the end."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The AWS environment a user would export for an S3-compatible endpoint, and a
    bucket; yields its URI prefix."""
    for key, value in {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=BUCKET)
    yield f"s3://{BUCKET}/p"  # the server, and the bucket in it, end with the module


def _kill_processes_under(marker: str) -> list[int]:
    """SIGKILL every process whose command line names ``marker`` (a Ray temp dir this test
    made, so only the Ray the test's driver started); returns their pids."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
    return killed


def _s3_files(uri: str) -> dict[str, str]:
    """Path -> text of the small JSON files under ``uri`` that tell a trial's state."""
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(uri)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True))
    except FileNotFoundError:
        return {}
    out = {}
    for info in infos:
        name = info.path.rsplit("/", 1)[-1]
        if info.is_file and (name == "result.json" or name.startswith("experiment_state")):
            with fs.open_input_stream(info.path) as fh:
                out[info.path[len(root) + 1:]] = fh.read().decode()
    return out


def _finished(files: dict[str, str]) -> dict[str, str]:
    """Trial folder -> result.json text, for the trials that reported their final metrics and
    that Tune's newest experiment state on the storage records as TERMINATED."""
    states = sorted(k for k in files if k.startswith("experiment_state"))
    terminated = set()
    if states:
        try:
            for trial, _ in json.loads(files[states[-1]]).get("trial_data", []):
                state = json.loads(trial) if isinstance(trial, str) else trial
                if state.get("status") == "TERMINATED":
                    terminated.add(state["trial_id"])
        except json.JSONDecodeError:
            pass
    done = {}
    for key, text in files.items():
        folder = key.rsplit("/", 1)[0]
        if key.endswith("/result.json") and any(t in folder for t in terminated) and any(
                json.loads(line).get("final") == 1 for line in text.splitlines() if line):
            done[folder] = text
    return done


def test_storage_reads_writes_and_copies_folders_on_s3_and_on_disk(s3, tmp_path):
    from tuning.run.storage import download_folder, exists, join, read_text, upload_folder, write_text

    assert join("s3://b/p?endpoint_override=h:1", "n", "f.json") == \
        "s3://b/p/n/f.json?endpoint_override=h:1"
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "sub" / "t.md").write_text("table")
    for base in (f"{s3}/unit", str(tmp_path / "store")):
        write_text(join(base, "x", "hkmr_sweep.json"), "{}")
        assert read_text(join(base, "x", "hkmr_sweep.json")) == "{}"
        upload_folder(tmp_path / "out", join(base, "x", "hkmr_results"))
        upload_folder(tmp_path / "out", join(base, "x", "hkmr_results"))  # replaces
        back = download_folder(join(base, "x", "hkmr_results"), tmp_path / "back" / base[-5:])
        assert (back / "sub" / "t.md").read_text() == "table"
        assert not exists(join(base, "nothing"))
        with pytest.raises(FileNotFoundError, match="nothing: no such file"):
            read_text(join(base, "nothing"))
    assert not list((tmp_path / "store" / "x").glob(".*")), "no temporary files left"


@pytest.mark.slow
def test_s3_sweep_survives_a_killed_driver_resumes_and_is_reported_from_the_uri(tmp_path, s3):
    from hkmr.cli import main
    from tuning.run.storage import exists, read_text

    exp = write_experiment(tmp_path, {"a": {}, "b": {"model.embed_dim": 8},
                                      "c": {"model.embed_dim": 12}}, seeds=1)
    sweep = f"{s3}/mini-smoke"
    cmd = [sys.executable, "-m", "hkmr.cli", "sweep", str(exp), "--storage", s3,
           "--results", str(tmp_path / "results"), "--max-concurrent", "1"]
    ray_tmp = tempfile.mkdtemp(prefix="hkmr-s3-", dir="/tmp")  # short: Ray's socket paths
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    try:
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        deadline = time.time() + 300
        while time.time() < deadline and not _finished(_s3_files(sweep)):
            assert proc.poll() is None, "the driver ended before a trial finished"
            time.sleep(1)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started die
        proc.wait()
        _kill_processes_under(ray_tmp)
        before = _finished(_s3_files(sweep))
        assert 1 <= len(before) < 3, "killed mid-sweep, after a trial finished"
        assert json.loads(read_text(f"{sweep}/hkmr_sweep.json"))["experiment"] == "mini"
        shutil.rmtree(tmp_path / "results", ignore_errors=True)  # the driver's disk is gone
        done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env,
                              timeout=600)  # a resumed grid once waited forever for a slot
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        _kill_processes_under(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    after = _s3_files(sweep)
    for folder, text in before.items():  # finished trials were not run again
        assert after[f"{folder}/result.json"] == text
    assert exists(f"{sweep}/hkmr_results/tables.md"), "the results folder is on the storage"
    assert main(["report", sweep, "--out", str(tmp_path / "report")]) in (0, None)
    rows = pq.read_table(tmp_path / "report" / "mini" / "smoke" / "trials.parquet").to_pylist()
    assert sorted(r["configuration"] for r in rows) == ["a", "b", "c"], "none lost or doubled"
    assert all(r["status"] == "ok" for r in rows)
    epochs = {r["configuration"]: [e["epoch"] for e in json.loads(r["epochs_json"])]
              for r in rows}
    # every trial ends with its last epoch; the per-epoch rows the killed driver had not yet
    # synced to the storage are lost (Tune's driver writes result.json; cluster/README.md)
    assert all(e and e[-1] == 2 for e in epochs.values()), epochs
    finished = {r["configuration"] for r in rows
                if any(r["trial_id"] in folder for folder in before)}
    assert finished and all(epochs[name] == [1, 2] for name in finished), (finished, epochs)
    assert "Trials: 3 ok" in (tmp_path / "report" / "mini" / "smoke" / "tables.md").read_text()
