"""SMPLify in torch (hkmr/train/smplify.py): fits synthetic keypoints of known poses from a
perturbed start; camera conversion; the GMM prior."""

import math

import pytest
import torch

from hkmr.body.kinematics import JointKinematics
from hkmr.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hkmr.data.sampler import sample_poses
from hkmr.model.estimator import weak_perspective
from hkmr.train.gmm import default_gmm, fit_gmm
from hkmr.train.smplify import (FOCAL, SMPLify, angle_prior, estimate_translation, project,
                                weak_to_translation)

B = 24


def camera_frame(poses: torch.Tensor) -> torch.Tensor:
    """World-frame corpus poses (y up) seen by a camera (y down): half turn about x."""
    out = poses.clone()
    turn = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0]))
    out[:, :3] = matrix_to_axis_angle(turn @ axis_angle_to_matrix(poses[:, :3]))
    return out


@pytest.fixture(scope="module")
def problem(body_model):
    """Known poses, shapes and cameras, their exact keypoints and a perturbed start."""
    gen = torch.Generator().manual_seed(3)
    kin = JointKinematics(body_model)
    poses = camera_frame(torch.from_numpy(sample_poses(B, seed=4242)[0]))  # not the corpus'
    betas = torch.randn(B, 10, generator=gen) * 0.8
    cam = torch.tensor([0.9, 0.0, 0.0]) + torch.randn(B, 3, generator=gen) * 0.05
    joints = kin(poses, betas)
    keypoints = torch.cat([project(joints, weak_to_translation(cam)), torch.ones(B, 24, 1)], -1)
    start = dict(pose=poses + torch.randn(B, 72, generator=gen) * 0.25,
                 betas=torch.zeros(B, 10),
                 cam=cam + torch.randn(B, 3, generator=gen) * torch.tensor([0.05, 0.03, 0.03]))
    return kin, poses, betas, joints, keypoints, start


def errors(kin, pose, betas, transl, keypoints, joints):
    """Per-sample 2D error (SPIN pixels, 224 crop) and pelvis-aligned 3D MPJPE (mm)."""
    pred = kin(pose, betas)
    e2d = (project(pred, transl) - keypoints[..., :2]).norm(dim=-1).mean(1) * 112
    rel = (pred - pred[:, :1]) - (joints - joints[:, :1])
    return e2d, rel.norm(dim=-1).mean(1) * 1000


@pytest.mark.parametrize("prior", ["gmm", "vae"])
def test_smplify_lowers_reprojection_error_and_recovers_3d_joints(problem, prior):
    kin, poses, betas, joints, keypoints, start = problem
    if prior == "gmm":
        pose_prior = default_gmm(2000)
    else:
        from hkmr.model.priors import default_vae

        vae = default_vae(2000)
        pose_prior = lambda body_pose: vae.kl(*vae.encode(body_pose))  # noqa: E731
    fit = SMPLify(kin, pose_prior, iters=100)(start["pose"], start["betas"], start["cam"],
                                              keypoints)
    e2d_0, e3d_0 = errors(kin, start["pose"], start["betas"], weak_to_translation(start["cam"]),
                          keypoints, joints)
    e2d_1, e3d_1 = errors(kin, fit.pose, fit.betas, fit.transl, keypoints, joints)
    improved_3d = int((e3d_1 < e3d_0).sum())
    print(f"\nSMPLify ({prior}), {B} samples: 2D error {e2d_0.mean():.1f} -> {e2d_1.mean():.1f} "
          f"px (224 crop), 3D MPJPE {e3d_0.mean():.1f} -> {e3d_1.mean():.1f} mm, 3D better "
          f"in {improved_3d}/{B}")
    assert (e2d_1 < e2d_0).all(), "every sample's reprojection error drops"
    assert e2d_1.mean() < 0.25 * e2d_0.mean()
    assert improved_3d >= 20, f"3D joints better than the start in only {improved_3d}/{B}"
    assert e3d_1.mean() < 0.6 * e3d_0.mean()
    assert torch.isfinite(fit.loss).all() and (fit.loss >= 0).all()
    # the reported loss is the loss of the returned parameters
    smplify = SMPLify(kin, None)
    assert torch.allclose(smplify.fitting_loss(fit.pose, fit.betas, fit.transl, keypoints),
                          fit.loss)


def test_weak_perspective_conversion_matches_projection(problem):
    """The translation from (s, tx, ty) projects the body where the weak perspective does: on
    average to a fraction of a pixel of SPIN's 224 crop, at worst ~1 px (the body's depth is
    small against f/s ~ 50 m)."""
    kin, poses, betas, joints, keypoints, start = problem
    cam = start["cam"]
    transl = weak_to_translation(cam)
    s = FOCAL / transl[:, 2:]  # the inverse: (f / t_z, t_x s, t_y s)
    assert torch.allclose(torch.cat([s, s * transl[:, :2]], 1), cam, atol=1e-5)
    assert torch.allclose(transl[:, 2], FOCAL / cam[:, 0])
    gap = (project(joints, transl) - weak_perspective(joints, cam)).norm(dim=-1) * 112
    assert gap.max() < 2.0 and gap.mean() < 0.3


def test_estimate_translation_recovers_the_camera(problem):
    kin, poses, betas, joints, keypoints, start = problem
    truth = weak_to_translation(start["cam"])
    kp = torch.cat([project(joints, truth), torch.ones(B, 24, 1)], -1)
    assert torch.allclose(estimate_translation(joints, kp), truth, rtol=1e-3, atol=1e-3)


def test_angle_prior_penalises_the_unnatural_bend_of_our_body(body_model):
    """Natural bends (shin behind the knee, forearm in front of the elbow, as the body faces
    +z in its rest frame) cost less than the rest pose; the opposite bends more."""
    kin = JointKinematics(body_model)
    rest = angle_prior(torch.zeros(1, 69))
    for joint, child, axis, sign in ((4, 7, 0, 1), (5, 8, 0, 1), (18, 20, 1, -1),
                                     (19, 21, 1, 1)):  # knees x, elbows y
        pose = torch.zeros(2, 72)
        pose[0, 3 * joint + axis] = sign * 1.0  # should be the natural bend
        pose[1, 3 * joint + axis] = -sign * 1.0
        z = kin(pose, torch.zeros(2, 10))[:, child, 2] - kin(
            torch.zeros(1, 72), torch.zeros(1, 10))[:, joint, 2]
        natural, unnatural = angle_prior(pose[:, 3:])
        knee = joint in (4, 5)
        assert (z[0] < z[1]) if knee else (z[0] > z[1]), f"joint {joint}: bend direction"
        assert natural < rest < unnatural, f"joint {joint}"


def test_gmm_prefers_corpus_poses_to_noise():
    from hkmr.model.priors import pose_corpus

    corpus = pose_corpus(1500)[:, 3:]
    gmm = fit_gmm(corpus[:1000], components=4, iters=30)
    held_out = corpus[1000:]
    noisy = held_out + torch.randn_like(held_out) * 0.3
    assert gmm(held_out).mean() < gmm(noisy).mean() - 50
    assert torch.allclose(gmm.weights.sum(), torch.tensor(1.0), atol=1e-5)
