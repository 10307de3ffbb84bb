"""``hkmr data check``: on the SPIN-format fixture folder (Table 1 ready), an empty folder
(everything missing, with where to get it, exit 1) and a folder with a malformed file (the key
or shape named, exit 1)."""

import shutil

import numpy as np
import pytest
from spin_fixture import h36m_style_regressor, write_spin_fixture

from hkmr.cli import main
from hkmr.config import load_config
from hkmr.data.synthetic import ensure_synthetic

TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64"]


def _lines(out, path):
    return [line for line in out.splitlines() if f" {path} " in f"{line} "]


@pytest.fixture(scope="module")
def fixture_folder(tmp_path_factory, body_model):
    root = tmp_path_factory.mktemp("spin_data")
    synth = ensure_synthetic(load_config(None, TINY).data, progress=False)
    reg = h36m_style_regressor(body_model)
    npz = write_spin_fixture(synth, root, body_model, regressor=reg)
    (root / "dataset_extras").mkdir()
    shutil.copy(npz, root / "dataset_extras" / "h36m_valid_protocol1.npz")
    npz.rename(root / "dataset_extras" / "h36m_valid_protocol2.npz")
    np.save(root / "J_regressor_h36m.npy", reg)
    return root


def test_fixture_folder_is_table1_ready(fixture_folder, capsys):
    assert main(["data", "check", str(fixture_folder), "--images", str(fixture_folder)]) == 0
    out = capsys.readouterr().out
    (p1,) = _lines(out, "dataset_extras/h36m_valid_protocol1.npz")
    assert p1.startswith("found") and "Table 1 P1" in p1
    assert "16 rows" in out and f"all images under {fixture_folder}" in out
    assert _lines(out, "J_regressor_h36m.npy")[0].startswith("found")
    assert _lines(out, "dataset_extras/mpii_train.npz")[0].startswith("missing")
    assert "--need table1: everything it needs is here" in out
    assert main(["data", "check", str(fixture_folder), "--need", "train"]) == 1


def test_empty_folder_lists_every_piece_missing_with_its_source(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert sum(line.startswith("missing ") for line in out.splitlines()) == 13
    assert "fetch_data.sh" in out
    assert "smpl.is.tue.mpg.de" in out and "3 file(s) missing or malformed" in out
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2


def test_malformed_file_names_key_or_shape(fixture_folder, tmp_path, capsys):
    shutil.copytree(fixture_folder / "dataset_extras", tmp_path / "dataset_extras")
    with np.load(tmp_path / "dataset_extras" / "h36m_valid_protocol2.npz") as npz:
        data = dict(npz)
    data["S"] = data["S"][:, :17, :3]
    np.savez(tmp_path / "dataset_extras" / "h36m_valid_protocol2.npz", **data)
    np.save(tmp_path / "J_regressor_h36m.npy", np.zeros((24, 50), np.float32))
    np.savez(tmp_path / "smpl_mean_params.npz", pose=np.zeros(72), shape=np.zeros(10),
             cam=np.zeros(3))
    assert main(["data", "check", str(tmp_path), "--images", str(tmp_path / "none")]) == 1
    out = capsys.readouterr().out
    p2 = "\n".join(_lines(out, "dataset_extras/h36m_valid_protocol2.npz"))
    assert p2.startswith("malformed") and "'S' has shape (16, 17, 3)" in out
    assert "16 image(s) missing under" in out  # protocol 1's images are not under --images
    assert "shape (24, 50) (float32), expected (17, V) floats" in out
    assert "key 'pose' has shape (72,), expected (144,)" in out
