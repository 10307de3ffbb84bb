"""Metrics against hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from hkmr.body.joints import JOINT_INDEX
from hkmr.body.rotations import axis_angle_to_matrix
from hkmr.eval.metrics import mpjpe, mpjpe_2d, pa_mpjpe, pck, select_eval_joints
from hkmr.eval.segmentation import confusion, scores


def test_mpjpe_of_a_known_offset_is_its_length():
    gt = torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(0))
    pred = gt.clone()
    pred[:, 5] += torch.tensor([0.03, 0.04, 0.0])  # one joint off by 5 cm
    torch.testing.assert_close(mpjpe(pred, gt), torch.full((3,), 50.0 / 24))
    # a global translation does not count (pelvis-aligned)
    # (float32 rounding of a 0.7 m shift is ~1e-4 mm)
    torch.testing.assert_close(mpjpe(gt + 0.7, gt), torch.zeros(3), atol=1e-3, rtol=0)


def test_fourteen_joints_align_on_the_hip_centre():
    gt = torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(1))
    pred = gt.clone()
    pred[:, 0] += 1.0  # pelvis joint is not among the 14: no effect
    torch.testing.assert_close(mpjpe(select_eval_joints(pred), select_eval_joints(gt)),
                               torch.zeros(2), atol=1e-4, rtol=0)
    # a wrist (one of the 14, not a hip) 7 cm off: only its own error, 70 mm / 14
    pred = gt.clone()
    pred[:, JOINT_INDEX["left_wrist"]] += torch.tensor([0.0, 0.07, 0.0])
    torch.testing.assert_close(mpjpe(select_eval_joints(pred), select_eval_joints(gt)),
                               torch.full((2,), 5.0), atol=1e-3, rtol=0)
    # a hip 4 cm off moves the hip centre by 2 cm: every one of the 14 joints is 20 mm off
    # (centring on any single joint would give 40 mm / 14, or 40 mm for 13 of them)
    pred = gt.clone()
    pred[:, JOINT_INDEX["left_hip"]] += torch.tensor([0.04, 0.0, 0.0])
    torch.testing.assert_close(mpjpe(select_eval_joints(pred), select_eval_joints(gt)),
                               torch.full((2,), 20.0), atol=1e-3, rtol=0)


def procrustes_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """mm after the similarity transform s R x + t that best maps pred onto gt (Umeyama 1991),
    solved here with numpy's SVD: an implementation independent of roma's."""
    mu_p, mu_g = pred.mean(0), gt.mean(0)
    p, g = pred - mu_p, gt - mu_g
    u, sing, vt = np.linalg.svd(p.T @ g)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    rot = vt.T @ d @ u.T
    scale = np.trace(np.diag(sing) @ d) / (p ** 2).sum()
    aligned = scale * p @ rot.T + mu_g
    return 1000 * np.linalg.norm(aligned - gt, axis=1).mean()


def test_pa_mpjpe_is_invariant_to_a_similarity_transform():
    gt = torch.randn(4, 14, 3)
    rot = axis_angle_to_matrix(torch.randn(4, 3))
    pred = 1.7 * gt @ rot.transpose(1, 2) + torch.randn(4, 1, 3)
    assert pa_mpjpe(pred, gt).abs().max() < 1e-3
    assert mpjpe(pred, gt).min() > 100
    noisy = gt + 0.01 * torch.randn_like(gt)
    assert pa_mpjpe(noisy, gt).mean() <= mpjpe(noisy, gt).mean() + 1e-3


def test_pa_mpjpe_of_a_distorted_pose_matches_an_independent_procrustes():
    """Non-zero PA-MPJPE: a scaled, rotated, shifted and noisy prediction. pred is aligned to
    gt, not gt to pred: with pred at 2.5x the scale the two directions differ ~2.5x."""
    rng = np.random.default_rng(3)
    gt = rng.normal(0, 0.3, (3, 14, 3))
    rot = axis_angle_to_matrix(torch.tensor(rng.normal(0, 1, (3, 3)))).numpy()
    pred = 2.5 * (gt + rng.normal(0, 0.02, gt.shape)) @ rot.transpose(0, 2, 1) + 0.4
    expect = [procrustes_error(p, g) for p, g in zip(pred, gt)]
    got = pa_mpjpe(torch.from_numpy(pred), torch.from_numpy(gt))
    assert min(expect) > 10  # far from the zero any alignment gives an exact copy
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-4)
    reverse = [procrustes_error(g, p) for p, g in zip(pred, gt)]
    assert min(r / e for r, e in zip(reverse, expect)) > 2


def test_pck_and_2d_error_on_a_constructed_case():
    gt = torch.zeros(1, 4, 2)
    pred = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [0.0, 10.0], [0.0, 0.0]]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last joint is not evaluated
    assert pck(pred, gt, mask, threshold=5.0).item() == pytest.approx(2 / 3)
    assert mpjpe_2d(pred, gt, mask).item() == pytest.approx((5 + 1 + 10) / 3)


def test_segmentation_accuracy_and_f1_on_constructed_masks():
    gt = torch.zeros(1, 4, 4, dtype=torch.long)
    gt[0, :2, :2] = 1  # 4 pixels of class 1
    pred = torch.zeros_like(gt)
    pred[0, :2, :1] = 1  # 2 of them found, no false positives
    acc, f1 = scores(confusion(pred, gt, num_classes=3))
    assert acc == pytest.approx(14 / 16)
    # background: tp 12, |pred| 14, |gt| 12 -> 24/26; class 1: tp 2, 2 + 4 -> 4/6
    assert f1 == pytest.approx((24 / 26 + 4 / 6) / 2)
    assert not math.isnan(f1)
