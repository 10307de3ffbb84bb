"""Augmentation keeps the ground truth consistent (paper Sec. 4 training setup): a flipped
sample is the sample rendered from the mirrored pose; rotation and scale move image, 2D, 3D
and pose together."""

import numpy as np
import pytest
import torch

from hkmr.body.joints import FLIP_PERMUTATION, flip_pose
from hkmr.body.rotations import axis_angle_to_matrix
from hkmr.data.augment import Augment, AugParams, augment_crop
from hkmr.data.render import (Appearance, PartRenderer, face_parts, render_view,
                              sample_appearance)
from hkmr.data.sampler import sample_betas, sample_pose
from hkmr.data.views import CAMERAS, CameraSpec, place_views

SIZE = 128


def render_scene(model, world_pose, betas, camera, look):
    """A stored-format sample of one camera's view, built without the augmentation code."""
    with torch.no_grad():
        out = model.forward_pose(torch.as_tensor(world_pose[None], dtype=torch.float32),
                                 torch.as_tensor(betas[None], dtype=torch.float32))
    geo = place_views(out.vertices[0].double().numpy(), out.joints[0].double().numpy(),
                      world_pose[0], cameras=(camera,))[0]
    faces = model.faces.numpy()
    r = render_view(geo.vertices, geo.joints, geo.focal, faces,
                    face_parts(faces, model.smpl.lbs_weights.numpy()), SIZE, look)
    return {"img": r.img, "parts": r.parts,
            "keypoints": np.concatenate([r.keypoints, np.ones((24, 1))], 1),
            "visible": r.visible, "joints3d": np.concatenate([geo.joints, np.ones((24, 1))], 1),
            "pose": np.concatenate([geo.global_orient, world_pose[1:].reshape(-1)]),
            "betas": betas, "transl": geo.transl, "focal": np.float32(geo.focal),
            "has_smpl": 1.0, "has_joints3d": 1.0}


def mirrored(look: Appearance) -> Appearance:
    return Appearance(look.colours, look.light * np.array([-1.0, 1.0, 1.0]), look.ambient,
                      look.diffuse, np.ascontiguousarray(look.background[:, ::-1]))


@pytest.fixture(scope="module")
def scene(body_model):
    rng = np.random.default_rng(11)
    pose, _ = sample_pose(rng, style="reaching")  # asymmetric: one arm reaches
    return pose, sample_betas(rng), sample_appearance(rng, SIZE)


@pytest.mark.parametrize("view", [3, 0])
def test_flipped_sample_equals_render_of_mirrored_pose(body_model, scene, view):
    pose, betas, look = scene
    cam = CAMERAS[view]
    original = render_scene(body_model, pose, betas, cam, look)
    flipped = augment_crop(original, AugParams(flip=True))
    mirror_cam = CameraSpec(cam.view, cam.name, -cam.azimuth_deg, cam.height_m, cam.distance_m)
    world_mirror = flip_pose(torch.as_tensor(pose)).numpy()
    expect = render_scene(body_model, world_mirror, betas, mirror_cam, mirrored(look))

    px = (flipped["keypoints"][:, :2] - expect["keypoints"][:, :2]) * SIZE / 2
    assert np.abs(px).max() < 1.0, np.abs(px).max()  # acceptance: within 1 px
    assert np.abs(px).max() < 1e-3  # in fact exact up to float noise
    assert not np.allclose(original["keypoints"], expect["keypoints"], atol=0.05)
    # pose parameters mirrored: same rotations as the mirrored scene's camera-frame pose
    rot = lambda p: axis_angle_to_matrix(torch.as_tensor(p, dtype=torch.float64).view(24, 3))
    torch.testing.assert_close(rot(flipped["pose"]), rot(expect["pose"]), atol=2e-5, rtol=0)
    torch.testing.assert_close(rot(flipped["pose"]),
                               rot(flip_pose(torch.as_tensor(original["pose"]).view(24, 3))),
                               atol=1e-6, rtol=0)
    np.testing.assert_allclose(flipped["joints3d"], expect["joints3d"], atol=1e-4)
    np.testing.assert_allclose(flipped["transl"], expect["transl"], atol=1e-4)
    np.testing.assert_allclose(flipped["focal"], expect["focal"], rtol=1e-5)
    np.testing.assert_array_equal(flipped["visible"], expect["visible"])
    assert (flipped["parts"] == expect["parts"]).mean() > 0.995
    # the part labels swapped sides: the left arm of the flipped image is labelled left
    assert (flipped["parts"] != original["parts"][:, ::-1]).any()
    diff = np.abs(flipped["img"].astype(int) - expect["img"].astype(int))
    assert (diff.max(2) > 2).mean() < 0.01


def _consistent(model, sample, atol_px=1e-3):
    """Keypoints = projection of joints3d; joints3d = BodyModel(pose, betas) + transl."""
    j3d = sample["joints3d"][:, :3].astype(np.float64)
    proj = sample["focal"] * j3d[:, :2] / j3d[:, 2:]
    ok = sample["keypoints"][:, 2] > 0
    np.testing.assert_allclose(sample["keypoints"][ok, :2], proj[ok], atol=atol_px * 2 / SIZE)
    with torch.no_grad():
        out = model.forward_pose(torch.as_tensor(sample["pose"][None], dtype=torch.float32),
                                 torch.as_tensor(sample["betas"][None], dtype=torch.float32))
    np.testing.assert_allclose(out.joints[0].numpy() + sample["transl"], j3d, atol=2e-4)
    return out


@pytest.mark.parametrize("params", [AugParams(rot_deg=35.0), AugParams(scale=1.2),
                                    AugParams(flip=True, rot_deg=-50.0, scale=0.8)])
def test_rotation_and_scale_move_all_ground_truth_together(body_model, scene, params):
    pose, betas, look = scene
    sample = render_scene(body_model, pose, betas, CAMERAS[3], look)
    aug = augment_crop(sample, params)
    out = _consistent(body_model, aug)
    # the warped part map agrees with a fresh rasterisation of the transformed ground truth
    renderer = PartRenderer(body_model.faces, body_model.smpl.lbs_weights, SIZE)
    fresh = renderer((out.vertices[0].numpy() + aug["transl"])[None], focal=aug["focal"])[0]
    fg, fresh_fg = aug["parts"] > 0, fresh > 0
    assert (fg & fresh_fg).sum() / (fg | fresh_fg).sum() > 0.9
    assert (aug["parts"][fg & fresh_fg] == fresh[fg & fresh_fg]).mean() > 0.9
    if params.rot_deg or params.scale != 1.0:
        assert not np.allclose(aug["keypoints"], sample["keypoints"], atol=0.01)


def test_keypoints_leaving_the_crop_lose_confidence(body_model, scene):
    pose, betas, look = scene
    sample = render_scene(body_model, pose, betas, CAMERAS[3], look)
    aug = augment_crop(sample, AugParams(scale=0.6))  # zoom in: feet and head leave the crop
    outside = (np.abs(aug["keypoints"][:, :2]) > 1).any(1)
    assert outside.any() and not outside.all()
    assert (aug["keypoints"][outside, 2] == 0).all() and (aug["visible"][outside] == 0).all()
    assert (aug["keypoints"][~outside, 2] == 1).all()


def test_colour_noise_changes_only_pixels(body_model, scene):
    pose, betas, look = scene
    sample = render_scene(body_model, pose, betas, CAMERAS[3], look)
    aug = augment_crop(sample, AugParams(gain=(1.3, 0.7, 1.0)))
    for key in ("keypoints", "joints3d", "pose"):
        np.testing.assert_allclose(aug[key], sample[key], atol=1e-6)  # float32 storage
    np.testing.assert_array_equal(aug["parts"], sample["parts"])
    ratio = aug["img"][..., 1].astype(float).sum() / sample["img"][..., 1].astype(float).sum()
    assert ratio == pytest.approx(0.7, abs=0.01)


def test_augment_sampling_is_seeded_and_follows_spin_ranges():
    aug = Augment()
    a = [aug.sample(np.random.default_rng([3, i])) for i in range(400)]
    assert a == [aug.sample(np.random.default_rng([3, i])) for i in range(400)]
    flips = np.mean([p.flip for p in a])
    rotated = np.mean([p.rot_deg != 0 for p in a])
    assert 0.4 < flips < 0.6 and 0.3 < rotated < 0.5
    assert max(abs(p.rot_deg) for p in a) <= 60 and all(0.75 <= p.scale <= 1.25 for p in a)
    assert all(0.6 <= g <= 1.4 for p in a for g in p.gain)


def test_flip_permutation_matches_part_labels():
    from hkmr.data.augment import _LABEL_FLIP

    assert _LABEL_FLIP[0] == 0
    assert [int(_LABEL_FLIP[j + 1]) - 1 for j in range(24)] == list(FLIP_PERMUTATION)
