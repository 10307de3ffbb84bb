"""Adam's implementations (``train.adam``, hkmr/train/optim.py): foreach trains exactly as the
per-tensor loop, fused is selectable, and a resumed run keeps its config's implementation."""

from __future__ import annotations

import torch
from conftest import trainer_for

from hkmr.config import load_config, parse_override
from hkmr.train.trainer import TrainerHooks

TINY = ["data.synth_train=48", "data.synth_val=8", "data.synth_test=16", "train.epochs=1",
        "train.batch_size=16", "model.embed_dim=32", "model.head_hidden=32",
        "model.prior=none", "train.threads=1"]


def _fit(tmp_path, name, *extra):
    cfg = load_config("smoke_keypoints", dict(parse_override(t) for t in TINY + list(extra)))
    trainer = trainer_for(cfg, tmp_path / name,
                          TrainerHooks(log=lambda m: None))
    return trainer, trainer.fit()


def test_foreach_adam_trains_exactly_as_the_loop_and_resumes_with_its_flags(tmp_path):
    loop, a = _fit(tmp_path, "loop", "train.adam=single")
    multi, b = _fit(tmp_path, "multi")  # the default: foreach
    assert multi.optimizer.param_groups[0]["foreach"] is True
    assert loop.optimizer.param_groups[0]["foreach"] is False
    for key in ("train_loss", "val_mpjpe", "val_pa_mpjpe"):
        assert a[key] == b[key], key
    for p, q in zip(loop.module.parameters(), multi.module.parameters()):
        assert torch.equal(p, q)
    # a checkpoint of the loop, resumed under foreach: the flags are this config's
    resumed, _ = _fit(tmp_path, "loop", "train.adam=foreach", "train.epochs=2")
    assert resumed.step == 2 * loop.step
    assert all(g["foreach"] is True and g["fused"] is False
               for g in resumed.optimizer.param_groups)
    fused, c = _fit(tmp_path, "fused", "train.adam=fused")
    assert fused.optimizer.param_groups[0]["fused"] is True and c["val_mpjpe"] > 0
