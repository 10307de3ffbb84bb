"""What a run reads (Sec. 4): its training and validation sets and the test sets of the
evaluation suites, from rendered images or, under the frozen-encoder regime, from cached
encoder features (:mod:`hkmr.features`).

* :class:`TestSets` is the interface the evaluation suites (:mod:`hkmr.eval.suites`) read the
  test split through: the P1 and P2 sets, Table 1's occluded sets and Fig. 6's joint cycle.
  :class:`ImageTestSets` draws the occluders onto the stored images;
  :class:`hkmr.features.dataset.FeatureTestSets` reads the cached features of the same images.
* :class:`DataSource` is what a :class:`hkmr.train.trainer.Trainer` is given: training set,
  validation set, test sets, the training **regime** (``end_to_end`` or ``frozen_features``)
  and, when frozen, the encoder the features came from. :func:`image_source` builds the
  end-to-end one; :func:`hkmr.features.source.feature_source` the frozen one;
  :func:`hkmr.train.source.prepare_source` chooses by ``model.freeze_encoder``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from ..body.joints import LSP14
from ..config import REGIMES, Config
from .datasets import MixtureDataset, OccludableDataset, SpinDataset, SyntheticDataset
from .shards import load_manifest
from .synthetic import ensure_synthetic



class TestSets(abc.ABC):
    """The test split of one dataset under the evaluation suites' conditions. Every set has
    the dataset's rows in the same order (``.rows``: positions in the split), so the same
    images are compared across columns."""

    settings: dict  # the dataset's settings (its manifest's); "size" is the crop side
    location: str  # where the sets are read from (a dataset or feature cache folder)

    @property
    def image_size(self) -> int:
        return int(self.settings["size"])

    @abc.abstractmethod
    def standard(self, protocol: str = "P1", with_parts: bool = False) -> Dataset:
        """No occluder; P1 all four views, P2 the frontal camera; ``with_parts``: items carry
        the ground-truth part map (segmentation suite)."""

    @abc.abstractmethod
    def occluded(self, kind: str) -> Dataset:
        """Table 1's column: P1 with one random occluder of ``kind`` per image."""

    @abc.abstractmethod
    def joint_cycle(self, kind: str, degree: int) -> Dataset:
        """Fig. 6's set: P1 item i occluded by (kind, degree) on joint LSP14[i mod 14]."""


class EpochDataset(Dataset):
    """A training set whose items depend on the epoch (e.g. the cached features' flips):
    :meth:`set_epoch` is called before each epoch with its number."""

    @abc.abstractmethod
    def set_epoch(self, epoch: int) -> None:
        ...


class JointCycle(Dataset):
    """Item i of ``base`` occluded by (kind, degree) on joint LSP14[i mod 14] (Fig. 6)."""

    def __init__(self, base: OccludableDataset, kind: str, degree: int):
        self.sets = [base.with_occlusion((kind, degree, j)) for j in LSP14]
        self.n = len(base)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.sets[i % len(LSP14)][i]


class ImageTestSets(TestSets):
    """The test split of the synthetic dataset at ``root``, occluders drawn on its images."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.location = str(self.root)
        self.settings = load_manifest(self.root)["settings"]
        self._sets: dict[str, SyntheticDataset] = {}

    def standard(self, protocol: str = "P1", with_parts: bool = False) -> SyntheticDataset:
        if protocol not in self._sets:  # decoded once, shared by the occluded copies
            self._sets[protocol] = SyntheticDataset(self.root, "test", protocol)
        return self._sets[protocol]

    def occluded(self, kind: str) -> SyntheticDataset:
        return self.standard("P1").with_occlusion(kind)

    def joint_cycle(self, kind: str, degree: int) -> JointCycle:
        return JointCycle(self.standard("P1"), kind, degree)


@dataclass
class DataSource:
    """The data a training run is given (see the module docstring)."""

    train: Dataset
    val: Dataset
    test: TestSets
    regime: str = "end_to_end"
    encoder_state: dict | None = None  # frozen_features: the weights the features came from
    encoder_hash: str | None = None
    loader_workers: int = 0  # DataLoader processes (0 for in-memory features)

    def __post_init__(self):
        if self.regime not in REGIMES:
            raise ValueError(f"regime {self.regime!r}: choose one of {', '.join(REGIMES)}")

    @property
    def frozen(self) -> bool:
        return self.regime == "frozen_features"

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.train, EpochDataset):
            self.train.set_epoch(epoch)

    def describe(self) -> dict[str, str]:
        """What every epoch's metrics record about the source."""
        if self.frozen:
            return {"regime": self.regime, "encoder_hash": self.encoder_hash}
        return {"regime": self.regime}


def image_source(cfg: Config, progress: bool = True) -> DataSource:
    """End to end: the synthetic train split (mixed with SPIN-format data when
    ``data.spin_npz`` is given), its val split under ``data.val_protocol``, its test split."""
    root = ensure_synthetic(cfg.data, progress=progress)
    train = SyntheticDataset(root, "train", protocol="P1", augment=cfg.data.augment)
    if cfg.data.datasets:
        if cfg.data.spin_npz:
            raise ValueError("give data.datasets or data.spin_npz, not both")
        train = training_mixture(cfg, train)
    elif cfg.data.spin_npz:
        if not cfg.data.spin_images:
            raise ValueError("data.spin_npz needs data.spin_images (the folder of its images)")
        spin = spin_training_set(cfg, cfg.data.spin_npz, cfg.data.spin_images)
        w = cfg.data.spin_weight
        train = MixtureDataset([train, spin], [1 - w, w], seed=cfg.seed)
    val = SyntheticDataset(root, "val", protocol=cfg.data.val_protocol)
    return DataSource(train, val, ImageTestSets(root), loader_workers=cfg.data.workers)


def training_mixture(cfg: Config, synthetic: Dataset) -> MixtureDataset:
    """SPIN's mixture (``data.datasets``): each set gets its weight's share of the samples,
    and the mixture is as long as its largest set (as SPIN's ``MixedDataset``)."""
    sets = [synthetic if e.synthetic else spin_training_set(cfg, e.npz, e.images)
            for e in cfg.data.datasets]
    return MixtureDataset(sets, [e.weight for e in cfg.data.datasets],
                          length=max(len(d) for d in sets), seed=cfg.seed)


def spin_training_set(cfg: Config, npz: str, images: str) -> SpinDataset:
    """A SPIN-format training set at the crop size, augmented as configured, read from its
    crop cache (made once, :mod:`hkmr.data.crop_cache`) under ``data.crop_cache``."""
    from .crop_cache import ensure_crop_cache

    size = cfg.data.synth_size
    crops = ensure_crop_cache(npz, images, size) if cfg.data.crop_cache else None
    return SpinDataset(npz, images, size=size, augment=cfg.data.augment, crop_cache=crops)
