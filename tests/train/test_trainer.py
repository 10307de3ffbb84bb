"""The trainer: determinism, exact resume, non-finite losses, learning on the smoke preset."""

import math

import pytest
import torch
from conftest import smoke_run, trainer_for

from hkmr.config import load_config, parse_override
from hkmr.checkpoint import CHECKPOINT
from hkmr.train.trainer import NonFiniteLossError, TrainerHooks

TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64",
        "model.encoder=small_cnn", "train.batch_size=8", "train.steps_per_epoch=3",
        "train.prior_corpus=500", "train.lr=1e-3", "model.prior=discriminator"]


def tiny(*extra):
    return load_config(None, dict(parse_override(t) for t in TINY + list(extra)))


def quiet():
    return TrainerHooks(log=lambda msg: None)


def test_same_seed_gives_the_same_metrics(tmp_path):
    a = trainer_for(tiny("train.epochs=1"), tmp_path / "a", quiet()).fit()
    b = trainer_for(tiny("train.epochs=1"), tmp_path / "b", quiet()).fit()
    c = trainer_for(tiny("train.epochs=1", "seed=1"), tmp_path / "c", quiet()).fit()
    keys = ["train_loss", "val_mpjpe", "val_pa_mpjpe", "train_loss_discriminator"]
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["val_mpjpe"] != c["val_mpjpe"]


def test_resume_after_an_epoch_ends_like_an_uninterrupted_run(tmp_path):
    full = trainer_for(tiny("train.epochs=2"), tmp_path / "full", quiet()).fit()
    first = trainer_for(tiny("train.epochs=1"), tmp_path / "split", quiet())
    first.fit()
    assert (tmp_path / "split" / CHECKPOINT).exists()
    reports = []
    hooks = TrainerHooks(log=lambda msg: None, on_epoch=lambda m, ckpt: reports.append(m))
    resumed = trainer_for(tiny("train.epochs=2"), tmp_path / "split", hooks)
    assert resumed.epoch == 1
    end = resumed.fit()
    assert [r["epoch"] for r in reports] == [2], "only the missing epoch runs"
    for key in ("train_loss", "val_mpjpe", "val_pa_mpjpe", "step", "images_seen"):
        assert end[key] == full[key], key


def test_report_hook_gets_metrics_and_checkpoint(tmp_path):
    seen = []
    hooks = TrainerHooks(log=lambda msg: None, on_epoch=lambda m, ckpt: seen.append((m, ckpt)))
    trainer_for(tiny("train.epochs=2", "model.prior=none"), tmp_path, hooks).fit()
    assert [m["epoch"] for m, _ in seen] == [1, 2]
    assert all(ckpt == tmp_path / CHECKPOINT for _, ckpt in seen)
    assert all(math.isfinite(m["val_mpjpe"]) for m, _ in seen)
    assert not list(tmp_path.glob(".*tmp*")), "checkpoints are renamed into place"


def test_non_finite_loss_names_the_step_and_term(tmp_path):
    trainer = trainer_for(tiny("train.epochs=1", "model.prior=none"), tmp_path, quiet())
    with torch.no_grad():
        trainer.module.regressor.init_cam[1] = float("nan")  # tx: only the 2D term sees it
    with pytest.raises(NonFiniteLossError, match=r"epoch 0 step 0: term '2d' = nan"):
        trainer.fit()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    trainer_for(tiny("train.epochs=1", "model.prior=none"), tmp_path, quiet()).fit()
    with pytest.raises(ValueError, match="another model config"):
        trainer_for(tiny("train.epochs=2", "model.prior=none", "model.regressor=hmr"), tmp_path,
                quiet())


def test_a_checkpoint_older_than_a_config_key_still_resumes(tmp_path):
    """Keys added to the config after a checkpoint was written (e.g. the CMR baseline's) are
    not compared on resume, whatever a preset sets them to; stored keys still are."""
    trainer_for(tiny("train.epochs=1", "model.prior=none"), tmp_path, quiet()).fit()
    blob = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    for key in ("cmr_channels", "cmr_downsample"):
        del blob["config"]["model"][key]
    torch.save(blob, tmp_path / CHECKPOINT)
    resumed = trainer_for(tiny("train.epochs=2", "model.prior=none", "model.cmr_channels=64"),
                      tmp_path, quiet())
    assert resumed.epoch == 1
    with pytest.raises(ValueError, match="another model config"):
        trainer_for(tiny("train.epochs=2", "model.prior=none", "model.embed_dim=64"), tmp_path,
                quiet())


@pytest.mark.slow
def test_smoke_preset_learns(tmp_path):
    """Two short epochs of the smoke preset on CPU bring MPJPE well below the untrained
    model's on the held-out validation split."""
    before, after, _ = smoke_run(tmp_path, "train.epochs=2")
    assert after["val_mpjpe"] < 0.85 * before["val_mpjpe"]


FAST = ["model.prior=none", "train.steps_per_epoch=1", "train.batch_size=4",
        "train.eval_samples=4"]


class Interrupted(Exception):
    pass


def _interrupt_after_first_epoch(metrics, checkpoint):
    if metrics["epoch"] == 1:  # after the checkpoint is written, as a killed run would be
        raise Interrupted


def test_cosine_schedule_resumes_like_an_uninterrupted_run(tmp_path):
    """train.lr_schedule=cosine: the scheduler's state travels in the checkpoint, so 1 epoch +
    a resume equals 2 uninterrupted epochs (metrics and weights), and the lr anneals to 0."""
    cfg = tiny("train.epochs=2", "train.lr_schedule=cosine", *FAST)
    whole = trainer_for(cfg, tmp_path / "full", quiet())
    full = whole.fit()
    hooks = TrainerHooks(log=lambda msg: None, on_epoch=_interrupt_after_first_epoch)
    with pytest.raises(Interrupted):
        trainer_for(cfg, tmp_path / "split", hooks).fit()
    resumed = trainer_for(cfg, tmp_path / "split", quiet())
    assert resumed.epoch == 1 and resumed.scheduler.last_epoch == resumed.step == 1
    end = resumed.fit()
    for key in ("train_loss", "train_lr", "val_mpjpe", "val_pa_mpjpe", "step"):
        assert end[key] == full[key], key
    for name, value in whole.module.state_dict().items():
        assert torch.equal(value, resumed.module.state_dict()[name]), name
    lrs = [m["train_lr"] for m in whole.history]
    assert lrs == pytest.approx([1e-3, 1e-3 / 2]), lrs  # (1 + cos(π s / 2)) / 2 at steps 0, 1
    assert whole.optimizer.param_groups[0]["lr"] == 0.0, "annealed to 0 after the last step"


def test_mlp_chain_layer_trains_and_its_checkpoint_round_trips(tmp_path):
    cfg = tiny("train.epochs=1", *FAST, "model.chain_layer=mlp", "model.chain_hidden=16")
    first = trainer_for(cfg, tmp_path, quiet())
    metrics = first.fit()
    assert math.isfinite(metrics["train_loss"])
    assert metrics["train_lr"] == 1e-3, "the default schedule is constant"
    again = trainer_for(cfg, tmp_path, quiet())
    assert again.epoch == 1
    state = again.module.state_dict()
    assert any("fwd_mlp" in k for k in state)
    for name, value in first.module.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert again.evaluate()["val_mpjpe"] == metrics["val_mpjpe"]
    with pytest.raises(ValueError, match="another model config"):
        trainer_for(tiny("train.epochs=1", *FAST, "model.chain_hidden=16"), tmp_path, quiet())
