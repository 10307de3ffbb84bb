"""SPIN's smpl_mean_params.npz as the regressors' start (data.mean_params): the 6D rotations
(first two columns of each matrix, SPIN's (3, 2) layout) come back as the axis-angle they were
made from, and a malformed file names the key."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hkmr.checkpoint import mean_params_for
from hkmr.config import load_config
from hkmr.data.spin import load_mean_params


def _write(path, rotvec, **over):
    mats = Rotation.from_rotvec(rotvec).as_matrix()  # (24, 3, 3)
    values = {"pose": mats[:, :, :2].reshape(144), "shape": np.arange(10.0) / 10,
              "cam": np.array([0.9, 0.01, -0.02])}
    values.update(over)
    np.savez(path, **values)
    return path


def test_mean_params_file_starts_the_regressors(tmp_path):
    rotvec = np.random.default_rng(0).normal(0, 0.6, (24, 3))
    rotvec[0] = (np.pi * 0.9, 0, 0)
    path = _write(tmp_path / "smpl_mean_params.npz", rotvec)
    got = load_mean_params(path)
    np.testing.assert_allclose(got["pose"].reshape(24, 3), rotvec, atol=1e-6)
    mean = mean_params_for(load_config(None, [f"data.mean_params={path}"]))
    torch.testing.assert_close(mean.cam, torch.tensor([0.9, 0.01, -0.02]))
    torch.testing.assert_close(mean.betas, torch.arange(10.0) / 10)
    default = mean_params_for(load_config(None))
    assert not torch.allclose(default.pose, mean.pose)


def test_malformed_mean_params_name_file_and_key(tmp_path):
    path = _write(tmp_path / "bad.npz", np.zeros((24, 3)), pose=np.zeros(72))
    with pytest.raises(ValueError, match=r"bad\.npz: key 'pose' has shape \(72,\), expected"):
        load_mean_params(path)
    with pytest.raises(FileNotFoundError, match="none.npz"):
        load_mean_params(tmp_path / "none.npz")
