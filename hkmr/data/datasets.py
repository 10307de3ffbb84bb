"""Torch datasets: the synthetic benchmark, SPIN-format real data and their mixture (the
training and test data of paper Sec. 4, with the P1/P2 protocols and the occlusion sets).

Every item is a dict of tensors (default-collatable)::

    img          float32 (3, S, S)  RGB, ImageNet mean/std normalised
    keypoints    float32 (24, 3)    SMPL-order 2D joints in [-1, 1] crop coordinates
                                    (x = u / (S/2) - 1 with u the continuous pixel column,
                                    pixel i spanning [i, i+1); y likewise, downwards);
                                    column 3 = confidence (1 annotated and in the crop)
    visible      float32 (24,)      1 = not self-occluded (synthetic: depth test; real data:
                                    the keypoint confidence); 0 outside the crop
    joints3d     float32 (24, 4)    SMPL-order 3D joints, camera frame (x right, y down,
                                    z forward), metres, *including* the camera translation;
                                    column 4 = confidence. Subtract the pelvis to compare with
                                    root-relative model joints.
    pose         float32 (72,)      SMPL axis-angle, global orientation in the camera frame
    betas        float32 (10,)
    has_smpl, has_joints3d  float32 ()
    view         int64 ()           camera 0..3 (-1 unknown); frontal bool () = view == 3
    index        int64 ()           position in this dataset
    image_id     int64 ()           stable id of the image (synthetic: sample * 4 + view;
                                    SPIN: row of the .npz); seeds the occluders
    occluded     float32 (24,)      1 where a test-time occluder covers the joint's pixel
    flip, rot_deg  float32 ()       the training augmentation applied: 1 if mirrored, and the
                                    rotation about the optical axis in degrees (0 when none);
                                    flip first, then rotation (:mod:`hkmr.data.augment`)

Synthetic items add ``parts`` uint8 (S, S) (0 background, joint id + 1), ``mask`` bool (S, S),
``focal`` float32 () (normalised: x = focal * X / Z) and ``transl`` float32 (3,)
(``joints3d[:, :3] = BodyModel(pose, betas).joints + transl``), ``subject`` int64 ().
"""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import AugParams, Augment, apply_gain, augment_crop, transform_targets
from .occlusion import KINDS, apply_occluder, check, occluder_of
from .shards import load_manifest, read_split
from .spin import crop_matrix, j24_to_smpl, load_npz, openpose_to_smpl, view_from_name
from .views import FRONTAL_VIEW, protocol_views

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
#: keys every dataset returns; a mixture returns these (plus ``dataset``)
COMMON_KEYS = ("img", "keypoints", "visible", "joints3d", "pose", "betas", "has_smpl",
               "has_joints3d", "view", "frontal", "index", "image_id", "occluded", "flip",
               "rot_deg")


def normalize_image(img: np.ndarray) -> torch.Tensor:
    """uint8 RGB (S, S, 3) -> float32 (3, S, S), ImageNet mean/std normalised."""
    x = (img.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def parse_occlusion(occlusion) -> tuple | None:
    """None | 'bar' | 'circle' | 'rectangle' (standard set) | (kind, degree, joint)."""
    if occlusion is None:
        return None
    if isinstance(occlusion, str):
        check(occlusion, 1)
        return (occlusion,)
    try:
        kind, degree, joint = occlusion
    except (TypeError, ValueError):
        raise ValueError(f"occlusion must be None, one of {KINDS} or (kind, degree, joint); "
                         f"got {occlusion!r}") from None
    check(kind, degree)
    if not 0 <= int(joint) < 24:
        raise ValueError(f"occluded joint must be 0..23, got {joint}")
    return (kind, int(degree), int(joint))


def _augmenter(augment) -> Augment | None:
    if augment is True:
        return Augment()
    if augment in (None, False):
        return None
    if not isinstance(augment, Augment):
        raise ValueError(f"augment must be a bool or an Augment, got {augment!r}")
    return augment


def _aug_rng() -> np.random.Generator:
    # torch's RNG is seeded per DataLoader worker and per epoch, and by torch.manual_seed
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def make_item(sample: dict, index: int, image_id: int, view: int, occlusion: tuple | None,
              occlusion_seed: int) -> dict:
    """Occlude (test time), normalise and convert a numpy sample to the item dict."""
    img, kp = sample["img"], sample["keypoints"]
    size = img.shape[0]
    occluded = np.zeros(24, np.float32)
    if occlusion is not None:
        occ = occluder_of(occlusion, kp, size, image_id, occlusion_seed)
        img, mask = apply_occluder(img, occ)
        px = np.floor((kp[:, :2] + 1.0) * size / 2).astype(int)
        ok = ((px >= 0) & (px < size)).all(1)
        occluded[ok] = mask[px[ok, 1], px[ok, 0]]
    item = {
        "img": normalize_image(img),
        "keypoints": torch.from_numpy(kp.astype(np.float32)),
        "visible": torch.from_numpy(sample["visible"].astype(np.float32)),
        "joints3d": torch.from_numpy(sample["joints3d"].astype(np.float32)),
        "pose": torch.from_numpy(sample["pose"].astype(np.float32)),
        "betas": torch.from_numpy(sample["betas"].astype(np.float32)),
        "has_smpl": torch.tensor(float(sample["has_smpl"])),
        "has_joints3d": torch.tensor(float(sample["has_joints3d"])),
        "view": torch.tensor(view, dtype=torch.int64),
        "frontal": torch.tensor(view == FRONTAL_VIEW),
        "index": torch.tensor(index, dtype=torch.int64),
        "image_id": torch.tensor(image_id, dtype=torch.int64),
        "occluded": torch.from_numpy(occluded),
        "flip": torch.tensor(float(sample.get("flip", 0.0))),
        "rot_deg": torch.tensor(float(sample.get("rot_deg", 0.0))),
    }
    if "parts" in sample:
        item["parts"] = torch.from_numpy(np.ascontiguousarray(sample["parts"]))
        item["mask"] = item["parts"] > 0
    for key in ("focal", "transl", "openpose"):
        if key in sample:
            item[key] = torch.as_tensor(np.asarray(sample[key], np.float32))
    return item


def _decode(buf, flags: int, what: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), flags)
    if img is None:
        raise ValueError(f"cannot decode {what}")
    return img


class OccludableDataset(Dataset):
    """An image dataset whose test-time occluders can be changed (:attr:`occlusion`, see
    :func:`parse_occlusion`); the evaluation suites re-occlude the test split through
    :meth:`with_occlusion`."""

    occlusion: tuple | None = None

    def with_occlusion(self, occlusion) -> "OccludableDataset":
        """A shallow copy that shares the decoded tables, with other occluders."""
        out = copy.copy(self)
        out.occlusion = parse_occlusion(occlusion)
        return out


class SyntheticDataset(OccludableDataset):
    """Rows of ``split`` of a dataset written by ``hkmr synth dataset``. ``protocol`` 'P1'
    keeps all four views, 'P2' the frontal camera 3 only."""

    def __init__(self, root: str | Path, split: str = "train", protocol: str = "P1",
                 occlusion=None, augment=None, occlusion_seed: int = 0):
        self.root, self.split, self.protocol = Path(root), split, protocol
        self.manifest = load_manifest(root)
        self.views = protocol_views(protocol)
        self.occlusion = parse_occlusion(occlusion)
        self.occlusion_seed = occlusion_seed
        self.augment = _augmenter(augment)
        table = read_split(root, split)
        view = table.column("view").to_numpy()
        self.rows = np.nonzero(np.isin(view, self.views))[0]
        self._img = table.column("img").combine_chunks()
        self._parts = table.column("parts").combine_chunks()
        self._cols = {name: _fixed(table, name, width) for name, width in (
            ("keypoints", 48), ("visible", 24), ("joints3d", 72), ("pose", 72), ("betas", 10),
            ("transl", 3))}
        for name in ("image_id", "view", "subject", "focal"):
            self._cols[name] = table.column(name).to_numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def sample(self, index: int) -> dict:
        """The stored (un-augmented, un-occluded) sample as numpy arrays."""
        r = self.rows[index]
        c = self._cols
        what = f"row {r} of {self.root}/{self.split}"
        img = _decode(self._img[r].as_buffer(), cv2.IMREAD_COLOR, f"image of {what}")
        return {
            "img": cv2.cvtColor(img, cv2.COLOR_BGR2RGB),
            "parts": _decode(self._parts[r].as_buffer(), cv2.IMREAD_UNCHANGED, f"parts of {what}"),
            "keypoints": np.concatenate([c["keypoints"][r].reshape(24, 2), np.ones((24, 1))], 1),
            "visible": c["visible"][r].copy(),
            "joints3d": np.concatenate([c["joints3d"][r].reshape(24, 3), np.ones((24, 1))], 1),
            "pose": c["pose"][r].copy(), "betas": c["betas"][r].copy(),
            "transl": c["transl"][r].copy(), "focal": np.float32(c["focal"][r]),
            "has_smpl": 1.0, "has_joints3d": 1.0,
        }

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        sample = self.sample(index)
        if self.augment is not None:
            sample = augment_crop(sample, self.augment.sample(_aug_rng()))
        r = self.rows[index]
        item = make_item(sample, index, int(self._cols["image_id"][r]),
                         int(self._cols["view"][r]), self.occlusion, self.occlusion_seed)
        item["subject"] = torch.tensor(int(self._cols["subject"][r]), dtype=torch.int64)
        return item


def _fixed(table, name: str, width: int) -> np.ndarray:
    col = table.column(name).combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), width)


class SpinDataset(OccludableDataset):
    """A SPIN-format ``.npz`` with its images under ``img_root``, cropped by center/scale to
    ``size`` px. ``protocol=None`` keeps every row; 'P1' / 'P2' keep the Human3.6M images
    (recognised by the camera serial in their name) of cameras 0-3 / camera 3 only.
    ``crop_cache``: a :class:`hkmr.data.crop_cache.CropCache` of the ``.npz`` at ``size`` to
    read the crops from instead of the full frames."""

    def __init__(self, npz_path: str | Path, img_root: str | Path, size: int = 224,
                 augment=None, occlusion=None, occlusion_seed: int = 0,
                 protocol: str | None = None, crop_cache=None):
        self.path, self.img_root, self.size = Path(npz_path), Path(img_root), size
        self.crops = crop_cache
        self.data = load_npz(npz_path)
        self.augment = _augmenter(augment)
        self.occlusion = parse_occlusion(occlusion)
        self.occlusion_seed = occlusion_seed
        self.view = np.array([view_from_name(n) for n in self.data["imgname"]], np.int64)
        self.rows = np.arange(len(self.view))
        if protocol is not None:
            self.rows = np.nonzero(np.isin(self.view, protocol_views(protocol)))[0]

    def __len__(self) -> int:
        return len(self.rows)

    def _image(self, r: int) -> np.ndarray:
        path = self.img_root / self.data["imgname"][r]
        if not path.exists():
            raise FileNotFoundError(f"{path}: image missing (imgname[{r}] of {self.path})")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{path}: cannot decode image (imgname[{r}] of {self.path})")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def sample(self, index: int, params: AugParams = AugParams()) -> dict:
        """The cropped sample as numpy arrays, with augmentation ``params`` applied."""
        r = self.rows[index]
        d = self.data
        center, scale = d["center"][r].astype(np.float64), float(d["scale"][r])
        if not scale > 0:
            raise ValueError(f"{self.path}: scale[{r}] = {scale} must be positive")
        kp, visible = np.zeros((24, 3)), np.zeros(24)
        if "part" in d:
            part = d["part"][r].astype(np.float64).copy()
            part[:, :2] = (part[:, :2] - center) / (100.0 * scale)
            kp = j24_to_smpl(part)
            visible = (kp[:, 2] > 0).astype(np.float64)
            if "part_visible" in d:  # annotated visibility, picked as the joints were
                visible = j24_to_smpl(np.stack([d["part_visible"][r], part[:, 2]], 1))[:, 0]
        j3d = j24_to_smpl(d["S"][r].astype(np.float64)) if "S" in d else np.zeros((24, 4))
        has_smpl = float(d["has_smpl"][r]) if "has_smpl" in d else float("pose" in d)
        sample = {
            "keypoints": kp, "visible": visible.astype(np.float32), "joints3d": j3d,
            "pose": d["pose"][r] if "pose" in d else np.zeros(72),
            "betas": d["shape"][r] if "shape" in d else np.zeros(10),
            "has_smpl": has_smpl, "has_joints3d": float(j3d[:, 3].sum() > 0),
        }
        if "openpose" in d:  # moved with the crop and augmentation as the GT keypoints
            op = openpose_to_smpl(d["openpose"][r].astype(np.float64))
            op[:, :2] = (op[:, :2] - center) / (100.0 * scale)
            sample["openpose"] = transform_targets({**sample, "keypoints": op}, params)[
                "keypoints"]
        sample = transform_targets(sample, params)
        warp = crop_matrix(center, scale, self.size, params.linear())
        if self.crops is not None:  # the same map, from the cached crop
            frame, warp = self.crops.image(r), self.crops.warp(warp, center, scale)
        else:
            frame = self._image(r)
        img = cv2.warpAffine(frame, warp, (self.size, self.size),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        sample["img"] = apply_gain(img, params.gain)
        return sample

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        params = self.augment.sample(_aug_rng()) if self.augment is not None else AugParams()
        r = int(self.rows[index])
        item = make_item(self.sample(index, params), index, r, int(self.view[r]),
                         self.occlusion, self.occlusion_seed)
        if "S" in self.data:  # the raw J24 ground truth, for the Human3.6M evaluation
            item["s24"] = torch.from_numpy(self.data["S"][r].astype(np.float32))
        return item


class MixtureDataset(Dataset):
    """Several datasets in given proportions (as HMR/SPIN mix their training sets).

    Of ``length`` items (default: the sum of the lengths) dataset k gets round(p_k * length)
    slots, filled by a seeded permutation of its items (cycled when it has fewer); the slot
    order is shuffled once with ``seed``. Items keep :data:`COMMON_KEYS` and ``openpose`` and
    gain ``dataset``.
    """

    def __init__(self, datasets: list[Dataset], proportions: list[float],
                 length: int | None = None, seed: int = 0):
        if len(datasets) != len(proportions) or not datasets:
            raise ValueError("need one proportion per dataset, and at least one dataset")
        p = np.asarray(proportions, float)
        if (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"proportions must be >= 0 with a positive sum, got {proportions}")
        if any(len(d) == 0 for d, q in zip(datasets, p) if q > 0):
            raise ValueError("a dataset with a positive proportion is empty")
        self.datasets = datasets
        length = int(length if length is not None else sum(len(d) for d in datasets))
        counts = np.floor(p / p.sum() * length).astype(int)
        rest = length - counts.sum()
        counts[np.argsort(-(p / p.sum() * length - counts), kind="stable")[:rest]] += 1
        rng = np.random.default_rng(seed)
        which, item = [], []
        for k, (d, n) in enumerate(zip(datasets, counts)):
            perm = rng.permutation(len(d)) if len(d) else np.zeros(0, int)
            which.append(np.full(n, k))
            item.append(perm[np.arange(n) % max(len(d), 1)] if n else np.zeros(0, int))
        order = rng.permutation(length)
        self.which = np.concatenate(which)[order]
        self.item = np.concatenate(item)[order]

    def __len__(self) -> int:
        return len(self.which)

    def __getitem__(self, index: int) -> dict:
        k = int(self.which[index])
        full = self.datasets[k][int(self.item[index])]
        out = {key: full[key] for key in COMMON_KEYS}
        # SPIN-format sets' OpenPose keypoints; none (confidence 0) for the others
        out["openpose"] = full.get("openpose", torch.zeros(24, 3))
        out["dataset"] = torch.tensor(k, dtype=torch.int64)
        return out
