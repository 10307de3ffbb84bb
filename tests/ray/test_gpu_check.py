"""The one-command GPU check (benchmarks/gpu_check.py) in its CPU dry run, so its code keeps
working where no GPU is lent: every section runs and lands in the JSON summary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu_writes_every_figure(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    latency = summary["regressor_ms"]
    for name in ("HMR", "HKMR fast", "HKMR reference"):
        assert latency[f"{name} | batch 1 | eager"] > 0
        assert latency[f"{name} | batch 1 | cuda graphs"] == "needs CUDA"
    assert latency["HMR | ratio to HMR | batch 1 | eager"] == 1.0
    assert summary["end_to_end"]["HKMR fast / HMR"] > 0
    epochs = summary["one_epoch"]
    assert set(epochs) == {"amp=False", "amp=True"}
    assert not any(row["amp_active"] for row in epochs.values())  # no AMP on a CPU
    sweep = summary["sweep"]
    assert sweep["errors"] == 0 and set(sweep["trials"]) == {"HKMR"}
    assert all(t["P1_standard_mpjpe"] > 0 for t in sweep["trials"].values())
    assert all(t["train_workers"] == 1 and t["val_evaluations"] == 1
               for t in sweep["trials"].values())
    assert summary["two_gpu_trial"] == {"skipped": "needs 2 CUDA GPUs; --device cpu"}
    switches = summary["speed_switches"]
    assert set(switches) == {"none", "pin_memory", "amp", "channels_last", "compile", "all"}
    assert all(row["images_per_second"] > 0 for row in switches.values())
    assert not switches["all"]["active"]  # a CPU trains eager, whatever the switches say
    packed = summary["trials_per_gpu"]
    assert set(packed) == {"1 per GPU", "2 per GPU"}  # --tiny; 1, 4, 8 on a GPU
    for n, row in ((1, packed["1 per GPU"]), (2, packed["2 per GPU"])):
        assert row["trials"] == n and row["errors"] == 0
        assert row["trials_per_hour_per_gpu"] == pytest.approx(3600 * n / row["wall_seconds"],
                                                               rel=0.01)


def test_gpu_check_refuses_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "no CUDA device here" in done.stderr
