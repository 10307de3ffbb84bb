"""SPIN-format real data (paper Sec. 4 datasets as SPIN preprocesses them) and mixtures:
an .npz and JPEGs written here load, crop and map joints correctly; bad input names the
file or key."""

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hkmr.body.joints import JOINT_INDEX as J, flip_pose
from hkmr.data.augment import AugParams
from hkmr.data.datasets import COMMON_KEYS, MixtureDataset, SpinDataset, SyntheticDataset
from hkmr.data.shards import DatasetSpec, generate
from hkmr.data.spin import SMPL_FROM_J24, j24_to_smpl

SIZE = 96
W, H = 320, 240
#: J24 joints drawn as white discs, far enough apart to be told apart after cropping
DRAWN = {0: (110, 200), 2: (130, 140), 3: (180, 140), 6: (90, 100), 9: (190, 70),
         12: (160, 60), 14: (155, 140), 18: (158, 35)}
H36M_NAMES = ["S9_Walk.54138969_000001.jpg", "S9_Walk.60457274_000001.jpg",
              "S11_Eat.58860488_000101.jpg"]


def _write_images(root, names, shift=0):
    for k, name in enumerate(names):
        img = np.full((H, W, 3), 30, np.uint8)
        for (x, y) in DRAWN.values():
            cv2.circle(img, (x + shift * k, y), 6, (255, 255, 255), -1, lineType=cv2.LINE_AA)
        assert cv2.imwrite(str(root / name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])


def _part(shift=0):
    part = np.zeros((24, 3))
    for j, (x, y) in DRAWN.items():
        part[j] = (x + shift, y, 1)
    return part


@pytest.fixture()
def spin(tmp_path):
    (tmp_path / "images").mkdir()
    _write_images(tmp_path / "images", H36M_NAMES, shift=10)
    rng = np.random.default_rng(0)
    n = len(H36M_NAMES)
    data = {
        "imgname": np.array(H36M_NAMES), "center": np.array([[150.0 + 10 * k, 125.0]
                                                             for k in range(n)]),
        "scale": np.full(n, 0.95), "part": np.stack([_part(10 * k) for k in range(n)]),
        "S": np.concatenate([rng.normal(0, 0.3, (n, 24, 3)) + [0, 0, 5], np.ones((n, 24, 1))], 2),
        "pose": rng.normal(0, 0.2, (n, 72)), "shape": rng.normal(0, 1, (n, 10)),
        "has_smpl": np.array([1.0, 0.0, 1.0]),
        "openpose": np.zeros((n, 25, 3)), "gender": np.array(["m", "f", "m"]),  # ignored
    }
    np.savez(tmp_path / "h36m.npz", **data)
    return tmp_path, data


def _blobs(img):
    """Centres of the bright discs in crop coordinates [-1, 1]."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    n, _, stats, centroids = cv2.connectedComponentsWithStats((gray > 128).astype(np.uint8))
    keep = stats[1:, cv2.CC_STAT_AREA] > 10
    return (centroids[1:][keep] + 0.5) / (img.shape[0] / 2) - 1.0


@pytest.mark.parametrize("params", [AugParams(), AugParams(flip=True),
                                    AugParams(rot_deg=25.0, scale=1.2),
                                    AugParams(flip=True, rot_deg=-40.0, scale=0.9)])
def test_npz_with_jpegs_loads_and_crops_correctly(spin, params):
    root, data = spin
    ds = SpinDataset(root / "h36m.npz", root / "images", size=SIZE)
    for i in range(len(ds)):
        s = ds.sample(i, params)
        assert s["img"].shape == (SIZE, SIZE, 3) and s["img"].dtype == np.uint8
        kp = s["keypoints"]
        annotated = kp[:, 2] > 0
        assert annotated.sum() == 8  # every drawn J24 joint has an SMPL counterpart
        blobs = _blobs(s["img"])
        assert len(blobs) == 8  # every drawn disc stays inside this crop
        for x, y in kp[annotated, :2]:  # each keypoint sits on its disc's centre: 0.16 px
            dist = np.abs(blobs - [x, y]).max(1).min() * SIZE / 2  # here; half-pixel slips fail
            assert dist < 0.3, (i, params, dist)


def test_keypoints_are_the_crop_transform_of_part(spin):
    root, data = spin
    item = SpinDataset(root / "h36m.npz", root / "images", size=SIZE)[1]
    c, s = data["center"][1], data["scale"][1]
    expect = (data["part"][1][14, :2] - c) / (100 * s)
    np.testing.assert_allclose(item["keypoints"][J["pelvis"], :2].numpy(), expect, atol=1e-6)
    assert item["img"].shape == (3, SIZE, SIZE) and item["img"].dtype == torch.float32


def test_j24_joints_map_to_smpl_joints(spin):
    root, data = spin
    item = SpinDataset(root / "h36m.npz", root / "images", size=SIZE)[0]
    conf = item["keypoints"][:, 2]
    expected = {J["right_ankle"], J["right_hip"], J["left_hip"], J["right_wrist"],
                J["left_shoulder"], J["neck"], J["pelvis"], J["head"]}
    assert {j for j in range(24) if conf[j] > 0} == expected
    for name in ("spine1", "spine2", "spine3", "left_collar", "left_hand", "right_foot"):
        assert conf[J[name]] == 0 and item["joints3d"][J[name], 3] == 0
    s = data["S"][0]
    np.testing.assert_allclose(item["joints3d"][J["pelvis"]].numpy(), s[14], atol=1e-6)
    np.testing.assert_allclose(item["joints3d"][J["head"]].numpy(), s[18], atol=1e-6)  # H36M head
    np.testing.assert_allclose(item["joints3d"][J["neck"]].numpy(), s[12], atol=1e-6)
    np.testing.assert_allclose(item["joints3d"][J["right_ankle"]].numpy(), s[0], atol=1e-6)
    np.testing.assert_allclose(item["pose"].numpy(), data["pose"][0], atol=1e-6)
    np.testing.assert_allclose(item["betas"].numpy(), data["shape"][0], atol=1e-6)
    assert item["has_smpl"] == 1 and item["has_joints3d"] == 1
    assert torch.equal(item["visible"], conf)
    assert SpinDataset(root / "h36m.npz", root / "images", size=SIZE)[1]["has_smpl"] == 0


def test_fallbacks_in_the_joint_map():
    j24 = np.zeros((24, 3))
    j24[15] = (1, 2, 1)  # MPII thorax only: stands in for the neck
    j24[13] = (3, 4, 1)  # LSP head top only: stands in for the head
    out = j24_to_smpl(j24)
    assert tuple(out[J["neck"]]) == (1, 2, 1) and tuple(out[J["head"]]) == (3, 4, 1)
    assert sorted(SMPL_FROM_J24) == sorted({J[n] for n in (
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist", "neck", "head", "pelvis")})


def test_flip_mirrors_pose_and_joints(spin):
    root, data = spin
    ds = SpinDataset(root / "h36m.npz", root / "images", size=SIZE)
    plain, flipped = ds.sample(0), ds.sample(0, AugParams(flip=True))
    torch.testing.assert_close(torch.as_tensor(flipped["pose"]).view(24, 3),
                               flip_pose(torch.as_tensor(plain["pose"]).view(24, 3)),
                               atol=1e-6, rtol=0)
    assert flipped["keypoints"][J["left_ankle"], 0] == pytest.approx(
        -plain["keypoints"][J["right_ankle"], 0])
    assert flipped["joints3d"][J["left_hip"], 0] == pytest.approx(
        -plain["joints3d"][J["right_hip"], 0])


def test_missing_optional_keys_are_tolerated(tmp_path):
    (tmp_path / "im").mkdir()
    _write_images(tmp_path / "im", ["a.jpg"])
    np.savez(tmp_path / "lsp.npz", imgname=np.array(["a.jpg"]), center=np.array([[160.0, 120]]),
             scale=np.array([1.0]))
    item = SpinDataset(tmp_path / "lsp.npz", tmp_path / "im", size=64)[0]
    assert item["keypoints"][:, 2].sum() == 0 and item["has_smpl"] == 0
    assert item["has_joints3d"] == 0 and item["view"] == -1 and not item["frontal"]


def test_p2_keeps_camera_3_of_human36m(spin):
    root, _ = spin
    p1 = SpinDataset(root / "h36m.npz", root / "images", size=SIZE)
    p2 = SpinDataset(root / "h36m.npz", root / "images", size=SIZE, protocol="P2")
    assert [int(p1[i]["view"]) for i in range(3)] == [0, 3, 2]
    assert len(p2) == 1 and p2[0]["frontal"] and int(p2[0]["image_id"]) == 1


def test_corrupt_and_missing_images_name_the_file(spin):
    root, data = spin
    (root / "images" / H36M_NAMES[2]).write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "images" / H36M_NAMES[1]).unlink()
    ds = SpinDataset(root / "h36m.npz", root / "images", size=SIZE)
    with pytest.raises(ValueError, match=r"S11_Eat\.58860488_000101\.jpg.*decode"):
        ds[2]
    with pytest.raises(FileNotFoundError, match=r"S9_Walk\.60457274_000001\.jpg"):
        ds[1]
    ds[0]  # the good image still loads


@pytest.mark.parametrize("drop,bad,match", [
    ("scale", None, r"h36m_bad\.npz.*'scale'"), ("imgname", None, r"'imgname'"),
    (None, ("part", np.zeros((3, 17, 3))), r"'part' has shape"),
    (None, ("center", np.zeros((2, 2))), r"'center' has shape"),
])
def test_npz_lacking_or_malformed_keys_name_the_key(spin, drop, bad, match):
    root, data = spin
    data = {k: v for k, v in data.items() if k != drop}
    if bad:
        data[bad[0]] = bad[1]
    np.savez(root / "h36m_bad.npz", **data)
    with pytest.raises(ValueError, match=match):
        SpinDataset(root / "h36m_bad.npz", root / "images")


def test_unreadable_npz_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        SpinDataset(tmp_path / "nothing.npz", tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.npz"):
        SpinDataset(tmp_path / "junk.npz", tmp_path)


def test_mixture_keeps_proportions_and_collates_synthetic_with_real(spin, tmp_path):
    root, _ = spin
    synth_root = tmp_path / "synth"
    generate(synth_root, DatasetSpec(counts={"train": 2}, size=SIZE, seed=1,
                                     subjects={"train": 1}), workers=1, progress=False)
    synth = SyntheticDataset(synth_root, "train")
    real = SpinDataset(root / "h36m.npz", root / "images", size=SIZE, augment=True)
    mix = MixtureDataset([synth, real], [0.25, 0.75], length=40, seed=3)
    assert len(mix) == 40 and (mix.which == 0).sum() == 10 and (mix.which == 1).sum() == 30
    again = MixtureDataset([synth, real], [0.25, 0.75], length=40, seed=3)
    assert (mix.which == again.which).all() and (mix.item == again.item).all()
    assert set(np.bincount(mix.item[mix.which == 1], minlength=3)) == {10}  # cycled evenly
    batch = next(iter(DataLoader(mix, batch_size=8)))
    assert set(batch) == set(COMMON_KEYS) | {"dataset", "openpose"}
    assert batch["img"].shape == (8, 3, SIZE, SIZE)
    with pytest.raises(ValueError):
        MixtureDataset([synth, real], [0.5])
