"""The Human3.6M path (SPIN's eval.py setup) with a constructed regressor that picks known
vertices: hand-computed MPJPE proves it uses the regressor, SPIN's 14-joint subset and the
pelvis centring; bad real-data input names the file and key."""

import numpy as np
import pytest
import torch

from hkmr.data.datasets import SpinDataset
from hkmr.data.h36m import (H36M_TO_J24, J24_TO_J14, find_regressor,
                            load_regressor, s24_from_h36m17)
from hkmr.data.spin import load_npz
from hkmr.eval.h36m import h36m_errors, h36m_joints14

V = 40
RNG = np.random.default_rng(4)
VERTS = RNG.normal(0, 0.4, (V, 3))


#: SPIN's 14 evaluation joints among the 17 H36M ones (its constants.H36M_TO_J14), written out
#: here so that the test does not read the constant it checks
SPIN_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]


def _picking_regressor():
    """H36M joint j = vertex 2 j + 1 (vertex 0 and the even ones are distractors)."""
    reg = np.zeros((17, V), np.float32)
    reg[np.arange(17), 2 * np.arange(17) + 1] = 1.0
    return reg


def _errors(joints17_gt):
    reg = _picking_regressor()
    s24 = torch.from_numpy(s24_from_h36m17(joints17_gt))[None].float()
    return {k: v.item() for k, v in h36m_errors(torch.from_numpy(reg),
                                                  torch.from_numpy(VERTS)[None].float(),
                                                  s24).items()}


def test_the_regressor_picks_the_vertices_and_centres_on_its_pelvis():
    j14 = h36m_joints14(torch.from_numpy(_picking_regressor()), torch.from_numpy(VERTS)[None])
    expect = VERTS[[2 * j + 1 for j in SPIN_J14]] - VERTS[1]
    np.testing.assert_allclose(j14[0].numpy(), expect, atol=1e-6)


def test_hand_computed_mpjpe_shows_subset_and_centring():
    truth = VERTS[1::2][:17].copy()  # what the picking regressor reads off VERTS
    assert _errors(truth)["mpjpe"] == pytest.approx(0, abs=1e-4)
    moved = truth.copy()
    moved[6] += (0, 0.028, 0)  # H36M R ankle, one of the 14: 28 mm / 14 joints = 2 mm
    assert _errors(moved)["mpjpe"] == pytest.approx(2.0, abs=1e-3)
    moved = truth.copy()
    moved[7] += (0.5, 0.5, 0)  # H36M spine: not among the 14
    assert _errors(moved)["mpjpe"] == pytest.approx(0, abs=1e-4)
    moved = truth.copy()
    moved[0] += (0.007, 0, 0)  # the pelvis: S is centred on it, so all 14 are 7 mm off
    got = _errors(moved)
    assert got["mpjpe"] == pytest.approx(7.0, abs=1e-3)  # hip-midpoint centring would say 0
    assert got["pa_mpjpe"] == pytest.approx(0, abs=1e-3)  # a translation: Procrustes removes it


def test_pa_mpjpe_aligns_the_prediction_to_the_ground_truth():
    """A non-zero PA-MPJPE: the ground truth is the picked joints at 0.4x the size, rotated,
    with 15 mm noise; the expected value is an independent Procrustes (numpy SVD) of the
    predicted 14 joints onto the true ones. The reverse alignment would be ~2.5x off."""
    from test_metrics import procrustes_error

    rng = np.random.default_rng(7)
    truth = VERTS[1::2][:17]
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    gt17 = 0.4 * truth @ turn.T + rng.normal(0, 0.015, truth.shape)
    pred14 = truth[SPIN_J14] - truth[0]
    gt14 = gt17[SPIN_J14] - gt17[0]
    got = _errors(gt17)
    assert got["pa_mpjpe"] == pytest.approx(procrustes_error(pred14, gt14), rel=1e-3)
    assert got["pa_mpjpe"] > 5
    assert procrustes_error(gt14, pred14) > 2 * got["pa_mpjpe"]
    assert got["mpjpe"] == pytest.approx(1000 * np.linalg.norm(pred14 - gt14, axis=1).mean(),
                                         rel=1e-4)


def test_s24_follows_spins_preprocessing_and_misses_head_top():
    s = s24_from_h36m17(VERTS[:17])
    assert (s[:, 3] > 0).sum() == 17 and s[13, 3] == 0 and s[14, :3].tolist() == [0, 0, 0]
    assert J24_TO_J14 == (*range(13), 18) and H36M_TO_J24[10] == 18
    s[18, 3] = 0  # a 14-joint set lacking a joint is skipped, not scored
    err = h36m_errors(torch.from_numpy(_picking_regressor()),
                      torch.from_numpy(VERTS)[None].float(), torch.from_numpy(s)[None].float())
    assert np.isnan(err["mpjpe"].item())


def test_regressor_of_the_wrong_size_names_file_and_shape(tmp_path):
    np.save(tmp_path / "J_regressor_h36m.npy", np.zeros((17, 6890), np.float32))
    with pytest.raises(ValueError, match=r"J_regressor_h36m\.npy.*\(17, 6890\).*\(17, 40\)"):
        load_regressor(tmp_path / "J_regressor_h36m.npy", V)
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npy.*not a plain"):
        load_regressor(tmp_path / "obj.npy", V)
    with pytest.raises(FileNotFoundError, match="fetch_data"):
        load_regressor(tmp_path / "none.npy", V)
    (tmp_path / "dataset_extras").mkdir()
    assert find_regressor(tmp_path / "dataset_extras") == tmp_path / "J_regressor_h36m.npy"


def _npz(path, **over):
    n = 2
    data = dict(imgname=np.array(["a.jpg", "b.jpg"]), center=np.full((n, 2), 50.0),
                scale=np.ones(n), S=np.zeros((n, 24, 4)))
    data.update(over)
    np.savez(path, **data)
    return path


def test_wrong_s_shape_and_object_arrays_name_file_and_key(tmp_path):
    with pytest.raises(ValueError, match=r"bad_s\.npz.*'S' has shape \(2, 17, 3\)"):
        load_npz(_npz(tmp_path / "bad_s.npz", S=np.zeros((2, 17, 3))))
    with pytest.raises(ValueError, match=r"obj\.npz.*key 'scale' holds an object array"):
        load_npz(_npz(tmp_path / "obj.npz", scale=np.array([1.0, None], dtype=object)))


def test_missing_image_names_file_and_row(tmp_path):
    ds = SpinDataset(_npz(tmp_path / "h36m.npz"), tmp_path, size=32)
    with pytest.raises(FileNotFoundError, match=r"a\.jpg: image missing \(imgname\[0\] of .*h36m\.npz"):
        ds[0]
