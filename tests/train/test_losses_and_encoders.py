"""Eq. 3 losses on hand-made cases; encoders and HMR baseline shapes."""

import pytest
import torch

from hkmr.config import make_config
from hkmr.model import MeanParams, MeshEstimator, RegressorOutput, build_regressor, pose_body
from hkmr.model.encoder import EncoderWeightsError, build_encoder
from hkmr.model.estimator import weak_perspective
from hkmr.model.priors import PoseVAE
from hkmr.train.losses import total_loss


@pytest.fixture
def gt(body_model):
    torch.manual_seed(0)
    pose = 0.3 * torch.randn(4, 24, 3)
    betas = torch.randn(4, 10)
    joints = body_model.forward_pose(pose, betas).joints
    cam = torch.tensor([[0.9, 0.05, -0.1]]).expand(4, 3)
    ones = torch.ones(4, 24, 1)
    batch = {"pose": pose.flatten(1), "betas": betas,
             "joints3d": torch.cat([joints + torch.tensor([0.1, 0.2, 3.0]), ones], -1),
             "keypoints": torch.cat([weak_perspective(joints, cam), ones], -1),
             "has_smpl": torch.ones(4), "has_joints3d": torch.ones(4)}
    out = RegressorOutput(betas=betas.clone(), cam=cam.clone(), pose_aa=pose.clone())
    return batch, out


def joints_of(body_model):
    return lambda out: pose_body(body_model, out).joints


def test_loss_is_zero_at_the_ground_truth(body_model, gt):
    batch, out = gt
    loss, terms = total_loss([out], batch, joints_of(body_model), make_config().loss)
    assert loss.item() < 1e-5, terms


def test_known_offsets_give_known_losses(body_model, gt):
    batch, out = gt
    weights = make_config({"loss": {"w_3d": 1, "w_2d": 1, "w_smpl": 1, "w_shape": 1}}).loss
    shifted = RegressorOutput(betas=out.betas + 0.5, cam=out.cam + torch.tensor([0, 0.1, 0.1]),
                              pose_aa=out.pose_aa)
    # 2D keypoints move by 0.1 in x and y; β off by 0.5 in 10 dims; the 3D loss changes with β
    _, terms = total_loss([shifted, shifted], batch, joints_of(body_model), weights)
    assert terms["smpl_shape"].item() == pytest.approx(2 * 10 * 0.25, rel=1e-5)
    assert terms["smpl_pose"].item() == pytest.approx(0.0, abs=1e-6)
    # only the camera offset: 2D L1 = 0.1 per coordinate, twice (T = 2)
    cam_only = RegressorOutput(betas=out.betas, cam=out.cam + torch.tensor([0, 0.1, 0.1]),
                               pose_aa=out.pose_aa)
    _, terms = total_loss([cam_only, cam_only], batch, joints_of(body_model), weights)
    assert terms["2d"].item() == pytest.approx(0.2, rel=1e-4)
    assert terms["3d"].item() == pytest.approx(0.0, abs=1e-5)


def test_each_weight_scales_its_own_term(body_model, gt):
    """Distinct λ for every term (the loss-weight sweep must move the term it names), both 2D
    keypoint sets (w_gt_2d, w_openpose inside w_2d)."""
    batch, out = gt
    weights = make_config({"loss": {"w_3d": 2, "w_2d": 3, "w_smpl": 5, "w_shape": 7,
                                    "w_gt_2d": 1.5, "w_openpose": 0.25}}).loss
    openpose = batch["keypoints"].clone()
    openpose[..., 0] += 0.3
    batch = dict(batch, openpose=openpose)
    cam_only = RegressorOutput(betas=out.betas, cam=out.cam + torch.tensor([0, 0.1, 0.1]),
                               pose_aa=out.pose_aa)
    _, terms = total_loss([cam_only], batch, joints_of(body_model), weights)
    # annotated keypoints: |0.1| in x and y; OpenPose: |0.1 - 0.3| in x, |0.1| in y
    assert terms["2d"].item() == pytest.approx(3 * (1.5 * 0.1 + 0.25 * 0.15), rel=1e-4)
    assert terms["3d"].item() == pytest.approx(0.0, abs=1e-5)
    shape_only = RegressorOutput(betas=out.betas + 0.5, cam=out.cam, pose_aa=out.pose_aa)
    _, terms = total_loss([shape_only], batch, joints_of(body_model), weights)
    assert terms["smpl_shape"].item() == pytest.approx(7 * 10 * 0.25, rel=1e-5)
    assert terms["smpl_pose"].item() == pytest.approx(0.0, abs=1e-6)


def test_smpl_loss_averages_over_the_samples_with_smpl_truth(body_model, gt):
    """A mixed 3D/2D batch: samples 0 and 2 have SMPL parameters, 1 and 3 do not (their
    errors are larger, and must not count). The pose term is the squared Frobenius distance
    of the rotation matrices (scipy's, not the library's) over 24 joints."""
    from scipy.spatial.transform import Rotation

    batch, out = gt
    weights = make_config({"loss": {"w_smpl": 1, "w_shape": 1}}).loss
    has_smpl = torch.tensor([1.0, 0.0, 1.0, 0.0])
    batch = dict(batch, has_smpl=has_smpl)
    twist = torch.zeros(4, 24, 3)
    twist[:, 5] = torch.tensor([[0.2, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -0.3, 0.1],
                                [0.0, 2.0, 0.0]])
    shift = torch.tensor([0.5, 3.0, -0.4, 2.0])[:, None].expand(4, 10)
    moved = RegressorOutput(betas=out.betas + shift, cam=out.cam, pose_aa=out.pose_aa + twist)
    _, terms = total_loss([moved], batch, joints_of(body_model), weights)

    def rotations(aa):
        return Rotation.from_rotvec(aa.double().reshape(-1, 3).numpy()).as_matrix()

    per_sample = ((rotations(moved.pose_aa) - rotations(out.pose_aa)) ** 2).reshape(
        4, -1).sum(1) / 24
    assert terms["smpl_pose"].item() == pytest.approx((per_sample[0] + per_sample[2]) / 2,
                                                      rel=1e-4)
    assert terms["smpl_shape"].item() == pytest.approx(10 * (0.25 + 0.16) / 2, rel=1e-5)


def test_unannotated_entries_are_ignored(body_model, gt):
    batch, out = gt
    weights = make_config().loss
    bad = RegressorOutput(betas=out.betas + 1, cam=out.cam, pose_aa=out.pose_aa + 0.3)
    batch = dict(batch, has_smpl=torch.zeros(4), has_joints3d=torch.zeros(4))
    batch["keypoints"] = batch["keypoints"].clone()
    batch["keypoints"][..., 2] = 0
    loss, terms = total_loss([bad], batch, joints_of(body_model), weights)
    assert loss.item() == 0.0, terms


def test_prior_term_enters_with_its_weight(body_model, gt):
    batch, out = gt
    vae = PoseVAE().freeze()
    w = make_config({"loss": {"w_prior": 2.0}}).loss
    _, terms = total_loss([out], batch, joints_of(body_model), w, prior=vae)
    assert terms["prior"].item() == pytest.approx(2.0 * vae.prior_loss(out.pose_aa).item())


def test_encoders_and_estimators_produce_the_paper_shapes():
    net, dim = build_encoder("small_cnn")
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, dim) == (2, 512)
    for regressor in ("hkmr", "hmr"):
        cfg = make_config({"model": {"regressor": regressor, "encoder": "small_cnn"}})
        outs = MeshEstimator(cfg.model)(torch.randn(2, 3, 64, 64))
        assert len(outs) == 3 and outs[-1].pose.shape == (2, 24, 3, 3)


def test_parameter_counts_with_resnet50_match_the_paper():
    """Paper: HKMR 26.2M, HMR 26.8M (ours: HMR has HMR's ReLU layers, 26.98M)."""
    counts = {}
    for regressor in ("hkmr", "hmr"):
        model = MeshEstimator(make_config({"model": {"regressor": regressor}}).model)
        counts[regressor] = sum(p.numel() for p in model.parameters()) / 1e6
    assert counts["hkmr"] == pytest.approx(26.2, abs=0.1)
    assert counts["hmr"] == pytest.approx(26.9, abs=0.15)
    assert counts["hkmr"] < counts["hmr"]


def test_pretrained_weights_unavailable_offline_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    try:
        build_encoder("resnet50", pretrained=True)
    except EncoderWeightsError as err:
        assert "model.pretrained=false" in str(err)
    else:  # a machine with network access downloaded them: that is fine too
        assert any(tmp_path.rglob("resnet50-*.pth"))
    with pytest.raises(EncoderWeightsError, match="small_cnn has no pretrained weights"):
        build_encoder("small_cnn", pretrained=True)


def test_hmr_iterations_refine_from_the_mean():
    cfg = make_config({"model": {"regressor": "hmr", "hmr_hidden": 64}})
    reg = build_regressor(cfg.model, 32, MeanParams.default()).eval()
    outs = reg(torch.randn(3, 32))
    assert len(outs) == 3
    assert not torch.equal(outs[0].betas, outs[2].betas)
