"""The CMR baseline: shapes, gradients, joints and losses from the regressed mesh, config,
training end to end and on frozen features, evaluation from its checkpoint."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from conftest import smoke_run, trainer_for
from test_features import (CPU, frozen, mean_pose_mpjpe, one_thread, quiet,  # noqa: F401
                           setup)

from hkmr.body.joints import JOINT_INDEX, LSP14
from hkmr.body.kinematics import JointKinematics
from hkmr.config import ConfigError, load_config, make_config
from hkmr.checkpoint import load_estimator
from hkmr.data.datasets import SyntheticDataset
from hkmr.data.source import ImageTestSets
from hkmr.eval.predict import predict
from hkmr.eval.suites import evaluate_suites
from hkmr.model import MeanParams, MeshEstimator, RegressorOutput, build_regressor, pose_body
from hkmr.model.estimator import count_parameters, weak_perspective
from hkmr.train.losses import total_loss

FEAT = 32
SMALL = ["model.regressor=cmr", "model.cmr_channels=16", "model.cmr_downsample=16"]


def small_regressor():
    torch.manual_seed(0)
    cfg = load_config(None, SMALL)
    return build_regressor(cfg.model, FEAT, MeanParams.default())


def test_outputs_are_a_full_mesh_a_camera_and_smpl_parameters():
    reg = small_regressor()
    phi = torch.randn(3, FEAT)
    outs = reg(phi)
    assert len(outs) == 1
    out = outs[0]
    assert out.vertices.shape == (3, 6890, 3)
    assert out.cam.shape == (3, 3) and out.betas.shape == (3, 10)
    rot = out.pose
    assert rot.shape == (3, 24, 3, 3)
    eye = torch.eye(3).expand_as(rot)
    assert torch.allclose(rot @ rot.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(3, 24), atol=1e-5)
    # the mesh depends on the image features; kept vertices carry the coarse mesh
    other = reg(torch.randn(3, FEAT))[0]
    assert (out.vertices - other.vertices).abs().max() > 1e-4


def test_mesh_losses_train_the_graph_cnn_and_parameter_losses_only_the_mlp():
    reg = small_regressor()
    phi = torch.randn(2, FEAT, requires_grad=True)
    out = reg(phi)[0]
    gcn = [p for n, p in reg.named_parameters() if not n.startswith("smpl.")]
    mlp = list(reg.smpl.parameters())
    (out.vertices.abs().mean() + out.cam.abs().mean()).backward(retain_graph=True)
    assert phi.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gcn)
    assert all(p.grad is None for p in mlp)
    reg.zero_grad(set_to_none=True)
    phi.grad = None
    (out.pose.sum() + out.betas.pow(2).sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp)
    assert all(p.grad is None for p in gcn) and phi.grad is None  # CMR's input is detached


def test_joints_and_losses_come_from_the_regressed_mesh(body_model):
    torch.manual_seed(0)
    pose, betas = 0.3 * torch.randn(4, 24, 3), torch.randn(4, 10)
    posed = body_model.forward_pose(pose, betas)
    kin = JointKinematics(body_model)
    cam = torch.tensor([[0.9, 0.05, -0.1]]).expand(4, 3)
    # Θ, β of the output are wrong on purpose: the joints must come from the mesh
    out = RegressorOutput(betas=torch.zeros(4, 10), cam=cam, pose_aa=torch.zeros(4, 24, 3),
                          vertices=posed.vertices)
    joints = kin.joints_of(out)
    assert torch.allclose(joints, posed.joints, atol=1e-5)
    mesh = pose_body(body_model, out)  # what the demo and mesh-joint training use
    assert mesh.vertices is out.vertices and torch.allclose(mesh.joints, joints, atol=1e-6)
    assert not torch.allclose(kin(out.pose, out.betas), posed.joints, atol=1e-2)
    ones = torch.ones(4, 24, 1)
    batch = {"pose": pose.flatten(1), "betas": betas, "vertices": posed.vertices,
             "joints3d": torch.cat([posed.joints + torch.tensor([0.1, 0.2, 3.0]), ones], -1),
             "keypoints": torch.cat([weak_perspective(posed.joints, cam), ones], -1),
             "has_smpl": torch.ones(4), "has_joints3d": torch.ones(4)}
    weights = make_config({"loss": {"w_smpl": 0, "w_shape": 0, "w_vertices": 2}}).loss
    loss, terms = total_loss([out], batch, kin.joints_of, weights)
    assert loss.item() < 1e-5, terms
    shifted = RegressorOutput(betas=out.betas, cam=cam, pose_aa=out.pose_aa,
                              vertices=posed.vertices + 0.01)
    _, terms = total_loss([shifted], batch, kin.joints_of, weights)
    assert terms["vertices"].item() == pytest.approx(2 * 0.01, rel=1e-4)
    assert terms["3d"].item() == pytest.approx(0.0, abs=1e-6)  # pelvis-aligned
    assert terms["2d"].item() == pytest.approx(5 * 0.9 * 0.01 * 2 / 2, rel=1e-3)
    _, terms = total_loss([shifted], dict(batch, has_smpl=torch.zeros(4)), kin.joints_of, weights)
    assert terms["vertices"].item() == 0.0
    # SMPL-parameter regressors log no vertex term
    _, terms = total_loss([RegressorOutput(betas=betas, cam=cam, pose_aa=pose)], batch,
                          kin.joints_of, weights)
    assert "vertices" not in terms


def test_config_names_cmr_and_its_ranges():
    assert make_config({"model": {"regressor": "cmr"}}).model.cmr_downsample == 4
    with pytest.raises(ConfigError, match=r"model.regressor='gcn' is not allowed; choose one "
                                          r"of 'hkmr', 'hmr', 'cmr'"):
        load_config(None, ["model.regressor=gcn"])
    with pytest.raises(ConfigError, match=r"model.cmr_downsample=0 is out of range"):
        load_config(None, ["model.cmr_downsample=0"])
    with pytest.raises(ConfigError, match=r"model.cmr_channels=4 is out of range"):
        load_config(None, ["model.cmr_channels=4"])
    smoke = load_config("smoke", ["model.regressor=cmr"])
    assert (smoke.model.cmr_channels, smoke.model.cmr_downsample) == (64, 16)


def test_parameter_count_with_resnet50_is_near_cmrs():
    """CMR: 42.7M with ResNet50. Ours: 40.2M (ResNet50 23.5M, graph CNN 1.7M at 256 channels
    on 1723 vertices, SMPL MLP 15.0M, most of it the 1723 x 6 -> 1024 input layer)."""
    model = MeshEstimator(make_config({"model": {"regressor": "cmr"}}).model)
    total = count_parameters(model) / 1e6
    assert total == pytest.approx(40.2, abs=0.1)
    assert count_parameters(model.regressor.smpl) / 1e6 == pytest.approx(15.0, abs=0.1)


def test_cmr_trains_on_frozen_features_and_evaluates_its_mesh_from_the_checkpoint(setup,
                                                                                   tmp_path):
    cfg, root, ckpt, cache, model = setup
    trainer = trainer_for(frozen(cache, ckpt, "train.epochs=1", "model.prior=none", *SMALL),
                          tmp_path, quiet())
    metrics = trainer.fit()
    assert metrics["regime"] == "frozen_features"
    assert math.isfinite(metrics["val_mpjpe"]) and metrics["train_loss_vertices"] > 0
    _, loaded, body = load_estimator(tmp_path)
    assert loaded.regressor.upsample.indices.shape[1] > 6890  # sampling rebuilt from the body
    out = evaluate_suites(loaded, body, trainer.kinematics, ImageTestSets(root), CPU, limit=4,
                          suites=("table1", "segmentation"))
    assert 0 <= out["seg_fb_acc"] <= 100
    # the metric reads the regressed mesh: SMPL's joint regressor on CMR's vertices, the 14
    # evaluation joints centred on their hips, against the test joints (numpy here)
    reg = body.smpl.J_regressor.double().numpy()
    hips = [LSP14.index(JOINT_INDEX["left_hip"]), LSP14.index(JOINT_INDEX["right_hip"])]
    errors = []
    for batch, pred in predict(loaded, SyntheticDataset(root, "test", "P1"), CPU, limit=4):
        joints = np.einsum("jv,bvc->bjc", reg, pred.vertices.double().numpy())[:, list(LSP14)]
        gt = batch["joints3d"][..., :3].double().numpy()[:, list(LSP14)]
        joints -= joints[:, hips].mean(1, keepdims=True)
        gt -= gt[:, hips].mean(1, keepdims=True)
        errors += list(1000 * np.linalg.norm(joints - gt, axis=-1).mean(-1))
    assert len(errors) == 4 and out["P1_standard_mpjpe"] == pytest.approx(np.mean(errors),
                                                                          rel=1e-4)


def test_table1_sweeps_hmr_cmr_and_hkmr_at_every_preset():
    from tuning.experiment.schema import load_experiment

    exp = load_experiment("table1")
    assert list(exp.configurations) == ["HMR", "CMR", "HKMR"]
    assert all(t.rows == ["HMR", "CMR", "HKMR"] for t in exp.tables)
    sizes = {}
    for preset in exp.presets:
        cmr = exp.resolve(preset, "CMR").model
        assert cmr.regressor == "cmr" and cmr.prior == "none"
        sizes[preset] = (cmr.cmr_channels, cmr.cmr_downsample)
    assert sizes["smoke"] == sizes["cpu_frozen"] == (64, 16)
    assert sizes["paper"] == sizes["paper_frozen"] == (256, 4)  # CMR's own sizes


@pytest.mark.slow
def test_smoke_preset_cmr_learns(tmp_path):
    """Two short epochs of CMR at the smoke preset (64 channels on 431 vertices) bring the
    validation MPJPE of its regressed mesh well below the untrained model's, and below the
    mean pose's (the starting point of the SMPL regressors; CMR starts from no mesh at all).
    Measured: 682 -> 255 mm (PA-MPJPE 276 -> 196 mm); mean pose ~322 mm (3 epochs: 247 mm)."""
    before, after, trainer = smoke_run(tmp_path, "model.regressor=cmr", "train.epochs=2")
    assert after["val_mpjpe"] < 0.85 * before["val_mpjpe"]
    assert after["val_mpjpe"] < 0.9 * mean_pose_mpjpe(trainer.cfg, trainer.val_set,
                                                      trainer.kinematics)


def test_weights_are_refused_on_a_graph_built_from_another_mesh():
    reg = small_regressor()
    state = reg.state_dict()
    fresh = small_regressor()
    fresh.load_state_dict(state)  # the same graph: accepted
    assert torch.equal(fresh.graph_vertices, reg.graph_vertices)
    other = dict(state, graph_vertices=state["graph_vertices"].flip(0))
    with pytest.raises(ValueError, match="trained on a mesh graph other than"):
        fresh.load_state_dict(other)
    coarser = build_regressor(load_config(None, SMALL[:2] + ["model.cmr_downsample=32"]).model, FEAT,
                              MeanParams.default())
    with pytest.raises(ValueError, match="mesh graph other than this body model's"):
        coarser.load_state_dict(state)


def test_vertex_major_group_norm_and_adjacency_compute_the_channel_major_functions():
    """The (B, n, C) layout's GroupNorm and Â are nn.GroupNorm on (B, C, n) and Â @ x per
    sample, values and gradients, at any batch size (the block-diagonal Â is rebuilt) and after
    a deep copy."""
    import copy

    from hkmr.model.cmr import GroupNorm

    reg = small_regressor()
    adjacency = reg.trunk[0].body[5].adjacency
    dense = torch.sparse_coo_tensor(adjacency.indices, adjacency.values,
                                    adjacency.shape, check_invariants=True).to_dense()
    n = dense.shape[0]
    norm = GroupNorm(4, 32)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-0.5, 0.5)
    reference = nn.GroupNorm(4, 32)
    reference.load_state_dict(norm.state_dict())
    for batch, module in ((5, adjacency), (3, adjacency), (5, copy.deepcopy(adjacency))):
        x = torch.randn(batch, n, 32, requires_grad=True)
        grad = torch.randn(batch, n, 32)
        (y,) = torch.autograd.grad(module(x), x, grad)
        expected = dense @ x
        (y_ref,) = torch.autograd.grad(expected, x, grad)
        assert torch.allclose(module(x), expected, atol=1e-5)
        assert torch.allclose(y, y_ref, atol=1e-5)
        out = norm(x)
        ref = reference(x.transpose(1, 2)).transpose(1, 2)
        assert torch.allclose(out, ref, atol=1e-5)
        g1 = torch.autograd.grad(out, [x, norm.weight, norm.bias], grad)
        g2 = torch.autograd.grad(ref, [x, reference.weight, reference.bias], grad)
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g1, g2))
