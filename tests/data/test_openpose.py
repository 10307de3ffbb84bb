"""SPIN's OpenPose keypoints: BODY_25 mapped to SMPL joints, cropped and augmented with the
annotated keypoints, and a 2D loss term of their own weight (SPIN's openpose_train_weight 0,
gt_train_weight 1: off by default)."""

import numpy as np
import torch

from hkmr.body.joints import JOINT_INDEX as J
from hkmr.config import load_config
from hkmr.data.augment import AugParams
from hkmr.data.datasets import SpinDataset
from hkmr.data.spin import openpose_to_smpl
from hkmr.model.estimator import weak_perspective
from hkmr.model.output import RegressorOutput
from hkmr.train.losses import total_loss


def _npz(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((100, 120, 3), 50, np.uint8))
    op = np.zeros((1, 25, 3))
    op[0, 4] = (70, 40, 0.8)  # R wrist
    op[0, 12] = (50, 60, 0.5)  # L hip
    op[0, 0] = (60, 10, 0.9)  # nose: no SMPL joint
    np.savez(tmp_path / "coco.npz", imgname=np.array(["a.jpg"]), center=np.array([[60.0, 50]]),
             scale=np.array([0.5]), openpose=op)
    return tmp_path / "coco.npz"


def test_openpose_joints_map_crop_and_flip_with_the_sample(tmp_path):
    ds = SpinDataset(_npz(tmp_path), tmp_path, size=32)
    op = ds.sample(0)["openpose"]
    np.testing.assert_allclose(op[J["right_wrist"]], [(70 - 60) / 50, (40 - 50) / 50, 0.8])
    np.testing.assert_allclose(op[J["left_hip"]], [(50 - 60) / 50, (60 - 50) / 50, 0.5])
    assert (op[:, 2] > 0).sum() == 2 and openpose_to_smpl(np.zeros((25, 3))).shape == (24, 3)
    flipped = ds.sample(0, AugParams(flip=True))["openpose"]
    np.testing.assert_allclose(flipped[J["left_wrist"]], [-0.2, -0.2, 0.8])
    assert ds[0]["openpose"].shape == (24, 3)


def test_openpose_loss_has_its_own_weight_and_is_off_by_default():
    joints = torch.zeros(1, 24, 3)
    out = RegressorOutput(torch.zeros(1, 10), torch.tensor([[1.0, 0, 0]]),
                          pose_aa=torch.zeros(1, 24, 3))
    proj = weak_perspective(joints, out.cam)
    kp = torch.cat([proj + 0.3, torch.ones(1, 24, 1)], -1)  # annotated: L1 0.3
    op = torch.cat([proj + 0.1, torch.ones(1, 24, 1)], -1)  # OpenPose: L1 0.1
    batch = {"keypoints": kp, "openpose": op, "joints3d": torch.zeros(1, 24, 4),
             "has_joints3d": torch.zeros(1), "pose": torch.zeros(1, 72),
             "betas": torch.zeros(1, 10), "has_smpl": torch.zeros(1)}
    for overrides, expect in (([], 5 * 0.3), (["loss.w_openpose=2"], 5 * (0.3 + 2 * 0.1)),
                              (["loss.w_openpose=2", "loss.w_gt_2d=0"], 5 * 2 * 0.1)):
        _, terms = total_loss([out], batch, lambda o: joints, load_config(None, overrides).loss)
        assert abs(terms["2d"].item() - expect) < 1e-5, overrides
