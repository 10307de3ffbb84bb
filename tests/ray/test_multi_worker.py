"""A trial of 2 Ray Train workers (DDP over gloo, CPU) is the training of one process at the
same global batch (hkmr/train/distributed.py): a 2-worker sweep, run by the sweep driver and
its trainable as any sweep, ends with the weights (regressor and discriminator prior), the
per-epoch training losses and validation MPJPE of the plain trainer in one process; so does a
2-worker trial whose worker is killed and which Tune resumes from its checkpoint. Its
epochs.parquet holds metrics reduced over the ranks and validation computed once.

Keypoint regime (its inputs depend on (seed, epoch, sample) only), with the discriminator
prior (its own Adam), half the samples without SMPL ground truth (so the ranks' annotation
counts differ) and the cosine learning-rate schedule with a warm-up."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from faults import FailOnce, attempts
from hkmr.checkpoint import CHECKPOINT, read_checkpoint

OVERRIDES = {"data.synth_train": 32, "data.synth_val": 16, "data.synth_test": 16,
             "data.smpl_fraction": 0.5, "train.batch_size": 16, "train.steps_per_epoch": 3,
             "train.epochs": 3, "model.prior": "discriminator", "train.prior_corpus": 500,
             "train.lr_schedule": "cosine", "train.warmup_steps": 2, "train.threads": 1}
#: float tolerance of the weights: DDP's all-reduce sums the ranks' gradients in another
#: order than one process's backward, so the runs agree to float32 rounding, not bit for bit;
#: Adam divides by sqrt(v), which magnifies rounding where gradients are tiny (measured: up to
#: 2e-5 after 9 steps). 1e-4 is a tenth of one Adam step (train.lr = 1e-3): another batch or
#: an unaveraged gradient moves weights by whole steps
WEIGHT_ATOL, WEIGHT_RTOL = 1e-4, 1e-5
#: and of the metrics (mm; losses relative)
MM_ATOL, LOSS_RTOL = 1e-3, 1e-5


def _experiment(tmp_path):
    spec = {"name": "ddp", "title": "2 workers vs 1",
            "configurations": {"uninterrupted": {}, "resumed": {}},
            "tables": [{"title": "MPJPE (mm)", "columns": ["uninterrupted", "resumed"],
                        "metric": "mpjpe"}],
            "presets": {"smoke_keypoints": {
                "config": "smoke_keypoints", "seeds": 1, "overrides": OVERRIDES,
                "eval_limit": 16, "suites": ["table1"], "cpus_per_trial": 2}}}
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _one_process(path, tmp_path):
    """The reference: the plain trainer in this process, the trial's own config."""
    from conftest import trainer_for
    from tuning.experiment.schema import load_experiment
    from tuning.experiment.trial_spec import TrialSpec

    spec = TrialSpec.of(load_experiment(path), "smoke_keypoints", str(tmp_path), {})
    cfg = spec.resolve({"configuration": "uninterrupted", "seed": 0})
    trainer = trainer_for(cfg, tmp_path / "one_process")
    trainer.fit()
    return trainer


def _final_state(result) -> dict:
    """The trial's last checkpoint: Ray Train's TuneReportCallback reports its path as the
    metric ``checkpoint_path`` (the Tune result has no checkpoint of its own)."""
    path = Path(result.metrics["checkpoint_path"]) / CHECKPOINT
    return read_checkpoint(path, torch.device("cpu"))


def _assert_same_weights(state: dict, module: torch.nn.Module, what: str) -> None:
    reference = module.state_dict()
    assert state.keys() == reference.keys()
    worst = max((state[k].float() - reference[k].float()).abs().max().item() for k in state)
    print(f"{what}: max |2 workers - 1 process| = {worst:.2e}")
    for key, value in state.items():
        torch.testing.assert_close(value, reference[key], atol=WEIGHT_ATOL, rtol=WEIGHT_RTOL,
                                   msg=lambda m, key=key: f"{what} {key}: {m}")


@pytest.fixture
def ray_two_cpus():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_two_workers_train_as_one_process_and_report_reduced_metrics_once(
        tmp_path, ray_two_cpus):
    from tuning.run.driver import run_sweep
    from tuning.run.request import SweepRequest

    path = _experiment(tmp_path)
    markers = tmp_path / "markers"
    grid, out = run_sweep(SweepRequest(
        path, "smoke_keypoints", storage=tmp_path / "store", results_dir=tmp_path / "results",
        workers_per_trial=2, max_concurrent=1,  # one group of 2 x 0.995 CPUs at a time
        callbacks=[FailOnce(2, {"resumed": "kill"}, str(markers))]))
    results = {r.config["configuration"]: r for r in grid}
    assert all(r.error is None for r in results.values())
    reference = _one_process(path, tmp_path)
    steps = OVERRIDES["train.epochs"] * OVERRIDES["train.steps_per_epoch"]
    assert reference.step == steps

    # the same training: weights of the regressor and of the discriminator prior
    for name, result in results.items():
        state = _final_state(result)
        assert state["step"] == steps and state["config"]["train"]["batch_size"] == 16
        _assert_same_weights(state["model"], reference.module, f"{name} regressor")
        _assert_same_weights(state["prior"]["module"], reference.prior.module,
                             f"{name} discriminator")
        assert result.metrics["val_mpjpe"] == pytest.approx(
            reference.history[-1]["val_mpjpe"], abs=MM_ATOL)
    # the resumed trial was killed after epoch 2 and continued from a checkpoint
    (log,) = [events for trial, events in attempts(markers).items()
              if trial == results["resumed"].metrics["trial_id"]]
    starts = [i for i, e in enumerate(log) if e["event"] == "start"]
    assert len(starts) == 2, log
    assert log[starts[1] + 1]["epoch"] >= 2, "the second attempt resumed, not restarted"

    # epochs.parquet: training metrics reduced over the ranks, validation computed once
    epochs = [r for r in pq.read_table(out / "epochs.parquet").to_pylist()
              if r["configuration"] == "uninterrupted"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    for row, ref in zip(epochs, reference.history):
        assert row["train_workers"] == 2 and ref["train_workers"] == 1
        assert row["val_evaluations"] == 1, "validation ran on one rank only"
        for key in ("train_loss", "train_loss_3d", "train_loss_smpl_pose",
                    "train_loss_discriminator"):
            assert row[key] == pytest.approx(ref[key], rel=LOSS_RTOL), key
        assert row["val_mpjpe"] == pytest.approx(ref["val_mpjpe"], abs=MM_ATOL)
        # the trial's throughput: both ranks' images of the epoch per second
        images = OVERRIDES["train.steps_per_epoch"] * OVERRIDES["train.batch_size"]
        assert row["images_per_second"] == pytest.approx(images / row["train_seconds"])
    # the test suites ran once (rank 0) and the two trials agree, per image too (the final
    # checkpoint's per-image errors reach images.parquet)
    trials = {r["configuration"]: r for r in pq.read_table(out / "trials.parquet").to_pylist()}
    assert trials["resumed"]["P1_standard_mpjpe"] == pytest.approx(
        trials["uninterrupted"]["P1_standard_mpjpe"], abs=MM_ATOL)
    images = pq.read_table(out / "images.parquet").to_pylist()
    per_image = {name: sorted((r["image"], r["mpjpe"]) for r in images
                              if r["configuration"] == name and r["protocol"] == "P1"
                              and r["occlusion"] == "standard")
                 for name in ("uninterrupted", "resumed")}
    assert len(per_image["uninterrupted"]) == len(per_image["resumed"]) == 16  # eval_limit
    for (i, a), (j, b) in zip(per_image["uninterrupted"], per_image["resumed"]):
        assert i == j and a == pytest.approx(b, abs=MM_ATOL)
