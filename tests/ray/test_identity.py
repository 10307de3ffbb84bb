"""A sweep's identity on real local Ray (issue 29, findings 1, 2, 3, 5, 7, 8, 9): one small
sweep finishes, then every way of resuming it wrongly is refused before Ray starts, with a
message naming the file and the difference, exit code 2, and its results untouched."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hkmr.cli import main
from test_sweeps import write_experiment


def _snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def _refused(capsys, argv: list[str], *needles: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.slow
def test_a_finished_sweep_cannot_be_resumed_wrongly(tmp_path, capsys, monkeypatch):
    import ray

    exp = write_experiment(tmp_path, {"HKMR": {}, "HMR": {"model.regressor": "hmr"}}, seeds=1)
    other = tmp_path / "other" / "mini.yaml"  # another experiment under the same name
    other.parent.mkdir()
    other.write_text(exp.read_text().replace("HMR", "CMR").replace('"hmr"', '"cmr"')
                     .replace("regressor: hmr", "regressor: cmr"))
    store, out = tmp_path / "S", tmp_path / "O"
    base = ["sweep", str(exp), "--storage", str(store), "--out", str(out)]
    monkeypatch.setenv("COLUMNS", "250")
    try:
        assert main(base) == 0
    finally:
        ray.shutdown()
    capsys.readouterr()
    sweep = store / "mini-smoke"
    assert (sweep / "hkmr_fingerprint.json").exists()
    before = _snapshot(out, sweep / "hkmr_results")

    # finding 2: new overrides on --resume
    _refused(capsys, [*base, "--resume", "train.epochs=3"],
             "hkmr_fingerprint.json: --resume", "override train.epochs: (unset) then, 3 now")
    # finding 3: another experiment under the same --name
    _refused(capsys, ["sweep", str(other), "--storage", str(store), "--out", str(out),
                      "--name", "mini-smoke", "--resume"], "experiment_digest")
    # finding 5: a name that leaves the storage, a second driver on the same storage
    _refused(capsys, [*base, "--name", "../escaped"], "--name '../escaped' must be one folder")
    assert not (tmp_path / "escaped").exists()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tuning.run.identity import driver_lock\n"
         f"with driver_lock({str(store)!r}, 'mini-smoke', None):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout.readline().strip() == "held"
        _refused(capsys, [*base, "--resume"], f"{store / '.mini-smoke.lock'}: another hkmr "
                 "sweep (pid", "is running on this sweep storage")
    finally:
        holder.kill()
        holder.wait()
    # finding 9: --max-concurrent 0, an override of a key a configuration sets
    _refused(capsys, [*base, "--max-concurrent", "0"], "--max-concurrent must be >= 1, got 0")
    _refused(capsys, [*base, "model.regressor=hkmr"],
             "override model.regressor='hkmr' replaces the value configuration(s) HMR")
    # finding 8: --storage or --out a file
    (tmp_path / "file").write_text("x")
    _refused(capsys, ["sweep", str(exp), "--storage", str(tmp_path / "file"), "--out",
                      str(out)], f"cannot write the sweep storage (--storage) {tmp_path / 'file'}")
    _refused(capsys, ["sweep", str(exp), "--storage", str(store), "--out",
                      str(tmp_path / "file")], str(tmp_path / "file"))
    # finding 1: a damaged experiment state (a disk-full crash) is named, not restarted over
    (state,) = sweep.glob("experiment_state-*.json")
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    _refused(capsys, [*base, "--resume"], f"{state}: damaged experiment state")
    # a damaged sweep record is named too (hkmr report reads it)
    record = sweep / "hkmr_sweep.json"
    record.write_bytes(record.read_bytes()[:50])
    _refused(capsys, ["report", str(sweep), "--out", str(tmp_path / "R")],
             f"{record}: damaged sweep record")
    assert _snapshot(out, sweep / "hkmr_results") == before  # nothing lost or overwritten
    assert not ray.is_initialized()


@pytest.mark.slow
def test_an_object_store_that_never_answers_is_refused_in_seconds(tmp_path, capsys,
                                                                   monkeypatch):
    """Finding 7: an S3 endpoint that accepts connections and never answers kept a sweep
    silent for 103-211 s, then a traceback; it now gets REACH_TIMEOUT_S (15 s)."""
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{hole.getsockname()[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    exp = write_experiment(tmp_path, {"HKMR": {}}, seeds=1)
    start = time.monotonic()
    try:
        _refused(capsys, ["sweep", str(exp), "--storage", "s3://bucket/sweeps", "--out",
                          str(tmp_path / "O")], "--storage s3://bucket/sweeps")
    finally:
        hole.close()
    assert time.monotonic() - start < 40


@pytest.mark.slow
def test_sigterm_stops_a_sweep_like_sigint_and_its_tables_are_written(tmp_path):
    """Finding 8: SIGTERM to a sweep driver was rc 134 with Ray's native dump, no tables, and
    63-84 MB trial folders left in /tmp; it now stops the sweep as Ctrl-C does."""
    import signal
    import tempfile

    from test_sweeps import TINY

    exp = write_experiment(tmp_path, {"HKMR": {}}, seeds=1,
                           overrides={**TINY, "train.epochs": 40})
    store, out = tmp_path / "S", tmp_path / "O"
    driver = subprocess.Popen([sys.executable, "-m", "hkmr.cli", "sweep", str(exp), "--storage",
                               str(store), "--out", str(out)], cwd=Path(__file__).parents[2],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(
            p.stat().st_size for p in store.glob("mini-smoke/*/result.json")):
        time.sleep(1)
    driver.send_signal(signal.SIGTERM)
    output, _ = driver.communicate(timeout=180)
    assert driver.returncode in (0, 130), output[-3000:]
    text = (out / "mini" / "smoke" / "tables.md").read_text()
    assert "1 stopped" in text, text[:500]
    assert "trials: 1 stopped" in output
    left = [p for p in Path(tempfile.gettempdir()).glob("hkmr-trial-*")
            if p.name.split("-")[2].isdigit()
            and not Path(f"/proc/{p.name.split('-')[2]}").exists()]
    assert left == []
