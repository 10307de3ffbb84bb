"""Datasets of the keypoint regime (``model.encoder: keypoints``): the regressor's input is a
learned embedding of the crop's 2D keypoints and a visibility flag per joint, no image.

An item carries ``keypoint_input`` float32 (24, 3): the keypoints in crop coordinates
([-1, 1]) with Gaussian noise of ``data.keypoint_noise`` crop pixels, then ``(x, y, 1)`` for a
visible joint and ``(0, 0, 0)`` for a hidden one, and the ground truth of the image items of
:class:`hkmr.data.datasets.SyntheticDataset` (``keypoints`` exact, ``joints3d``, ``pose``,
``betas``, ``view``, ``index``, ``image_id``, ``occluded``, ...), with the same meanings.

* **Visibility**: a joint is hidden when it lies outside the crop, inside a test-time
  occluder (the pool's precomputed sets, :mod:`hkmr.data.keypoint_pool`), or, in training with
  ``data.keypoint_dropout`` p > 0, dropped with probability p. ``occluded`` marks the joints
  an occluder hides (as on the images: the joints under it).
* **Noise**: training draws fresh noise and drops each epoch from a generator seeded by
  (seed, epoch) in :meth:`KeypointDataset.set_epoch`, so runs and resumed runs see the same
  inputs; validation and test noise is fixed by the data seed (every trial and seed is scored
  on the same inputs, so paired comparisons stay paired).

:class:`KeypointTestSets` is this regime's :class:`hkmr.data.source.TestSets`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ..body.joints import LSP14
from ..config import Config
from .datasets import OccludableDataset, parse_occlusion
from .keypoint_pool import ensure_pool, load_split, pool_settings
from .shards import SPLIT_CODE
from .source import DataSource, EpochDataset, TestSets
from .views import FRONTAL_VIEW, protocol_views

_NOISE_STREAM = 7_000_003  # the val/test noise generator: (data seed, stream, split)


class KeypointDataset(OccludableDataset, EpochDataset):
    """Rows of ``split`` of a keypoint pool under ``protocol`` (P1: all views, P2: frontal).

    ``hidden``: (rows of the split, 24) bool, joints hidden by an occluder (set by
    :class:`KeypointTestSets`); ``train``: fresh noise (and drops) per epoch."""

    def __init__(self, arrays: dict[str, np.ndarray], split: str, protocol: str, size: int,
                 noise_px: float = 0.0, dropout: float = 0.0, seed: int = 0,
                 data_seed: int = 0, train: bool = False):
        self.split, self.protocol, self.size = split, protocol, int(size)
        self.a = {k: torch.from_numpy(v) for k, v in arrays.items()}
        self.rows = np.nonzero(np.isin(arrays["view"], protocol_views(protocol)))[0]
        self._rows = torch.from_numpy(self.rows)
        self.noise_std = 2.0 * float(noise_px) / self.size  # crop pixels -> [-1, 1] units
        self.dropout, self.seed, self.is_train = float(dropout), int(seed), train
        kp = self.a["keypoints"]
        self.in_crop = (kp.abs() <= 1.0).all(-1)
        self.hidden = torch.zeros(kp.shape[:2], dtype=torch.bool)
        self.manifest = {"settings": {"size": self.size}}
        n = len(kp)
        if train:
            self.set_epoch(0)
        else:
            gen = torch.Generator().manual_seed(int(data_seed) * 1000 + _NOISE_STREAM
                                                + SPLIT_CODE[split])
            self._noise = torch.randn(n, 24, 2, generator=gen) * self.noise_std
            self._drop = torch.zeros(n, 24, dtype=torch.bool)

    def with_hidden(self, hidden: np.ndarray) -> "KeypointDataset":
        """A shallow copy whose joints ``hidden`` (split rows x 24) an occluder covers."""
        out = copy.copy(self)
        out.hidden = torch.from_numpy(np.asarray(hidden, bool))
        return out

    def with_occlusion(self, occlusion) -> "KeypointDataset":
        raise ValueError("keypoint datasets take their occluders from the pool's precomputed "
                         f"sets (KeypointTestSets), not {parse_occlusion(occlusion)!r}")

    def set_epoch(self, epoch: int) -> None:
        if not self.is_train:
            return
        n = len(self.a["keypoints"])
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 2_000_000_011)
        self._noise = torch.randn(n, 24, 2, generator=gen) * self.noise_std
        self._drop = torch.rand(n, 24, generator=gen) < self.dropout

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return {k: v[0] for k, v in self.batch(torch.tensor([index])).items()}

    def batch(self, index: torch.Tensor) -> dict:
        """The items at positions ``index`` (B,), collated: one gather per field
        (:mod:`hkmr.data.batches`)."""
        r = self._rows[index]
        a, b = self.a, len(r)
        in_crop = self.in_crop[r]
        flag = (in_crop & ~self.hidden[r] & ~self._drop[r]).float()
        xy = (a["keypoints"][r] + self._noise[r]) * flag[..., None]
        view = a["view"][r]
        ones = torch.ones(b, 24, 1)
        zeros = torch.zeros(b)
        return {
            "keypoint_input": torch.cat([xy, flag[..., None]], -1),
            "keypoints": torch.cat([a["keypoints"][r], ones], -1),
            "visible": in_crop.float(),
            "joints3d": torch.cat([a["joints3d"][r], ones], -1),
            "pose": a["pose"][r], "betas": a["betas"][r],
            "transl": a["transl"][r], "focal": a["focal"][r],
            "has_smpl": torch.ones(b), "has_joints3d": torch.ones(b),
            "view": view, "frontal": view == FRONTAL_VIEW,
            "index": index.to(torch.long), "image_id": a["image_id"][r],
            "subject": a["subject"][r], "occluded": self.hidden[r].float(),
            "flip": zeros, "rot_deg": zeros.clone(),
        }


class KeypointTestSets(TestSets):
    """The test split of a keypoint pool with the pool's occluder sets."""

    def __init__(self, folder: str | Path, size: int, noise_px: float, data_seed: int):
        self.location = str(folder)
        self.settings = {"size": int(size)}
        arrays = load_split(folder, "test")
        self._hidden = load_split(folder, "test_occlusion")
        kw = dict(size=size, noise_px=noise_px, data_seed=data_seed)
        self._sets = {p: KeypointDataset(arrays, "test", p, **kw) for p in ("P1", "P2")}

    def standard(self, protocol: str = "P1", with_parts: bool = False) -> KeypointDataset:
        if with_parts:
            raise ValueError("the keypoint regime has no part maps: drop the segmentation "
                             "suite (it needs rendered images)")
        return self._sets[protocol]

    def occluded(self, kind: str) -> KeypointDataset:
        return self._sets["P1"].with_hidden(self._hidden[f"standard_{kind}"])

    def joint_cycle(self, kind: str, degree: int) -> KeypointDataset:
        """P1 item i occluded by (kind, degree) on joint LSP14[i mod 14] (P1 keeps every row
        of the split, in order, so item i is row i)."""
        assert len(LSP14) == 14
        return self._sets["P1"].with_hidden(self._hidden[f"cycle_{kind}_{degree}"])


def keypoint_source(cfg: Config, root: str | Path | None = None, log=print) -> DataSource:
    """The keypoint regime's :class:`~hkmr.data.source.DataSource`: the pool's train split
    (fresh noise and drops per epoch), val split under ``data.val_protocol``, test sets."""
    if cfg.model.freeze_encoder:
        raise ValueError("model.encoder=keypoints trains its keypoint embedding with the "
                         "regressor; model.freeze_encoder=true does not apply")
    if cfg.data.spin_npz or cfg.data.datasets:
        raise ValueError("model.encoder=keypoints reads the synthetic pool only; drop "
                         "data.spin_npz / data.datasets")
    folder = ensure_pool(cfg.data, root, log)
    d = cfg.data
    noise = _noise(d)
    train = KeypointDataset(load_split(folder, "train"), "train", "P1", dropout=d.keypoint_dropout,
                            seed=cfg.seed, train=True, **noise)
    val = KeypointDataset(load_split(folder, "val"), "val", d.val_protocol, **noise)
    return DataSource(train, val, KeypointTestSets(folder, **noise), regime="keypoints")


def _noise(d) -> dict:
    return dict(size=pool_settings(d)["size"], noise_px=d.keypoint_noise, data_seed=d.synth_seed)


def keypoint_test_sets(cfg: Config, root: str | Path | None = None,
                       log=print) -> KeypointTestSets:
    """The test sets a keypoint-regime model of ``cfg`` is evaluated on (``hkmr eval``): its
    pool's test split, made on first use as for training."""
    return KeypointTestSets(ensure_pool(cfg.data, root, log), **_noise(cfg.data))
