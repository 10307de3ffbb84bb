"""The data-parallel arithmetic of hkmr/train/distributed.py without processes: two halves of
a batch, each dividing by the global annotation counts over 2 (what a DDP rank does), give the
one-process loss and, averaged as DDP averages, its gradient. The Ray Train run itself:
tests/ray/test_multi_worker.py."""

import pytest
import torch
from conftest import trainer_for

from hkmr.config import load_config
from hkmr.model.estimator import encoder_input
from hkmr.train.distributed import Ranks, rank_batch_size
from hkmr.train.loop import hide_ground_truth
from hkmr.train.losses import annotation_counts, total_loss

SMALL = ["data.synth_train=32", "data.synth_val=8", "data.synth_test=8", "train.batch_size=16",
         "data.smpl_fraction=0.5", "model.prior=discriminator", "train.prior_corpus=500"]


def _loss_and_grads(trainer, batch, denominators=None):
    trainer.model.zero_grad(set_to_none=True)
    outputs = trainer.model(encoder_input(batch))
    loss, _ = total_loss(outputs, batch, trainer.joints_of, trainer.cfg.loss,
                         trainer.prior.module, denominators)
    loss.backward()
    grads = [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]
    return loss.detach(), grads, annotation_counts(outputs, batch, trainer.cfg.loss)


def test_halves_with_global_denominators_give_the_one_batch_loss_and_gradient(tmp_path):
    trainer = trainer_for(load_config("smoke_keypoints", SMALL), tmp_path)
    batch = next(iter(trainer.train_loader))
    batch = hide_ground_truth(batch, trainer.gt_kept, trainer.sample_key(batch))
    full_loss, full_grads, _ = _loss_and_grads(trainer, batch)
    halves = [{k: v[r::2] if torch.is_tensor(v) else v for k, v in batch.items()}
              for r in (0, 1)]  # the DistributedSampler's interleaving
    counts = [torch.stack(list(_loss_and_grads(trainer, h)[2].values())) for h in halves]
    assert not torch.equal(counts[0], counts[1]), "the halves must differ in annotations"
    global_den = (counts[0] + counts[1]).clamp(min=1) / 2
    parts = [_loss_and_grads(trainer, h, lambda c: global_den) for h in halves]
    assert (parts[0][0] + parts[1][0]) / 2 == pytest.approx(full_loss.item(), rel=1e-6)
    for g_full, g0, g1 in zip(full_grads, parts[0][1], parts[1][1]):
        torch.testing.assert_close((g0 + g1) / 2, g_full, atol=1e-6, rtol=1e-4)
    # each half's own means (no global denominators) is not the one-batch loss
    own = [_loss_and_grads(trainer, h)[0] for h in halves]
    assert abs((own[0] + own[1]).item() / 2 - full_loss.item()) > 1e-4


def test_one_process_ranks_change_nothing():
    ranks = Ranks()
    x = torch.tensor([0.0, 3.0])
    assert ranks.sum(x) is x and ranks.share(x) is x
    assert torch.equal(ranks.loss_denominators(x), torch.tensor([1.0, 3.0]))
    assert ranks.from_main(lambda: 7) == 7
    assert ranks.reduce_epoch({"loss": 6.0}, 3, 2.0) == ({"loss": 2.0}, 3, 2.0)


def test_global_batch_must_divide_among_workers():
    assert rank_batch_size(32, 2) == 16
    with pytest.raises(ValueError, match="train.batch_size=30 .* 4 workers"):
        rank_batch_size(30, 4)
    with pytest.raises(ValueError, match="initialised torch.distributed"):
        Ranks(0, 2)
