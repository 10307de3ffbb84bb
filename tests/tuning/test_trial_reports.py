"""What a trial reports to Tune (tuning.run.trainable), with the real trainer and suites on a tiny
config and a recording ``report`` in place of ``tune.report`` (no Ray)."""

import pyarrow.parquet as pq
import pytest

from hkmr.checkpoint import CHECKPOINT
from hkmr.config import load_config
from hkmr.train.trainer import TrainerHooks
from tuning.run import trainable
from tuning.analysis.image_errors import TRIAL_FILE
from tuning.experiment.trial_spec import TrialSpec

TINY = ["data.synth_train=8", "data.synth_val=4", "data.synth_test=4", "data.synth_size=64",
        "model.encoder=small_cnn", "model.prior=none", "train.batch_size=4",
        "train.steps_per_epoch=2", "train.epochs=2", "model.embed_dim=16",
        "model.head_hidden=16"]


def test_a_finished_trial_reports_its_last_epoch_and_final_metrics_at_once(tmp_path,
                                                                           monkeypatch):
    """An early-stopping scheduler (ASHA) decides on each report; were the last epoch
    reported before the test evaluation, it could stop a trial that finished training and
    the trial would be recorded as 'stopped'. Every report that ends training is final."""
    monkeypatch.setattr(trainable, "_node_id", lambda: "node")
    spec = TrialSpec(experiment="mini", experiment_path=str(tmp_path / "mini.yaml"),
                     preset="smoke", storage=str(tmp_path), eval_limit=4, suites=("table1",))
    reports = []

    def report(metrics, directory):
        images = directory / TRIAL_FILE if directory is not None else None
        reports.append((metrics, directory is not None and (directory / CHECKPOINT).exists(),
                        pq.read_table(images).to_pylist() if images and images.exists()
                        else None))

    cfg = load_config(None, TINY)
    trainable._train_and_report(cfg, spec, TrainerHooks(log=lambda msg: None), report, None,
                                "t0", True)
    assert [m["epoch"] for m, _, _ in reports] == [1, 2]
    last, has_checkpoint, images = reports[-1]
    assert last.get("final") == 1 and "P1_standard_mpjpe" in last and "val_mpjpe" in last
    assert has_checkpoint, "the final report carries the last epoch's checkpoint"
    assert all(not m.get("final") for m, _, _ in reports[:-1])
    # ... and its per-image errors, whose means are the final metrics
    p1 = [r["mpjpe"] for r in images if (r["protocol"], r["occlusion"]) == ("P1", "standard")]
    assert len(p1) == 4 and sum(p1) / 4 == pytest.approx(last["P1_standard_mpjpe"], rel=1e-5)
    from tuning.analysis.aggregate import _status

    class Result:
        error = None

    assert _status(Result(), last) == "ok"
