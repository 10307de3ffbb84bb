"""Data (paper Sec. 4): the synthetic multi-view benchmark (pose/shape/camera sampler, numpy
renderer, Parquet shards), SPIN-format real data, mixtures, augmentation and the test-time
occluders. See docs/data.md."""

from .augment import Augment, AugParams
from .datasets import COMMON_KEYS, MixtureDataset, SpinDataset, SyntheticDataset
from .render import PartRenderer
from .sampler import mean_params
from .views import CAMERAS, FRONTAL_VIEW, PROTOCOLS, protocol_views

__all__ = ["Augment", "AugParams", "CAMERAS", "COMMON_KEYS", "FRONTAL_VIEW", "MixtureDataset",
           "PROTOCOLS", "PartRenderer", "SpinDataset", "SyntheticDataset", "mean_params",
           "protocol_views"]
