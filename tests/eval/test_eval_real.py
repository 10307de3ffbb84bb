"""``hkmr eval --spin-npz`` (and ``--lsp-npz``) through the CLI on the SPIN-format fixture:
with the H36M regressor (given or found in SPIN's data/ layout) the result says so; without, it is labelled SMPL-joint
based and the message says where to get the file; a regressor of the wrong size fails before
anything is written (given as the config key eval.h36m_regressor)."""

import json

import numpy as np
import pytest
import torch
from spin_fixture import h36m_style_regressor, write_spin_fixture
from test_h36m_eval import SPIN_J14

from hkmr.checkpoint import load_estimator
from hkmr.cli import main
from hkmr.data.datasets import SpinDataset
from hkmr.data.synthetic import ensure_synthetic
from hkmr.eval.predict import predict, predicted_vertices

TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64",
        "model.encoder=small_cnn", "train.batch_size=8", "train.steps_per_epoch=2",
        "train.prior_corpus=500", "model.prior=none", "train.epochs=1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, body_model):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--config", "smoke", *TINY, "--out", str(out), "--suites", "table1",
                 "--limit", "4"]) == 0
    cfg, _, _ = load_estimator(out / "checkpoint.pt", "cpu")
    data = tmp_path_factory.mktemp("spin") / "data"
    (data / "dataset_extras").mkdir(parents=True)
    reg = h36m_style_regressor(body_model)
    npz = write_spin_fixture(ensure_synthetic(cfg.data, progress=False), data, body_model, reg)
    npz.rename(data / "dataset_extras" / "h36m_valid_protocol1.npz")
    np.save(data / "J_regressor_h36m.npy", reg)
    return out, data


def _eval(run, out, *extra):
    ckpt, data = run
    return main(["eval", "--checkpoint", str(ckpt), "--suites", "table1", "--limit", "4",
                 "--spin-npz", str(data / "dataset_extras" / "h36m_valid_protocol1.npz"),
                 "--spin-images", str(data), "--out", str(out), *extra])


def test_eval_finds_the_regressor_in_spins_layout(run, tmp_path):
    npz = run[1] / "dataset_extras" / "h36m_valid_protocol1.npz"  # it carries LSP-style masks
    assert _eval(run, tmp_path, "--lsp-npz", str(npz), "--lsp-images", str(run[1]),
                 "--mpii-npz", str(npz), "--mpii-images", str(run[1])) == 0
    blob = json.loads((tmp_path / "metrics.json").read_text())
    assert blob["meta"]["spin_joints"] == f"h36m_regressor {run[1] / 'J_regressor_h36m.npy'}"
    assert np.isfinite(blob["metrics"]["spin_P2_standard_mpjpe"])
    # P1 (all 4 images): SPIN's 14 joints regressed from the predicted meshes, centred on
    # the regressed pelvis, against S; the joint arithmetic in numpy here
    cfg, model, body = load_estimator(run[0] / "checkpoint.pt", "cpu")
    reg = np.load(run[1] / "J_regressor_h36m.npy").astype(np.float64)
    errors = []
    spin = SpinDataset(npz, run[1], size=cfg.data.synth_size)
    for batch, out in predict(model, spin, torch.device("cpu"), limit=4):
        j17 = np.einsum("jv,bvc->bjc", reg, predicted_vertices(out, body).double().numpy())
        pred = j17[:, SPIN_J14] - j17[:, :1]
        gt = batch["s24"][:, [*range(13), 18], :3].double().numpy()
        errors += list(1000 * np.linalg.norm(pred - gt, axis=-1).mean(-1))
    assert len(errors) == 4 and blob["metrics"]["spin_P1_standard_images"] == 4
    assert blob["metrics"]["spin_P1_standard_mpjpe"] == pytest.approx(np.mean(errors), rel=1e-4)
    summary = (tmp_path / "summary.md").read_text()
    assert "MPJPE (mm; joints: h36m_regressor" in summary
    assert "Table 5 (left) on the SPIN-format LSP set (4 images)" in summary
    assert 0 <= blob["metrics"]["lsp_seg_fb_acc"] <= 100
    assert "Table 4 (right) on the SPIN-format MPII set" in summary
    assert blob["metrics"]["mpii_invisible_joints"] > 0


def test_without_the_regressor_the_result_is_labelled_smpl_joints(run, tmp_path, capsys):
    (run[1] / "J_regressor_h36m.npy").rename(tmp_path / "J_regressor_h36m.npy")
    try:
        assert _eval(run, tmp_path / "out") == 0
    finally:
        (tmp_path / "J_regressor_h36m.npy").rename(run[1] / "J_regressor_h36m.npy")
    assert "NOT comparable with the paper's Table 1" in capsys.readouterr().out
    blob = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert blob["meta"]["spin_joints"].startswith("smpl_joints")


def test_a_regressor_of_the_wrong_size_fails_and_writes_nothing(run, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((17, 100), np.float32))
    assert _eval(run, tmp_path / "out", f"eval.h36m_regressor={tmp_path / 'bad.npy'}") == 2
    assert "bad.npy: H36M regressor has shape (17, 100)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_sweep_trial_evaluates_the_configured_real_sets(tmp_path, body_model):
    """tuning's final_metrics runs eval.* after the suites (an experiment's preset or the
    sweep's overrides set them), without Ray: the function a trial calls."""
    from conftest import trainer_for
    from tuning.experiment.trial_spec import TrialSpec
    from tuning.run.trainable import final_metrics

    from hkmr.config import load_config

    cfg = load_config("smoke", [*TINY])
    npz = write_spin_fixture(ensure_synthetic(cfg.data, progress=False), tmp_path, body_model)
    cfg = load_config("smoke", [*TINY, f"eval.spin_npz={npz}", f"eval.spin_images={tmp_path}",
                                f"eval.mpii_npz={npz}", f"eval.mpii_images={tmp_path}"])
    spec = TrialSpec(experiment="x", experiment_path="x", preset="smoke", storage=str(tmp_path),
                     eval_limit=4, suites=("table1",))
    m, per_image = final_metrics(trainer_for(cfg, tmp_path / "run"), cfg, spec)
    assert per_image and np.isfinite(m["P1_standard_mpjpe"]) and np.isfinite(m["spin_P1_standard_mpjpe"])
    assert m["spin_P1_standard_images"] == 4 and m["mpii_all_joints"] > 0
