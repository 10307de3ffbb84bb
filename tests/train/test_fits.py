"""The fits store and the in-the-loop training step (hkmr/train/fits.py, loop.py, trainer)."""

import math

import numpy as np
import pytest
import torch

from conftest import trainer_for

from hkmr.body.kinematics import JointKinematics
from hkmr.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hkmr.config import load_config
from hkmr.data.augment import AugParams, transform_targets
from hkmr.data.sampler import sample_poses
from hkmr.train.fits import FITS, FitsStore, augment_pose, unaugment_pose
from hkmr.train.loop import InTheLoop, hide_ground_truth, kept_ground_truth
from hkmr.train.smplify import project, weak_to_translation
from hkmr.checkpoint import CHECKPOINT
from hkmr.train.trainer import TrainerHooks

N = 6


def zeros(n=N):
    return torch.zeros(n)


def random_fits(seed, n=N):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 72, generator=gen) * 0.3, torch.randn(n, 10, generator=gen)


def test_store_keeps_the_better_of_two_fits_per_sample():
    store = FitsStore(N, torch.zeros(72))
    keys = torch.arange(N)
    (pa, ba), (pb, bb) = random_fits(0), random_fits(1)
    la = torch.full((N,), 50.0)
    lb = torch.tensor([10.0, 90.0, 49.0, 51.0, 50.0, 1.0])
    assert store.update(keys, pa, ba, la, zeros(), zeros()).all(), "anything beats no fit"
    replaced = store.update(keys, pb, bb, lb, zeros(), zeros())
    b_wins = lb < la
    assert replaced.tolist() == b_wins.tolist()
    expect_pose = torch.where(b_wins[:, None], pb, pa)
    assert torch.allclose(store.pose, expect_pose, atol=1e-6)
    assert torch.equal(store.betas, torch.where(b_wins[:, None], bb, ba))
    assert torch.equal(store.loss, torch.minimum(la, lb))


def test_ground_truth_always_wins():
    store = FitsStore(N, torch.zeros(72))
    keys = torch.arange(N)
    gt_pose, gt_betas = random_fits(2)
    has_smpl = torch.tensor([1.0, 0, 1, 0, 1, 0])
    fit_pose, fit_betas = random_fits(3)
    store.update(keys, torch.where(has_smpl[:, None] > 0, gt_pose, fit_pose),
                 torch.where(has_smpl[:, None] > 0, gt_betas, fit_betas),
                 torch.full((N,), 30.0), zeros(), zeros(), has_smpl=has_smpl)
    # a much better fit, even judged against a re-scored (finite) stored loss, replaces only
    # the samples without ground truth
    better_pose, better_betas = random_fits(4)
    replaced = store.update(keys, better_pose, better_betas, torch.full((N,), 0.5), zeros(),
                            zeros(), against=torch.full((N,), 30.0))
    gt = has_smpl > 0
    assert replaced.tolist() == (~gt).tolist()
    assert torch.allclose(store.pose[gt], gt_pose[gt], atol=1e-6)
    assert torch.equal(store.betas[gt], gt_betas[gt])
    assert torch.equal(store.loss[gt], torch.zeros(3))


def test_store_survives_save_and_load(tmp_path):
    store = FitsStore(N, torch.zeros(72))
    pose, betas = random_fits(5)
    store.update(torch.tensor([0, 2, 3]), pose[:3], betas[:3], torch.tensor([1.0, 2, 3]),
                 zeros(3), zeros(3))
    store.save(tmp_path / FITS, step=17)
    other = FitsStore(N, torch.ones(72))
    assert other.load(tmp_path / FITS) == 17
    for key, value in store.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    assert math.isinf(other.loss[1]), "samples without a fit stay unfitted"
    with pytest.raises(ValueError, match="fits for 6 samples, but the training set has 7"):
        FitsStore(N + 1, torch.zeros(72)).load(tmp_path / FITS)


@pytest.fixture(scope="module")
def scene(body_model):
    """An un-augmented sample in the dataset's format, with the body model's joints."""
    kin = JointKinematics(body_model)
    pose = torch.from_numpy(sample_poses(1, seed=77)[0])
    turn = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0]))
    pose[:, :3] = matrix_to_axis_angle(turn @ axis_angle_to_matrix(pose[:, :3]))
    betas = torch.randn(1, 10, generator=torch.Generator().manual_seed(0))
    transl = weak_to_translation(torch.tensor([[0.9, 0.05, -0.02]]))
    joints = kin(pose, betas) + transl[:, None]
    kp = project(joints - transl[:, None], transl)[0]
    sample = {"keypoints": np.concatenate([kp.numpy(), np.ones((24, 1))], 1),
              "visible": np.ones(24), "joints3d": np.concatenate([joints[0].numpy(),
                                                                  np.ones((24, 1))], 1),
              "pose": pose[0].numpy(), "betas": betas[0].numpy(), "has_smpl": 1.0}
    return kin, pose, betas, sample


def rel(joints):
    return joints - joints[:, :1]


@pytest.mark.parametrize("flip,rot", [(True, 0.0), (False, 35.0), (True, -50.0)])
def test_augmented_fit_is_stored_un_augmented(scene, flip, rot):
    """A fit of an augmented sample (here: its augmented ground truth) is stored so that its
    joints are the un-augmented sample's, and read back in any other augmentation's frame
    it matches what the data augmentation makes of the sample there."""
    kin, pose, betas, sample = scene
    aug = transform_targets(sample, AugParams(flip=flip, rot_deg=rot))
    aug_pose = torch.as_tensor(aug["pose"])[None]
    f, r = torch.tensor([float(flip)]), torch.tensor([rot])
    assert aug["flip"] == float(flip) and aug["rot_deg"] == rot
    # the store's augmentation is the data's: same pose, and its joints are the sample's
    assert torch.allclose(augment_pose(pose, f, r), aug_pose, atol=1e-5)
    aug_j3d = torch.as_tensor(aug["joints3d"][:, :3])[None]
    assert torch.allclose(rel(kin(aug_pose, betas)), rel(aug_j3d), atol=1e-5)
    # round trip through the store, compared on joints (axis-angle can differ at ±π)
    store = FitsStore(1, torch.zeros(72))
    store.update(torch.tensor([0]), aug_pose, betas, torch.tensor([1.0]), f, r)
    flat, _, _ = store.read(torch.tensor([0]), zeros(1), zeros(1))
    assert torch.allclose(rel(kin(flat, betas)), rel(kin(pose, betas)), atol=1e-5)
    assert torch.allclose(unaugment_pose(aug_pose, f, r), flat, atol=1e-5)
    other = transform_targets(sample, AugParams(flip=not flip, rot_deg=-20.0))
    read, _, _ = store.read(torch.tensor([0]), torch.tensor([float(not flip)]),
                            torch.tensor([-20.0]))
    assert torch.allclose(rel(kin(read, betas)),
                          rel(torch.as_tensor(other["joints3d"][:, :3])[None]), atol=1e-5)


def test_hidden_ground_truth_is_a_fixed_subset():
    kept = kept_ground_truth(200, 0.25)
    assert int(kept.sum()) == 50 and torch.equal(kept, kept_ground_truth(200, 0.25))
    assert kept_ground_truth(200, 1.0) is None
    batch = {"has_smpl": torch.ones(4), "has_joints3d": torch.ones(4)}
    keys = torch.tensor([int(kept.nonzero()[0]), int((~kept).nonzero()[0]), 0, 1])
    out = hide_ground_truth(batch, kept, keys)
    assert out["has_smpl"][:2].tolist() == [1.0, 0.0]
    assert torch.equal(out["has_smpl"], out["has_joints3d"])
    assert torch.equal(batch["has_smpl"], torch.ones(4)), "the input batch is left alone"


def test_in_the_loop_refuses_several_workers():
    cfg = load_config(None, ["train.in_the_loop=true"])
    with pytest.raises(ValueError, match="one process only"):
        InTheLoop(cfg, None, 10, torch.zeros(72), torch.device("cpu"), world_size=2)


TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64",
        "model.encoder=small_cnn", "train.batch_size=8", "train.steps_per_epoch=3",
        "train.prior_corpus=500", "train.lr=1e-3", "model.prior=none",
        "train.in_the_loop=true", "train.smplify_iters=10", "data.smpl_fraction=0.5"]


def test_in_the_loop_training_resumes_with_its_fits(tmp_path):
    quiet = TrainerHooks(log=lambda msg: None)
    full = trainer_for(load_config(None, TINY + ["train.epochs=2"]), tmp_path / "full", quiet)
    end = full.fit()
    assert (tmp_path / "full" / FITS).exists() and (tmp_path / "full" / CHECKPOINT).exists()
    assert 0 < end["train_fit_improved"] <= 1 and "train_fit_valid" in end
    fitted = ~torch.isinf(full.loop.store.loss)
    hidden = ~kept_ground_truth(full.sample_count, 0.5)
    assert fitted.any() and (fitted & hidden).any()
    assert (full.loop.store.loss[fitted & ~hidden] == 0).all(), "ground truth stored as such"
    first = trainer_for(load_config(None, TINY + ["train.epochs=1"]), tmp_path / "split", quiet)
    first.fit()
    saved = first.loop.store.state_dict()
    resumed = trainer_for(load_config(None, TINY + ["train.epochs=2"]), tmp_path / "split", quiet)
    for key, value in resumed.loop.store.state_dict().items():
        assert torch.equal(value, saved[key]), f"resumed store {key}"
    last = resumed.fit()
    for key in ("train_loss", "val_mpjpe", "train_fit_loss"):
        assert last[key] == end[key], key
    for key, value in resumed.loop.store.state_dict().items():
        assert torch.equal(value, full.loop.store.state_dict()[key]), f"final store {key}"


@pytest.mark.slow
def test_smoke_preset_trains_in_the_loop(tmp_path):
    """An epoch of 25 steps of batch 16 of the smoke preset on CPU with SMPLify in the loop
    (half the samples 2D-only, SPIN's 100 iterations per stage): it completes, learns, and
    leaves the fits beside the checkpoint. (Batch 16, not the preset's 32: the fits are most
    of the suite's longest test.)"""
    cfg = load_config("smoke", ["train.in_the_loop=true", "data.smpl_fraction=0.5",
                                "train.epochs=1", "train.steps_per_epoch=25",
                                "train.batch_size=16",
                                "model.prior=none"])
    trainer = trainer_for(cfg, tmp_path, TrainerHooks(log=lambda msg: None))
    before = trainer.evaluate()
    end = trainer.fit()
    print(f"\nsmoke in the loop: val MPJPE {before['val_mpjpe']:.1f} -> {end['val_mpjpe']:.1f} "
          f"mm; {end['images_per_second']:.1f} images/s; valid fits {end['train_fit_valid']:.2f}, "
          f"fit loss {end['train_fit_loss']:.1f}")
    assert (tmp_path / FITS).exists() and (tmp_path / CHECKPOINT).exists()
    assert end["val_mpjpe"] < before["val_mpjpe"]
    loss = trainer.loop.store.loss
    hidden = ~kept_ground_truth(len(loss), 0.5)
    seen = 25 * cfg.train.batch_size / len(loss)  # share of the samples the epoch visited
    fitted = (~torch.isinf(loss[hidden])).float().mean()
    assert 0.8 * seen < fitted < 1.2 * seen, "the hidden samples visited were fitted"
    assert end["train_fit_valid"] > 0


def test_a_run_without_the_loop_can_continue_in_the_loop_but_lost_fits_are_an_error(tmp_path):
    quiet = TrainerHooks(log=lambda msg: None)
    no_loop = [o for o in TINY if not o.startswith("train.in_the_loop")]
    trainer_for(load_config(None, no_loop + ["train.epochs=1"]), tmp_path, quiet).fit()
    resumed = trainer_for(load_config(None, TINY + ["train.epochs=2"]), tmp_path, quiet)
    assert resumed.epoch == 1 and torch.isinf(resumed.loop.store.loss).all()
    resumed.fit()
    (tmp_path / FITS).unlink()
    with pytest.raises(FileNotFoundError, match="fits store is missing"):
        trainer_for(load_config(None, TINY + ["train.epochs=3"]), tmp_path, quiet)
