"""Real SMPL files: a chumpy/scipy-sparse pickle like the official one, .npz, clear errors."""

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from hkmr.body import BodyModel, BodyModelFileError, load_smpl_file
from hkmr.body.procedural import build_procedural_model


class _FakeCh:
    """Imitates chumpy.ch.Ch: pickled by reference to its class, state = its __dict__."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()


@pytest.fixture
def official_like_pickle(tmp_path, monkeypatch):
    """A pickle whose arrays are 'chumpy.ch.Ch' objects and whose J_regressor is csc."""
    ch_module = types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
    ch_module.Ch = _FakeCh
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch_module)
    arrays = build_procedural_model()
    data = {k: _FakeCh(v) for k, v in arrays.items() if k in ("v_template", "shapedirs",
                                                               "posedirs", "weights")}
    data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    data["kintree_table"] = arrays["kintree_table"]
    data["f"] = arrays["f"].astype(np.uint32)
    data["bs_style"] = "lbs"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    return path, arrays


def test_official_like_pickle_loads_without_chumpy(official_like_pickle):
    path, arrays = official_like_pickle
    assert "chumpy" not in sys.modules
    loaded = load_smpl_file(path)
    for key in ("v_template", "shapedirs", "J_regressor", "weights", "f"):
        np.testing.assert_array_equal(loaded[key], arrays[key])
    model = BodyModel(path)
    ref = BodyModel()
    pose, betas = 0.3 * torch.randn(2, 24, 3), torch.randn(2, 10)
    torch.testing.assert_close(model.forward_pose(pose, betas).joints,
                               ref.forward_pose(pose, betas).joints)


def test_npz_with_smpl_keys_loads(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, **build_procedural_model())
    assert BodyModel(path).num_vertices == 6890


def test_missing_file_names_the_path_and_where_to_get_smpl(tmp_path):
    missing = tmp_path / "nope" / "SMPL_NEUTRAL.pkl"
    with pytest.raises(BodyModelFileError) as err:
        BodyModel(missing)
    assert str(missing) in str(err.value) and "smpl.is.tue.mpg.de" in str(err.value)


def test_missing_key_is_named(tmp_path):
    arrays = build_procedural_model()
    del arrays["J_regressor"]
    path = tmp_path / "model.npz"
    np.savez(path, **arrays)
    with pytest.raises(BodyModelFileError, match=r"lacks the key 'J_regressor'") as err:
        load_smpl_file(path)
    assert str(path) in str(err.value)


def test_wrong_shape_is_named(tmp_path):
    arrays = build_procedural_model()
    arrays["weights"] = arrays["weights"][:, :23]
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(arrays))
    with pytest.raises(BodyModelFileError, match=r"'weights' has shape \(6890, 23\)"):
        load_smpl_file(path)


def test_garbage_file_is_reported(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(BodyModelFileError, match="cannot read body model file"):
        load_smpl_file(path)


class _RunsCode:
    """What a hostile .pkl holds: unpickling it calls ``os.system``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path, capsys):
    """Finding 6: ``hkmr body info --model evil.pkl`` names the file and the callable, exits
    2 without a traceback, and the payload never runs (its marker file does not appear)."""
    from hkmr.body.smpl_file import UnsafeBodyModelFileError
    from hkmr.cli import main

    marker = tmp_path / "payload-ran"
    arrays = build_procedural_model()
    arrays["bs_style"] = _RunsCode(marker)  # beside real arrays, as a doctored download
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(UnsafeBodyModelFileError, match=r"evil.pkl: refused .*posix.system"):
        load_smpl_file(evil)
    assert main(["body", "info", "--model", str(evil)]) == 2
    err = capsys.readouterr().err
    assert "evil.pkl: refused to load this body model" in err and "Traceback" not in err
    assert not marker.exists()


def test_an_npz_with_an_object_array_is_read_without_pickle(tmp_path):
    """SMPL keys of an .npz are read with allow_pickle=False: an object array among them is
    refused with the file named."""
    arrays = build_procedural_model()
    arrays["f"] = np.array([object()] * 3, dtype=object)
    path = tmp_path / "model.npz"
    np.savez(path, **arrays)
    with pytest.raises(BodyModelFileError, match=r"model.npz.*allow_pickle"):
        load_smpl_file(path)
