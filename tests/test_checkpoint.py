"""The checkpoint format (hkmr/checkpoint.py): what a run saves loads back as the same model,
checkpoints written before the format had a name still load and resume, bad files are refused
with their name, and the encoder comes out of either kind of file."""

import numpy as np
import pytest
import torch
from conftest import trainer_for

from hkmr.checkpoint import (CHECKPOINT, FORMAT, FORMAT_VERSION, EncoderWeights, load_encoder,
                             load_estimator, read_checkpoint, save_encoder)
from hkmr.config import load_config
from hkmr.digest import state_digest
from hkmr.train.trainer import TrainerHooks

TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64",
        "model.encoder=small_cnn", "train.batch_size=8", "train.steps_per_epoch=3",
        "train.prior_corpus=500", "train.lr=1e-3", "model.prior=none"]
CPU = torch.device("cpu")
#: the payload hkmr wrote before checkpoints carried a format name (revision 3815d66)
LEGACY_KEYS = {"model", "optimizer", "scaler", "prior", "epoch", "step", "images_seen",
               "history", "config", "rng"}


def quiet():
    return TrainerHooks(log=lambda msg: None)


def test_load_checkpoint_restores_the_trained_model(tmp_path):
    cfg = load_config(None, TINY + ["train.epochs=1"])
    trainer = trainer_for(cfg, tmp_path, quiet())
    trainer.fit()
    blob = read_checkpoint(tmp_path)
    assert (blob["format"], blob["format_version"]) == (FORMAT, FORMAT_VERSION)
    assert set(blob) == LEGACY_KEYS | {"format", "format_version", "scheduler"}
    loaded_cfg, model, body = load_estimator(tmp_path, CPU)  # the folder works too
    assert loaded_cfg == cfg and not model.training
    img = torch.randn(2, 3, 64, 64)
    trainer.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(img)[-1].pose, trainer.module(img)[-1].pose)
    assert body.num_vertices == 6890


def test_a_checkpoint_in_the_format_before_it_had_a_name_loads_and_resumes(tmp_path):
    """The payload of revision 3815d66 (no format keys), written here by the test."""
    cfg = load_config(None, TINY + ["train.epochs=1"])
    trainer = trainer_for(cfg, tmp_path / "legacy", quiet())
    trainer.fit()
    # what Trainer.save wrote then: no format keys, no lr scheduler
    legacy = {k: v for k, v in trainer.state().items() if k != "scheduler"}
    assert set(legacy) == LEGACY_KEYS
    torch.save(legacy, tmp_path / "legacy" / CHECKPOINT)
    _, model, _ = load_estimator(tmp_path / "legacy", CPU)
    img = torch.randn(2, 3, 64, 64)
    trainer.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(img)[-1].pose, trainer.module(img)[-1].pose)
    encoder = load_encoder(tmp_path / "legacy")
    assert encoder.hash == state_digest(trainer.module.encoder.state_dict())
    assert encoder.name == "small_cnn" and encoder.image_size == 64
    more = load_config(None, TINY + ["train.epochs=2"])
    resumed = trainer_for(more, tmp_path / "legacy", quiet())
    assert (resumed.epoch, resumed.step) == (1, 3)
    assert resumed.fit()["epoch"] == 2


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt: no such checkpoint"):
        load_estimator(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: cannot read checkpoint"):
        load_estimator(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": np.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt: not an hkmr checkpoint"):
        load_estimator(foreign)
    future = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION + 1, "model": {},
                "config": {}}, future)
    with pytest.raises(ValueError, match=f"future.pt: checkpoint format {FORMAT} v2"):
        read_checkpoint(future)


def test_an_encoder_file_round_trips_with_its_digest(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    encoder = EncoderWeights("small_cnn", state, 64, "somewhere/checkpoint.pt")
    save_encoder(tmp_path / "encoder.pt", encoder)
    back = load_encoder(tmp_path)  # a folder holding encoder.pt
    assert back.hash == encoder.hash == state_digest(state)
    assert (back.name, back.image_size, back.source) == ("small_cnn", 64,
                                                         "somewhere/checkpoint.pt")
    assert all(torch.equal(back.state[k], v) for k, v in state.items())


class _RunsCode:
    """What a hostile file holds: unpickling it calls ``os.system``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_whose_pickle_runs_code_is_refused_before_it_runs(tmp_path, capsys):
    """Finding 6: ``hkmr eval --checkpoint evil.pt`` names the file and the callable, exits 2,
    and the payload never runs (its marker file does not appear)."""
    from hkmr.checkpoint import UnsafeFileError
    from hkmr.cli import main

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "model": _RunsCode(marker), "config": {}}, evil)
    with pytest.raises(UnsafeFileError, match=r"evil.pt: refused to load .*posix.system"):
        read_checkpoint(evil)
    with pytest.raises(UnsafeFileError, match="evil.pt"):
        load_encoder(evil)
    assert main(["eval", "--checkpoint", str(evil), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "evil.pt: refused to load this checkpoint" in err and "posix.system" in err
    assert "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "o").exists()
