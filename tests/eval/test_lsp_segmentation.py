"""Table 5 (left) on SPIN-format LSP-style files: an oracle's mesh rendered in the crop and
taken back to the original image scores ~100 % against the fixture's masks; the uncrop lands
where the crop came from; the part-label order is applied; missing masks name the file."""

import numpy as np
import pytest
import torch
from conftest import model_with_data_statistics
from spin_fixture import write_spin_fixture
from test_suites import TINY, Oracle

from hkmr.body.kinematics import JointKinematics
from hkmr.config import load_config
from hkmr.data.datasets import SyntheticDataset
from hkmr.eval.lsp import evaluate_lsp_segmentation, uncrop

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fixture(tmp_path_factory, body_model):
    _, root = model_with_data_statistics(load_config(None, TINY), "test")
    out = tmp_path_factory.mktemp("lsp")
    npz = write_spin_fixture(root, out, body_model)
    oracle = Oracle(SyntheticDataset(root, "test", "P1"), JointKinematics(body_model))
    return npz, out, oracle


def test_oracle_scores_near_perfect_segmentation_in_the_original_image(fixture, body_model):
    npz, out, oracle = fixture
    m = evaluate_lsp_segmentation(oracle, body_model, npz, out, CPU, size=64)
    assert m["lsp_seg_images"] == 16
    assert m["lsp_seg_fb_acc"] > 97 and m["lsp_seg_fb_f1"] > 0.9
    assert m["lsp_seg_part_acc"] > 95 and m["lsp_seg_part_f1"] > 0.8
    swapped = evaluate_lsp_segmentation(oracle, body_model, npz, out, CPU, size=64,
                                        part_order=(1, 2, 4, 3, 6, 5))  # left <-> right
    assert swapped["lsp_seg_part_acc"] < m["lsp_seg_part_acc"] - 1
    assert swapped["lsp_seg_fb_acc"] == m["lsp_seg_fb_acc"]


def test_uncrop_puts_the_crop_back_where_it_came_from():
    crop = np.zeros((8, 8), np.uint8)
    crop[2, 5] = 7
    # a 16 px square with its top-left pixel at (x, y) = (10, 4): centre (17.5, 11.5)
    back = uncrop(crop, (17.5, 11.5), 16 / 200, (30, 40))
    ys, xs = np.nonzero(back)
    assert set(ys) == {4 + 4, 4 + 5} and set(xs) == {10 + 10, 10 + 11} and back.max() == 7


def test_missing_masks_name_the_file(fixture, body_model, tmp_path):
    npz, out, oracle = fixture
    with pytest.raises(FileNotFoundError, match=r"00000_segmentation\.png: maskname\[0\]"):
        evaluate_lsp_segmentation(oracle, body_model, npz, out, CPU, size=64,
                                  mask_root=tmp_path)
    with np.load(npz) as f:
        data = {k: f[k] for k in f.files if k != "partname"}
    np.savez(tmp_path / "lsp.npz", **data)
    with pytest.raises(ValueError, match=r"lsp\.npz: key 'partname' missing"):
        evaluate_lsp_segmentation(oracle, body_model, tmp_path / "lsp.npz", out, CPU, size=64)
