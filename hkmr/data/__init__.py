"""Data (paper Sec. 4): the synthetic multi-view benchmark (pose/shape/camera sampler, numpy
renderer, Parquet shards), SPIN-format real data, mixtures, augmentation and the test-time
occluders. See docs/data.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

#: the names the package exports, by the module that defines them, imported on first use
_EXPORTS = {
    ".augment": ("Augment", "AugParams"),
    ".datasets": ("COMMON_KEYS", "MixtureDataset", "SpinDataset", "SyntheticDataset"),
    ".render": ("PartRenderer",),
    ".sampler": ("mean_params",),
    ".views": ("CAMERAS", "FRONTAL_VIEW", "PROTOCOLS", "protocol_views"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from .augment import Augment, AugParams
    from .datasets import COMMON_KEYS, MixtureDataset, SpinDataset, SyntheticDataset
    from .render import PartRenderer
    from .sampler import mean_params
    from .views import CAMERAS, FRONTAL_VIEW, PROTOCOLS, protocol_views
