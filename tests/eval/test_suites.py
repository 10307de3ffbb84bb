"""Evaluation suites (Sec. 4; Tables 1, 4, 5, Fig. 6) on a tiny rendered test split: an
oracle that answers with the ground truth scores ~0 mm and ~100 %, the shared-pass shortcuts
(P2 from P1's frontal images, one pass per occluder column) equal separate passes, the Fig. 6
rule occludes joint LSP14[i mod 14], segmentation scores match hand-counted pixels."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import model_with_data_statistics
import torch
from torch import nn
from torch.utils.data import Subset

from hkmr.body.kinematics import JointKinematics
from hkmr.body.joints import JOINT_INDEX, LSP14
from hkmr.config import load_config
from hkmr.data.datasets import SyntheticDataset
from hkmr.data.sampler import fit_weak_perspective
from hkmr.data.source import ImageTestSets, JointCycle
from hkmr.data.views import FRONTAL_VIEW
from hkmr.eval.predict import predict
from hkmr.eval.suites import COLUMNS, evaluate_joints, evaluate_suites
from hkmr.eval.results import format_value, table1_markdown, write_results
from hkmr.eval.segmentation import PART_GROUPS, TASKS, confusion, relabel, scores
from hkmr.model.output import RegressorOutput

TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64",
        "model.encoder=small_cnn", "train.batch_size=8", "train.steps_per_epoch=3",
        "train.prior_corpus=500", "train.lr=1e-3", "model.prior=discriminator"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(body_model):
    cfg = load_config(None, TINY)
    model, root = model_with_data_statistics(cfg, "test")
    return cfg, root, model, JointKinematics(body_model)


class Oracle(nn.Module):
    """Answers each image with the ground truth of the nearest stored test image (the camera
    is the least-squares weak perspective of the true joints onto the true keypoints)."""

    def __init__(self, dataset, kinematics):
        super().__init__()
        items = [dataset[i] for i in range(len(dataset))]
        self.images = torch.stack([it["img"].flatten() for it in items])
        self.pose = torch.stack([it["pose"].view(24, 3) for it in items])
        self.betas = torch.stack([it["betas"] for it in items])
        joints = kinematics(self.pose, self.betas)
        self.cam = torch.stack([torch.as_tensor(fit_weak_perspective(
            j.numpy(), it["keypoints"].numpy()), dtype=torch.float32)
            for j, it in zip(joints, items)])

    def forward(self, img):
        k = torch.cdist(img.flatten(1), self.images).argmin(1)
        return [RegressorOutput(self.betas[k], self.cam[k], pose_aa=self.pose[k])]


def test_an_oracle_scores_zero_error_and_near_perfect_segmentation(setup, body_model):
    cfg, root, _, kin = setup
    oracle = Oracle(SyntheticDataset(root, "test", "P1"), kin)
    m = evaluate_suites(oracle, body_model, kin, ImageTestSets(root), CPU,
                           suites=("table1", "invisible", "segmentation"))
    for p in ("P1", "P2"):  # predicted (body frame) and true (camera frame) joints agree
        assert m[f"{p}_standard_mpjpe"] < 0.05 and m[f"{p}_standard_mpjpe_24"] < 0.05
        assert m[f"{p}_standard_pa_mpjpe"] < 0.05
    assert m["P1_standard_images"] == 16 and m["P2_standard_images"] == 4
    # weak perspective vs the renderer's full perspective: about a pixel at 64 px
    assert m["invisible_joints"] > 0 and m["invisible_mpjpe_2d_px"] < 1.5
    assert m["all_pck"] > 90 and m["pck_threshold_px"] == pytest.approx(0.05 * 64)
    assert m["seg_fb_acc"] > 97 and m["seg_fb_f1"] > 0.93
    assert m["seg_part_acc"] > 95 and m["seg_part_f1"] > 0.85
    assert m["seg_images"] == 16


def test_p2_and_occlusion_columns_equal_separate_passes(setup, body_model):
    cfg, root, model, kin = setup
    m = evaluate_suites(model, body_model, kin, ImageTestSets(root), CPU, suites=("table1",))
    chains = ("root", "head", "right_arm", "left_arm", "right_leg", "left_leg")
    assert set(m) == ({f"{p}_{c}_{k}" for p in ("P1", "P2") for c in COLUMNS
                       for k in ("mpjpe", "pa_mpjpe", "mpjpe_24", "images")}
                      | {f"{p}_{c}_ee_{chain}" for p in ("P1", "P2") for c in COLUMNS
                         for chain in chains}
                      | {f"{p}_{c}_occluded_mpjpe" for p in ("P1", "P2") for c in COLUMNS[1:]})
    for column in COLUMNS:
        occ = None if column == "standard" else column
        for p in ("P1", "P2") if column in ("standard", "rectangle") else ("P1",):
            ref = evaluate_joints(model, kin, SyntheticDataset(root, "test", p, occlusion=occ),
                                  CPU)
            for k in ("mpjpe", "pa_mpjpe", "mpjpe_24"):
                assert m[f"{p}_{column}_{k}"] == pytest.approx(ref[k], rel=1e-6), (p, column, k)
    assert m["P1_bar_mpjpe"] != m["P1_standard_mpjpe"], "the occluder reached the model"


def test_limit_keeps_that_many_images_per_protocol(setup, body_model):
    cfg, root, model, kin = setup
    m = evaluate_suites(model, body_model, kin, ImageTestSets(root), CPU, limit=3,
                           suites=("table1", "invisible", "segmentation"))
    assert m["P1_standard_images"] == 3 and m["P2_rectangle_images"] == 3
    assert m["seg_images"] == 3
    ref = evaluate_joints(model, kin, SyntheticDataset(root, "test", "P2"), CPU, limit=3)
    assert m["P2_standard_mpjpe"] == pytest.approx(ref["mpjpe"], rel=1e-6)


def test_degree_curves_occlude_each_evaluation_joint_in_turn(setup, body_model):
    cfg, root, model, kin = setup
    p1 = SyntheticDataset(root, "test", "P1")
    cycle = JointCycle(p1, "circle", 2)
    for i in range(len(p1)):
        item = cycle[i]
        assert item["occluded"][LSP14[i % 14]] == 1, i
        assert torch.equal(item["keypoints"], p1[i]["keypoints"])
    m = evaluate_suites(model, body_model, kin, ImageTestSets(root), CPU, suites=("degrees",),
                           degree_limit=5)
    assert set(m) == {f"{p}degree_{k}_{d}_{e}" for k in ("bar", "circle", "rectangle")
                      for d in range(1, 6) for e in ("mpjpe", "occluded_mpjpe")
                      for p in ("", "P2_")}
    ref = evaluate_joints(model, kin, JointCycle(p1, "rectangle", 4), CPU, limit=5)
    assert m["degree_rectangle_4_mpjpe"] == pytest.approx(ref["mpjpe"], rel=1e-6)
    # P2: the frontal images among the same 5 (the per-image errors of the P1 pass)
    frontal = [i for i in range(5) if p1[i]["view"] == FRONTAL_VIEW]
    per_image = [evaluate_joints(model, kin, Subset(JointCycle(p1, "rectangle", 4), [i]),
                                 CPU)["mpjpe"] for i in frontal]
    assert frontal and m["P2_degree_rectangle_4_mpjpe"] == pytest.approx(np.mean(per_image),
                                                                          rel=1e-5)
    assert len({round(v, 4) for v in m.values()}) > 1, "degree and kind change the images"
    # the occluded joints' own error, not diluted over 14 joints: per image, the mean
    # hip-centred error of the evaluation joints under the occluder (which covers joint
    # LSP14[i mod 14], and may cover others), computed here from the predicted joints
    own = []
    hips = [JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]]
    for batch, out in predict(model, JointCycle(p1, "rectangle", 4), CPU, limit=5):
        pred = kin.joints_of(out).float().numpy()
        gt = batch["joints3d"][..., :3].numpy()
        for i in range(len(pred)):
            hidden = [j for j in LSP14 if batch["occluded"][i, j] > 0]
            errors = [np.linalg.norm((pred[i, j] - pred[i, hips].mean(0))
                                     - (gt[i, j] - gt[i, hips].mean(0))) for j in hidden]
            own.append(1000 * np.mean(errors))
    occluded = m["degree_rectangle_4_occluded_mpjpe"]
    assert len(own) == 5 and occluded == pytest.approx(np.mean(own), rel=1e-4)
    assert abs(occluded - m["degree_rectangle_4_mpjpe"]) > 1e-3  # both finite (approx above)


def test_invisible_joints_are_the_renderers_self_occluded_joints(setup, body_model):
    cfg, root, model, kin = setup
    m = evaluate_suites(model, body_model, kin, ImageTestSets(root), CPU, suites=("invisible",))
    p1 = SyntheticDataset(root, "test", "P1")
    hidden = sum(int((p1[i]["visible"] == 0).sum()) for i in range(len(p1)))
    assert m["invisible_joints"] == hidden and m["all_joints"] == 24 * len(p1)
    assert 0 <= m["invisible_pck"] <= 100 and m["invisible_mpjpe_2d_px"] > 0


def test_unknown_suite_is_refused(setup, body_model):
    cfg, root, model, kin = setup
    with pytest.raises(ValueError, match="unknown evaluation suite"):
        evaluate_suites(model, body_model, kin, ImageTestSets(root), CPU, suites=("table9",))


# -- segmentation scores against hand-counted pixels ----------------------------------------
def test_confusion_scores_on_a_hand_counted_case():
    gt = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 0]])
    conf = confusion(pred, gt, 3)
    assert conf.tolist() == [[2, 1, 0], [1, 2, 0], [1, 0, 1]]
    acc, f1 = scores(conf)
    assert acc == pytest.approx(5 / 8)
    # F1 per class: 2TP / (2TP + FP + FN): bg 4/(4+2+1)... counted by hand
    f1_bg, f1_1, f1_2 = 4 / 7, 4 / 6, 2 / 3
    assert f1 == pytest.approx((f1_bg + f1_1 + f1_2) / 3)
    assert math.isnan(scores(torch.zeros(2, 2, dtype=torch.long))[0])


def test_part_groups_cover_every_smpl_part_once():
    joints = [j for names in PART_GROUPS.values() for j in names]
    assert sorted(joints) == sorted(JOINT_INDEX) and len(PART_GROUPS) == TASKS["part"] - 1
    parts = torch.arange(25)
    coarse = relabel(parts, "part")
    assert coarse[0] == 0 and (coarse[1:] > 0).all()
    name = list(PART_GROUPS)
    assert name[coarse[JOINT_INDEX["left_elbow"] + 1] - 1] == "left_arm"
    assert name[coarse[JOINT_INDEX["right_hip"] + 1] - 1] == "right_leg"
    assert relabel(parts, "fb").tolist() == [0] + [1] * 24


# -- reports and checkpoints ----------------------------------------------------------------
def test_table1_markdown_has_the_papers_shape_for_values_and_intervals():
    values = {f"{p}_{c}_mpjpe": 70.0 + i for i, (p, c) in enumerate(
        (p, c) for p in ("P1", "P2") for c in COLUMNS)}
    lines = table1_markdown(values).strip().splitlines()
    assert lines[0] == "| MPJPE | Standard | Bar | Circle | Rectangle |"
    assert lines[2] == "| P1 | 70.00 | 71.00 | 72.00 | 73.00 |"
    assert lines[3].startswith("| P2 | 74.00") and len(lines) == 4
    agg = {"P1_bar_mpjpe": (71.084, 1.2, 3), "P2_bar_mpjpe": (70.0, math.nan, 1)}
    text = table1_markdown(agg)
    assert "| P1 | — | 71.08 ± 1.20 (n=3) | — | — |" in text and "70.00 (n=1)" in text
    assert format_value(float("nan")) == "—"


def test_results_are_written_as_json_parquet_and_markdown(tmp_path):
    metrics = {"P1_standard_mpjpe": 80.5, "P2_standard_mpjpe": float("nan"),
               "degree_bar_1_mpjpe": 90.0}
    paths = write_results(tmp_path, metrics, {"checkpoint": "x.pt"})
    blob = json.loads(paths["json"].read_text())
    assert blob["metrics"] == {"P1_standard_mpjpe": 80.5, "P2_standard_mpjpe": None,
                               "degree_bar_1_mpjpe": 90.0}
    table = pq.read_table(paths["parquet"]).to_pydict()
    assert table["metric"] == list(metrics) and table["value"][0] == 80.5
    text = paths["markdown"].read_text()
    assert "| P1 | 80.50 |" in text and "Fig. 6" in text and paths["plot"].stat().st_size > 0


def test_spin_format_sets_get_table1_by_camera(setup, tmp_path):
    import cv2

    from hkmr.data.datasets import SpinDataset
    from hkmr.eval.suites import evaluate_spin

    cfg, root, model, kin = setup
    names = ["S9_Walk.54138969_000001.jpg", "S9_Walk.60457274_000001.jpg",
             "S11_Eat.58860488_000101.jpg", "S11_Eat.60457274_000101.jpg"]
    rng = np.random.default_rng(0)
    for name in names:  # textured images, so the model's answers differ between them
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    n = len(names)
    s = np.concatenate([rng.normal(0, 0.3, (n, 24, 3)) + [0, 0, 5], np.ones((n, 24, 1))], 2)
    s[2, 0, 3] = 0  # image 2 lacks the 3D right ankle (LSP joint 0): not scored
    np.savez(tmp_path / "h36m.npz", imgname=np.array(names), S=s,
             center=np.tile([80.0, 60.0], (n, 1)), scale=np.full(n, 0.5))
    m = evaluate_spin(model, kin, tmp_path / "h36m.npz", tmp_path, CPU, size=64,
                      columns=("standard", "bar"))
    assert m["spin_P1_standard_images"] == 3 and m["spin_P2_standard_images"] == 2
    scored = SpinDataset(tmp_path / "h36m.npz", tmp_path, size=64)
    ref = evaluate_joints(model, kin, torch.utils.data.Subset(scored, [0, 1, 3]), CPU)
    assert m["spin_P1_standard_mpjpe"] == pytest.approx(ref["mpjpe"], rel=1e-6)
    ref_p2 = evaluate_joints(model, kin, torch.utils.data.Subset(scored, [1, 3]), CPU)
    assert m["spin_P2_standard_pa_mpjpe"] == pytest.approx(ref_p2["pa_mpjpe"], rel=1e-6)
    assert m["spin_P1_bar_mpjpe"] != m["spin_P1_standard_mpjpe"]
    other = tmp_path / "lsp.npz"  # no camera serial in the name: one row "all"
    (tmp_path / "plain.jpg").write_bytes((tmp_path / names[0]).read_bytes())
    np.savez(other, imgname=np.array(["plain.jpg"]), S=s[:1], center=[[80.0, 60.0]],
             scale=[0.5])
    m = evaluate_spin(model, kin, other, tmp_path, CPU, size=64, columns=("standard",))
    assert set(m) == {"spin_all_standard_mpjpe", "spin_all_standard_pa_mpjpe",
                      "spin_all_standard_images"}


def test_per_image_errors_average_to_the_suite_metrics(setup, body_model):
    from hkmr.eval.suites import IMAGE_COLUMNS, evaluate_suites_per_image

    cfg, root, model, kin = setup
    kw = dict(suites=("table1", "degrees"), limit=3)
    plain = evaluate_suites(model, body_model, kin, ImageTestSets(root), CPU, **kw)
    metrics, images = evaluate_suites_per_image(model, body_model, kin, ImageTestSets(root),
                                                CPU, **kw)
    assert metrics == plain  # the metrics are unchanged
    assert set(images) == set(IMAGE_COLUMNS)
    rows = list(zip(*(images[c] for c in IMAGE_COLUMNS)))
    for p in ("P1", "P2"):
        for column in COLUMNS:
            sel = [r for r in rows if r[1] == p and r[2] == column and r[3] == 0]
            assert len(sel) == 3
            for k, i in (("mpjpe", 4), ("pa_mpjpe", 5)):
                assert np.mean([r[i] for r in sel]) == pytest.approx(
                    metrics[f"{p}_{column}_{k}"], rel=1e-5), (p, column, k)
    bar3 = [r[4] for r in rows if r[2] == "bar" and r[3] == 3]
    assert np.mean(bar3) == pytest.approx(metrics["degree_bar_3_mpjpe"], rel=1e-5)
