"""Feature datasets: items of cached features Φ with the ground truth of the image items.

An item holds ``features`` float32 (F,) and the ground-truth keys of
:class:`hkmr.data.datasets.SyntheticDataset` items (``keypoints``, ``visible``, ``joints3d``,
``pose``, ``betas``, ``has_smpl``, ``has_joints3d``, ``view``, ``frontal``, ``index``,
``image_id``, ``occluded``, ``subject``, ``focal``, ``transl``, ``flip``, ``rot_deg``;
``parts`` and ``mask`` with
``with_parts``), with the same meanings, all kept in memory.

Training augmentation: with ``flip_prob`` > 0 (the training set when ``data.augment`` is on),
each epoch sample i is its precomputed mirrored copy with probability ``flip_prob``, drawn from
a generator seeded by (seed, epoch) in :meth:`FeatureDataset.set_epoch`, so runs and resumed
runs see the same flips. Its targets are exactly those :func:`hkmr.data.augment.transform_targets`
gives the image path: mirrored pose (``flip_pose``), swapped left/right joints, negated x, and
keypoints outside the crop get confidence 0 (as on every augmented image item, flipped or not).
Rotation, scale and colour augmentation are not available: they would change the image and so
its features.

:class:`FeatureTestSets` is the feature-backed implementation of
:class:`hkmr.data.source.TestSets`: the evaluation suites read the cached occluded test sets
through it instead of drawing occluders.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..body.joints import FLIP_PERMUTATION, flip_pose
from ..data.occlusion import check
from ..data.source import EpochDataset, TestSets
from ..data.views import FRONTAL_VIEW, protocol_views

_PERM = np.asarray(FLIP_PERMUTATION)


def _column(table, name: str, width: int | None = None) -> np.ndarray:
    col = table.column(name).combine_chunks()
    if width is None:
        return col.to_numpy()
    return col.flatten().to_numpy().reshape(len(col), width)


def raw_targets(table) -> dict[str, np.ndarray]:
    """Ground truth of every row as the un-augmented image items have it (float64)."""
    n = table.num_rows
    kp = np.concatenate([_column(table, "keypoints", 48).reshape(n, 24, 2),
                         np.ones((n, 24, 1))], 2)
    j3d = np.concatenate([_column(table, "joints3d", 72).reshape(n, 24, 3),
                          np.ones((n, 24, 1))], 2)
    return {"keypoints": kp, "visible": _column(table, "visible", 24).astype(np.float64),
            "joints3d": j3d, "pose": _column(table, "pose", 72).astype(np.float64),
            "betas": _column(table, "betas", 10).astype(np.float64),
            "transl": _column(table, "transl", 3).astype(np.float64),
            "focal": _column(table, "focal").astype(np.float64)}


def augmented_targets(t: dict[str, np.ndarray], flip: bool) -> dict[str, np.ndarray]:
    """What :func:`~hkmr.data.augment.transform_targets` makes of every row with
    ``AugParams(flip=flip)`` (no rotation, scale or colour change), vectorised."""
    kp, vis, j3d = t["keypoints"].copy(), t["visible"].copy(), t["joints3d"].copy()
    pose = t["pose"].reshape(-1, 24, 3)
    rest_root = j3d[:, 0, :3] - t["transl"]
    if flip:
        kp, vis, j3d = kp[:, _PERM], vis[:, _PERM], j3d[:, _PERM]
        j3d[..., 0] *= -1.0
        kp[..., 0] *= -1.0
        pose = flip_pose(torch.as_tensor(pose)).numpy()
    inside = (np.abs(kp[..., :2]) <= 1.0).all(-1)
    kp[..., 2] *= inside
    vis = vis * inside
    return {**t, "keypoints": kp, "visible": vis, "joints3d": j3d,
            "pose": pose.reshape(-1, 72), "transl": j3d[:, 0, :3] - rest_root}


def _tensors(t: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in t.items()}


class FeatureDataset(EpochDataset):
    """The rows of ``split`` (``protocol`` P1: all views, P2: the frontal camera) of a
    :class:`~hkmr.features.cache.FeatureCache`, with the features of ``variant`` (default: the
    split itself, e.g. ``test_bar`` for the bar-occluded test set)."""

    def __init__(self, cache, split: str, protocol: str = "P1", variant: str | None = None,
                 flip_prob: float = 0.0, seed: int = 0, with_parts: bool = False):
        self.cache, self.split, self.protocol = cache, split, protocol
        self.variant = variant or split
        info = cache.variant(self.variant)
        if info["split"] != split:
            raise ValueError(f"variant {self.variant} belongs to split {info['split']}, "
                             f"not {split}")
        self.flip_prob, self.seed = float(flip_prob), seed
        self.manifest = {"settings": cache.manifest["dataset"]["settings"]}
        table = cache.targets(split)
        view = _column(table, "view").astype(np.int64)
        self.rows = np.nonzero(np.isin(view, protocol_views(protocol)))[0]
        raw = raw_targets(table)
        self._targets = [_tensors(augmented_targets(raw, False) if flip_prob > 0 else raw)]
        self._features = [torch.from_numpy(cache.features(self.variant))]
        if flip_prob > 0:
            self._targets.append(_tensors(augmented_targets(raw, True)))
            self._features.append(torch.from_numpy(cache.features(f"{self.variant}_flip")))
        self._occluded = torch.from_numpy(cache.occluded(self.variant).astype(np.float32))
        self._view = torch.from_numpy(view)
        self._image_id = torch.from_numpy(_column(table, "image_id").astype(np.int64))
        self._subject = torch.from_numpy(_column(table, "subject").astype(np.int64))
        self._parts = table.column("parts").combine_chunks() if with_parts else None
        self._flip = torch.zeros(len(self.rows), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's flips (a no-op without flip augmentation)."""
        if self.flip_prob > 0:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 1_000_000_007)
            self._flip = torch.rand(len(self.rows), generator=gen) < self.flip_prob

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        r = int(self.rows[index])
        k = int(self._flip[index])
        item = {name: values[r] for name, values in self._targets[k].items()}
        item["features"] = self._features[k][r].float()
        view = int(self._view[r])
        item.update(has_smpl=torch.tensor(1.0), has_joints3d=torch.tensor(1.0),
                    view=self._view[r], frontal=torch.tensor(view == FRONTAL_VIEW),
                    index=torch.tensor(index, dtype=torch.int64), image_id=self._image_id[r],
                    occluded=self._occluded[r], subject=self._subject[r],
                    flip=torch.tensor(float(k)), rot_deg=torch.tensor(0.0))
        if self._parts is not None:
            buf = np.frombuffer(self._parts[r].as_buffer(), np.uint8)
            item["parts"] = torch.from_numpy(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))
            item["mask"] = item["parts"] > 0
        return item


class FeatureTestSets(TestSets):
    """The evaluation suites' test sets read from a cache: the test split and its occluded
    variants (``test_{kind}`` for Table 1, ``test_{kind}_{degree}`` for Fig. 6)."""

    def __init__(self, cache):
        self.cache = cache
        self.location = str(cache.path)
        self.settings = cache.manifest["dataset"]["settings"]

    def standard(self, protocol: str = "P1", with_parts: bool = False) -> FeatureDataset:
        return FeatureDataset(self.cache, "test", protocol, with_parts=with_parts)

    def occluded(self, kind: str) -> FeatureDataset:
        check(kind, 1)
        return FeatureDataset(self.cache, "test", "P1", variant=f"test_{kind}")

    def joint_cycle(self, kind: str, degree: int) -> FeatureDataset:
        """Fig. 6's set, precomputed at extraction (P1 only: the cached rule indexes rows of
        all four views)."""
        check(kind, degree)
        return FeatureDataset(self.cache, "test", "P1", variant=f"test_{kind}_{degree}")
