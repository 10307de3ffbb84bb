"""Every failure a message (issue 29, findings 5, 7, 8, 9): ``hkmr train`` / ``eval`` refuse
what can be known before training with one line naming the file, key or address, a non-zero
exit and no traceback; a resumed run refuses a changed config; nothing is overwritten."""

import socket
import threading
import time

import pytest
import torch

from hkmr.cli import main

TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64",
        "model.encoder=small_cnn", "train.batch_size=8", "train.steps_per_epoch=2",
        "train.prior_corpus=500", "train.lr=1e-3", "model.prior=none", "train.epochs=1"]


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_train_into_a_file_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    code, err = run(capsys, "train", "--config", "smoke", "--out", str(blocker / "run"), *TINY)
    assert code == 2 and f"cannot write the output folder {blocker / 'run'}" in err
    assert blocker.read_text() == "a file where the output folder should be"


def test_a_cache_folder_that_is_a_file_is_named(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    cache.write_text("")
    monkeypatch.setenv("HKMR_CACHE", str(cache))
    code, err = run(capsys, "train", "--config", "smoke", "--out", str(tmp_path / "o"), *TINY)
    assert code == 2 and f"cannot write the cache folder ($HKMR_CACHE) {cache}" in err


def test_resume_with_a_changed_config_is_refused_naming_the_key(tmp_path, capsys):
    """Finding 5: a resumed ``hkmr train`` with another train.lr, seed or data size."""
    out = tmp_path / "run"
    assert main(["train", "--config", "smoke", "--out", str(out), "--no-eval", *TINY]) == 0
    capsys.readouterr()
    config, checkpoint = (out / "config.yaml").read_text(), (out / "checkpoint.pt").read_bytes()
    for change, key in (("train.lr=0.01", "train.lr: 0.001 in the checkpoint, 0.01 now"),
                        ("seed=3", "seed: 0 in the checkpoint, 3 now"),
                        ("data.synth_train=20", "data.synth_train: 16")):
        argv = [a for a in TINY if a.split("=")[0] != change.split("=")[0]] + [change]
        code, err = run(capsys, "train", "--config", "smoke", "--out", str(out), "--no-eval",
                        *argv)
        assert code == 2 and key in err and "checkpoint.pt" in err, err
    assert (out / "config.yaml").read_text() == config  # nothing rewritten
    assert (out / "checkpoint.pt").read_bytes() == checkpoint
    # more epochs is what a resume is for
    more = [a for a in TINY if not a.startswith("train.epochs")] + ["train.epochs=2"]
    assert main(["train", "--config", "smoke", "--out", str(out), "--no-eval", *more]) == 0


def test_a_keypoint_config_evaluates_the_suites_its_regime_has(tmp_path, capsys):
    """Finding 7: ``smoke_keypoints`` trained, then failed on the segmentation suite of the
    default ``--suites all``; now all means the regime's suites, and naming segmentation is
    refused before training."""
    small = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4",
             "train.epochs=1", "train.prior_corpus=500", "train.steps_per_epoch=2"]
    out = tmp_path / "kp"
    code, err = run(capsys, "train", "--config", "smoke_keypoints", "--out", str(out),
                    "--suites", "segmentation", *small)
    assert code == 2 and "--suites segmentation: the keypoint regime renders no images" in err
    assert not (out / "checkpoint.pt").exists()
    assert main(["train", "--config", "smoke_keypoints", "--out", str(out), "--limit", "4",
                 "--degree-limit", "2", *small]) == 0
    assert (out / "metrics.json").exists()
    # finding 10: hkmr eval reads the keypoint checkpoint with the keypoint test sets
    code, err = run(capsys, "eval", "--checkpoint", str(out), "--out", str(tmp_path / "ev"),
                    "--limit", "4", "--degree-limit", "2")
    assert code == 0 and (tmp_path / "ev" / "metrics.json").exists(), err
    code, err = run(capsys, "demo", "--checkpoint", str(out), "--out", str(tmp_path / "demo"))
    assert code == 2 and "keypoint" in err and "hkmr eval" in err


def _black_hole():
    """A port on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


def test_an_unreachable_tracking_server_is_refused_before_training(tmp_path, capsys):
    """Finding 7: a closed port retried for 256 s after training, then a traceback; a server
    that never answers is given 5 s (hkmr.tracking.REACH_TIMEOUT_S)."""
    pytest.importorskip("mlflow")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    out = tmp_path / "o"
    code, err = run(capsys, "train", "--config", "smoke", "--out", str(out),
                    "--tracking", f"mlflow:http://127.0.0.1:{port}", *TINY)
    assert code == 2 and f"the MLflow server http://127.0.0.1:{port} did not answer" in err
    assert not (out / "checkpoint.pt").exists()
    hole = _black_hole()
    try:
        start = time.monotonic()
        code, err = run(capsys, "train", "--config", "smoke", "--out", str(out), "--tracking",
                        f"mlflow:http://127.0.0.1:{hole.getsockname()[1]}", *TINY)
        assert code == 2 and "did not answer within 5 s" in err
        assert time.monotonic() - start < 30 and not (out / "checkpoint.pt").exists()
    finally:
        hole.close()


def test_silent_acceptances_are_errors(tmp_path, capsys):
    """Finding 9: a key given twice, ``eval --limit -5``."""
    code, err = run(capsys, "train", "--config", "smoke", "--out", str(tmp_path / "o"),
                    "train.lr=0.1", *TINY)
    assert code == 2 and "override train.lr is given twice" in err
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--checkpoint", str(tmp_path), "--limit", "-5"])
    assert exit_.value.code == 2
    assert "--limit: must be >= 0" in capsys.readouterr().err


def test_a_diverging_training_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    """Finding 8: a NonFiniteLossError was a traceback."""
    from hkmr.model.priors import PoseVAE

    vae = PoseVAE()
    with torch.no_grad():
        vae.encoder[0].weight.fill_(float("nan"))
    vae.save(tmp_path / "nan_vae.pt")
    argv = ["train", "--config", "smoke", "--out", str(tmp_path / "o"), "--no-eval",
            *[a for a in TINY if a != "model.prior=none"], "model.prior=vae",
            f"model.vae_checkpoint={tmp_path / 'nan_vae.pt'}"]
    code, err = run(capsys, *argv)
    assert code == 1 and "training diverged: " in err and "nan" in err
    from hkmr.train.trainer import NonFiniteLossError

    with pytest.raises(NonFiniteLossError):
        main([*argv, "--debug"])


def test_sigterm_is_handled_as_sigint():
    """SIGTERM does what Ctrl-C does: here (no Ray) a KeyboardInterrupt, one line, exit 130.
    In a process of its own: the handler belongs to a command's main thread (an xdist worker's
    signal handling is not a command's)."""
    import subprocess
    import sys

    code = ("import os, signal, sys, threading, time\n"
            "from hkmr.body import commands as body_commands\n"
            "from hkmr.cli import main\n"
            "def slow(args):\n"
            "    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()\n"
            "    time.sleep(5)\n"
            "body_commands._info = slow\n"
            "sys.exit(main(['body', 'info']))\n")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130 and "interrupted" in done.stderr, done.stderr[-500:]
    assert "Traceback" not in done.stderr and time.monotonic() - start < 30


@pytest.mark.slow
def test_every_shipped_config_trains_at_smoke_size_or_refuses_before_training(tmp_path,
                                                                              capsys):
    """Acceptance of issue 29: ``hkmr train --config NAME`` exits 0 for every shipped config
    at a smoke size, or refuses before its first step (paper's ImageNet weights without a
    network) with one line and no checkpoint."""
    from hkmr.config import CONFIGS_DIR

    small = ["data.synth_train=8", "data.synth_val=4", "data.synth_test=4",
             "data.synth_size=64", "train.epochs=1", "train.steps_per_epoch=1",
             "train.batch_size=4", "train.prior_corpus=500", "model.encoder_epochs=1",
             "train.eval_samples=4"]
    outcomes = {}
    for config in sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")):
        out = tmp_path / config
        code, err = run(capsys, "train", "--config", config, "--out", str(out), "--limit", "4",
                        "--degree-limit", "1", *small)
        outcomes[config] = code
        if code == 0:
            assert (out / "metrics.json").exists(), config
        else:
            assert code == 2 and err.count("\n") == 1 and not (out / "checkpoint.pt").exists(), \
                (config, err)
    assert outcomes["smoke"] == outcomes["smoke_frozen"] == outcomes["smoke_keypoints"] == 0
    assert len(outcomes) == 8, outcomes


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs: too small for a checkpoint (needs root to mount; skipped without)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)  # -l: a writer thread may linger


def test_a_full_disk_is_one_line_and_leaves_no_empty_checkpoint(full_disk, capsys):
    """Finding 8: disk full during ``hkmr train`` left 0-byte checkpoint.pt files and a
    traceback; the write is atomic and the message names the condition."""
    out = full_disk / "run"
    code, err = run(capsys, "train", "--config", "smoke", "--out", str(out), *TINY)
    assert code == 2 and "no space left on the device" in err, err
    assert not (out / "checkpoint.pt").exists()
    assert not [p for p in out.rglob("*.pt*") if p.stat().st_size == 0]
