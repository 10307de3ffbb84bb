"""Files from others and cached files load as data (hkmr/safe_load.py): a torch file whose
pickle would run code is refused before it runs, a truncated cached file is named."""

import numpy as np
import pytest
import torch

from hkmr.data.keypoint_pool import load_split
from hkmr.model.priors import PoseVAE
from hkmr.safe_load import UnsafeFileError, read_npz, safe_torch_load
from hkmr.train.gmm import PoseGMM


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_vae_prior_whose_pickle_runs_code_is_refused(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "vae.pt"
    torch.save({"config": {}, "encoder_state": _RunsCode(marker)}, path)
    with pytest.raises(UnsafeFileError, match=r"vae.pt: refused to load this VAE prior"):
        PoseVAE.load(path)
    assert not marker.exists()


def test_truncated_cached_files_are_named(tmp_path):
    """Finding 8: a truncated cached VAE, GMM or keypoint pool split says which file (it
    said ``PytorchStreamReader failed`` or ``BadZipFile`` with no file)."""
    vae = tmp_path / "vae.pt"
    torch.save({"config": {}, "encoder_state": {"w": torch.zeros(100)}}, vae)
    vae.write_bytes(vae.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"vae.pt: cannot read VAE prior"):
        PoseVAE.load(vae)
    gmm = tmp_path / "gmm.pt"
    gmm.write_bytes(b"")
    with pytest.raises(ValueError, match=r"gmm.pt: cannot read GMM pose prior"):
        PoseGMM.load(gmm)
    np.savez(tmp_path / "train.npz", keypoints=np.zeros((50, 14, 2)))
    split = tmp_path / "train.npz"
    split.write_bytes(split.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"train.npz: cannot read this keypoint pool split"):
        load_split(tmp_path, "train")


def test_numpy_arrays_and_plain_values_load(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"rng": np.random.get_state(), "t": torch.ones(2), "h": [{"a": 1.0}]}, path)
    blob = safe_torch_load(path)
    assert blob["rng"][0] == "MT19937" and blob["rng"][1].dtype == np.uint32
    np.savez(tmp_path / "a.npz", x=np.arange(3))
    assert read_npz(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]
