"""Joints-only kinematics equals smplx's kinematic joints, values and gradients."""

import numpy as np
import pytest
import torch

from hkmr.body import BodyModel
from hkmr.body.kinematics import JointKinematics
from hkmr.body.procedural import build_procedural_model


@pytest.fixture(scope="module")
def smpl_shaped(tmp_path_factory):
    """A model shaped like real SMPL: dense random J_regressor, 10 random shape directions and
    non-zero pose blend shapes (which move vertices but never joints)."""
    rng = np.random.default_rng(0)
    arrays = build_procedural_model()
    regressor = rng.random((24, 6890)) * (rng.random((24, 6890)) < 0.01)
    arrays["J_regressor"] = regressor / regressor.sum(1, keepdims=True)
    arrays["shapedirs"] = 0.01 * rng.standard_normal((6890, 3, 10))
    arrays["posedirs"] = 0.001 * rng.standard_normal((6890, 3, 207))
    path = tmp_path_factory.mktemp("smpl") / "model.npz"
    np.savez(path, **arrays)
    return BodyModel(path)


@pytest.mark.parametrize("which", ["procedural", "smpl_shaped"])
def test_joints_only_equals_smplx_values_and_gradients(which, body_model, smpl_shaped):
    body = body_model if which == "procedural" else smpl_shaped
    kin = JointKinematics(body)
    gen = torch.Generator().manual_seed(3)
    pose = (0.5 * torch.randn(16, 24, 3, generator=gen)).requires_grad_(True)
    betas = (1.5 * torch.randn(16, 10, generator=gen)).requires_grad_(True)
    weights = torch.randn(16, 24, 3, generator=gen)
    full = body.forward_pose(pose, betas).joints
    fast = kin(pose, betas)
    assert (full - fast).abs().max().item() < 1e-6
    g_full = torch.autograd.grad((full * weights).sum(), (pose, betas))
    g_fast = torch.autograd.grad((fast * weights).sum(), (pose, betas))
    for a, b in zip(g_full, g_fast):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
