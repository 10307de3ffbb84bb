"""Pose/shape sampling, the four cameras and mean_params (paper Sec. 3.2 prior corpus,
Sec. 4 Human3.6M-style capture)."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hkmr.body.joints import FLIP_PERMUTATION, JOINT_INDEX as J
from hkmr.data.sampler import (JOINT_RANGES, STYLES, SamplerSettings, mean_params,
                               sample_pose, sample_poses)
from hkmr.data.views import (CAMERAS, CROP_MARGIN, FRONTAL_VIEW, place_views,
                             protocol_views)


def test_pose_corpus_is_seeded():
    a, sa = sample_poses(40, seed=3)
    b, sb = sample_poses(40, seed=3)
    c, _ = sample_poses(40, seed=4)
    assert a.dtype == np.float32 and a.shape == (40, 72)
    np.testing.assert_array_equal(a, b)
    assert sa == sb and not np.allclose(a, c)
    np.testing.assert_array_equal(sample_poses(10, seed=3)[0], a[:10])  # prefix-stable


def test_styles_follow_their_probabilities():
    _, styles = sample_poses(700, seed=0)
    probs = SamplerSettings().style_probs
    for style, p in zip(STYLES, probs):
        assert abs(styles.count(style) / 700 - p) < 0.05, style


def test_ranges_are_mirror_images():
    for j, k in enumerate(FLIP_PERMUTATION):
        np.testing.assert_array_equal(JOINT_RANGES[k, 0], JOINT_RANGES[j, 0])
        np.testing.assert_array_equal(JOINT_RANGES[k, 1:], -JOINT_RANGES[j, 1:, ::-1])


def _posed(model, style, n=12, seed=0):
    poses = np.stack([sample_pose(np.random.default_rng([seed, i]), style=style)[0]
                      for i in range(n)])
    poses[:, 0] = 0.0  # upright, facing +z: the checks below are in the body frame
    with torch.no_grad():
        out = model.forward_pose(torch.as_tensor(poses, dtype=torch.float32),
                                 torch.zeros(n, 10))
    return out.joints.numpy(), poses


def test_knees_and_elbows_only_bend_the_anatomical_way(body_model):
    poses, _ = sample_poses(300, seed=1)
    aa = poses.reshape(-1, 24, 3)
    for side in ("left", "right"):
        knee = aa[:, J[f"{side}_knee"]]
        assert (knee[:, 0] > -0.35).all()  # flexion is +x; jitter allows a few degrees
        assert np.linalg.norm(knee, axis=1).max() < np.deg2rad(150)
    joints, _ = _posed(body_model, "mixture", n=48)
    for side in ("left", "right"):  # the shin never points forward of the thigh's plane
        hip, knee, ankle = (joints[:, J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
        thigh, shin = knee - hip, ankle - knee
        bend = np.cross(thigh, shin)[:, 0]  # about the body's x axis
        assert (bend > -0.02).all()


@pytest.mark.parametrize("style,check", [
    ("standing", lambda j: (j[:, J["head"], 1] > j[:, J["pelvis"], 1] + 0.4).all()
     and (j[:, J["left_ankle"], 1] < j[:, J["left_knee"], 1]).all()),
    ("sitting", lambda j: (j[:, J["left_knee"], 2] - j[:, J["left_hip"], 2] > 0.25).all()),
    ("arms_raised", lambda j: (j[:, J["left_wrist"], 1] > j[:, J["head"], 1]).mean() > 0.8),
    ("crouching", lambda j: (j[:, J["pelvis"], 1] - j[:, J["left_ankle"], 1] < 0.6).all()),
    ("reaching", lambda j: (np.maximum(j[:, J["left_wrist"], 2], j[:, J["right_wrist"], 2])
                            > 0.3).mean() > 0.8),
])
def test_styles_look_like_their_names(body_model, style, check):
    joints, _ = _posed(body_model, style)
    assert check(joints), style


def test_views_are_consistent_with_the_body_model(body_model):
    pose, _ = sample_pose(np.random.default_rng(5), style="walking")
    betas = np.random.default_rng(6).standard_normal(10)
    t = lambda x: torch.as_tensor(np.asarray(x)[None], dtype=torch.float32)
    with torch.no_grad():
        world = body_model.forward_pose(t(pose), t(betas))
    views = place_views(world.vertices[0].double().numpy(), world.joints[0].double().numpy(),
                        pose[0])
    assert [v.view for v in views] == [0, 1, 2, 3]
    for v in views:
        cam_pose = np.concatenate([v.global_orient, pose[1:].reshape(-1)])
        with torch.no_grad():
            out = body_model.forward_pose(t(cam_pose), t(betas))
        np.testing.assert_allclose(out.joints[0].numpy() + v.transl, v.joints, atol=1e-4)
        np.testing.assert_allclose(out.vertices[0].numpy() + v.transl, v.vertices, atol=1e-4)
        extent = np.abs(v.focal * v.vertices[:, :2] / v.vertices[:, 2:]).max()
        assert extent == pytest.approx(1 / CROP_MARGIN)  # SPIN's 1.2x crop
        assert 3.5 < v.joints[0, 2] < 6.0  # metres in front of the camera
    # cameras sit at the documented azimuths and heights: each looks back along its azimuth
    for v, spec in zip(views, CAMERAS):
        forward = v.rotation[2]  # optical axis in the world
        az = np.degrees(np.arctan2(-forward[0], -forward[2]))
        assert abs((az - spec.azimuth_deg + 180) % 360 - 180) < 3, (spec, az)  # re-aimed a bit
        assert v.rotation[0, 1] == pytest.approx(0.0, abs=1e-9)  # no roll: x stays level
    pitch = [np.degrees(np.arcsin(v.rotation[2, 1])) for v in views]  # < 0: looks down
    assert np.argmin(pitch) == np.argmax([c.height_m for c in CAMERAS])


def test_upright_body_facing_camera3_has_orientation_pi_about_x(body_model):
    pose = np.zeros((24, 3))
    with torch.no_grad():
        out = body_model.forward_pose(torch.zeros(1, 72), torch.zeros(1, 10))
    v = place_views(out.vertices[0].double().numpy(), out.joints[0].double().numpy(),
                    pose[0])[FRONTAL_VIEW]
    angle = (Rotation.from_rotvec(v.global_orient)
             * Rotation.from_rotvec([np.pi, 0, 0]).inv()).magnitude()
    assert np.degrees(angle) < 12  # only the camera's downward pitch
    kp = v.keypoints()
    assert kp[J["head"], 1] < kp[J["pelvis"], 1] < kp[J["left_ankle"], 1]  # y grows down
    assert kp[J["left_wrist"], 0] > kp[J["right_wrist"], 0]  # body-left is image right


def test_protocols():
    assert protocol_views("P1") == (0, 1, 2, 3) and protocol_views("P2") == (FRONTAL_VIEW,)
    with pytest.raises(ValueError, match="P3"):
        protocol_views("P3")


def test_mean_params_is_a_deterministic_upright_mean(body_model):
    mp = mean_params()
    assert {k: (v.shape, v.dtype) for k, v in mp.items()} == {
        "pose": ((72,), np.float32), "betas": ((10,), np.float32), "cam": ((3,), np.float32)}
    again = mean_params()
    for k in mp:
        np.testing.assert_array_equal(mp[k], again[k])
    assert not np.any(mp["betas"])
    glob = Rotation.from_rotvec(mp["pose"][:3])
    assert np.degrees((glob * Rotation.from_rotvec([np.pi, 0, 0]).inv()).magnitude()) < 25
    with torch.no_grad():
        out = body_model.forward_pose(torch.as_tensor(mp["pose"][None]), torch.zeros(1, 10))
    s, tx, ty = mp["cam"]
    kp = s * out.joints[0, :, :2].numpy() + [tx, ty]
    assert 0.5 < s < 2.0
    assert (np.abs(kp) < 1).all() and kp[J["head"], 1] < kp[J["left_ankle"], 1]
    # the mean body is upright and its arms hang down: wrists below shoulders
    assert (kp[[J["left_wrist"], J["right_wrist"]], 1]
            > kp[[J["left_shoulder"], J["right_shoulder"]], 1]).all()
