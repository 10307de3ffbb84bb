"""The procedural SMPL-format body through the real smplx code path (paper Sec. 3.1)."""


import numpy as np
import pytest
import smplx
import torch

from hkmr.body import joints as K
from hkmr.body.procedural import (NUM_VERTICES, SHAPE_DIRECTIONS, build_procedural_model,
                                  procedural_model_path, rest_joints)
from hkmr.body.rotations import axis_angle_to_matrix, matrix_to_sixd, sixd_to_matrix


def test_procedural_model_loads_through_smplx(body_model):
    assert isinstance(body_model.smpl, smplx.SMPL)
    assert body_model.num_vertices == NUM_VERTICES == 6890
    assert body_model.smpl.shapedirs.shape == (6890, 3, 10)
    assert body_model.parents.tolist() == list(K.PARENTS)


def test_procedural_arrays_follow_smpl_format():
    m = build_procedural_model()
    np.testing.assert_allclose(m["J_regressor"].sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(m["weights"].sum(1), 1.0, atol=1e-12)
    assert (m["weights"] >= 0).all()
    assert m["f"].min() == 0 and m["f"].max() == 6889
    np.testing.assert_allclose(m["J_regressor"] @ m["v_template"], rest_joints(), atol=1e-12)
    parts = m["weights"].argmax(1)
    assert set(parts.tolist()) == set(range(24)), "every joint owns a body part"


def test_procedural_model_is_built_once_and_cached(tmp_path):
    path = procedural_model_path(tmp_path)
    assert path.exists() and path.parent == tmp_path
    mtime = path.stat().st_mtime_ns
    assert procedural_model_path(tmp_path) == path and path.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"


def test_faces_point_outwards():
    m = build_procedural_model()
    v, f = m["v_template"], m["f"]
    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    # a tube's outward direction is away from the nearest bone; approximate with the joint
    # nearest to the face centre
    centre = tri.mean(1)
    joints = rest_joints()
    nearest = joints[np.argmin(((centre[:, None] - joints[None]) ** 2).sum(-1), 1)]
    outward = ((normal * (centre - nearest)).sum(1) > 0).mean()
    assert outward > 0.9, outward


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-7), (torch.float32, 1e-6)])
def test_regressed_joints_equal_kinematic_joints(body_model, dtype, tol):
    gen = torch.Generator().manual_seed(0)
    pose = 0.6 * torch.randn(32, 24, 3, generator=gen, dtype=dtype)
    betas = 2.0 * torch.randn(32, 10, generator=gen, dtype=dtype)
    model = body_model.to(dtype)
    out = model.forward_pose(pose, betas)
    err = (model.regress_joints(out.vertices) - out.joints).abs().max().item()
    body_model.float()
    assert err < tol, f"max |X(M) - J| = {err:.2e} m"


def test_axis_angle_and_rotation_matrix_forms_agree(body_model):
    pose = 0.5 * torch.randn(4, 24, 3)
    betas = torch.randn(4, 10)
    a = body_model.forward_pose(pose, betas)
    b = body_model.forward_pose(axis_angle_to_matrix(pose), betas)
    c = body_model(pose[:, 0], pose[:, 1:].reshape(4, 69), betas)
    torch.testing.assert_close(a.vertices, b.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.joints, c.joints)
    assert a.eval_joints.shape == (4, 14, 3)
    one = body_model.forward_pose(pose[:1], betas[:1])
    torch.testing.assert_close(one.joints, a.joints[:1], atol=1e-6, rtol=0)


def test_mirrored_pose_gives_mirrored_body(body_model):
    """The procedural body is left/right symmetric, so flip_pose must mirror the joints."""
    pose = 0.5 * torch.randn(8, 24, 3)
    betas = torch.randn(8, 10)
    joints = body_model.forward_pose(pose, betas).joints
    mirrored = body_model.forward_pose(K.flip_pose(pose.reshape(8, 24, 3)), betas).joints
    expected = joints[:, list(K.FLIP_PERMUTATION)] * torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(mirrored, expected, atol=1e-5, rtol=0)


def _rest(body_model, k, value=2.0):
    betas = torch.zeros(2, 10)
    betas[1, k] = value
    out = body_model.forward_pose(torch.zeros(2, 24, 3), betas)
    return out.vertices, out.joints


def _dist(joints, a, b):
    return (joints[:, K.JOINT_INDEX[a]] - joints[:, K.JOINT_INDEX[b]]).norm(dim=-1)


def _parts(body_model, *names):
    weights = body_model.smpl.lbs_weights.argmax(1)
    return torch.isin(weights, torch.tensor([K.JOINT_INDEX[n] for n in names]))


def test_each_shape_direction_does_what_its_doc_says(body_model):
    assert len(SHAPE_DIRECTIONS) == 10
    grows = {}
    v, j = _rest(body_model, 0)
    grows["stature"] = v[:, :, 1].amax(1) - v[:, :, 1].amin(1)
    v, j = _rest(body_model, 1)
    chest = _parts(body_model, "spine2")
    grows["girth"] = v[:, chest, 2].amax(1) - v[:, chest, 2].amin(1)
    v, j = _rest(body_model, 2)
    grows["leg"] = _dist(j, "left_hip", "left_ankle")
    assert torch.allclose(*_dist(j, "pelvis", "neck").unbind(), atol=1e-6), "legs only"
    v, j = _rest(body_model, 3)
    grows["torso"] = _dist(j, "pelvis", "neck")
    assert torch.allclose(*_dist(j, "left_hip", "left_ankle").unbind(), atol=1e-6)
    v, j = _rest(body_model, 4)
    grows["arm"] = _dist(j, "left_shoulder", "left_wrist")
    assert torch.allclose(*_dist(j, "left_hip", "left_ankle").unbind(), atol=1e-6)
    v, j = _rest(body_model, 5)
    grows["shoulders"] = _dist(j, "left_shoulder", "right_shoulder")
    v, j = _rest(body_model, 6)
    grows["hips"] = _dist(j, "left_hip", "right_hip")
    v, j = _rest(body_model, 7)
    belly = _parts(body_model, "spine1")
    grows["belly"] = v[:, belly, 2].amax(1)
    v, j = _rest(body_model, 8)
    head = _parts(body_model, "head")
    grows["head"] = v[:, head, 1].amax(1) - v[:, head, 1].amin(1)
    v, j = _rest(body_model, 9)
    thigh = _parts(body_model, "left_hip")
    grows["limbs"] = v[:, thigh, 0].amax(1) - v[:, thigh, 0].amin(1)
    assert torch.allclose(*(v[:, chest, 0].amax(1)).unbind(), atol=1e-6), "limbs only"
    for name, (before, after) in grows.items():
        assert after > before * 1.02, f"beta for {name}: {before:.4f} -> {after:.4f}"


def test_six_d_round_trip():
    rot = axis_angle_to_matrix(torch.randn(10, 3))
    torch.testing.assert_close(sixd_to_matrix(matrix_to_sixd(rot)), rot, atol=1e-5, rtol=0)
