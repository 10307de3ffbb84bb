"""The frozen-features regime: regressors trained on cached encoder features.

Tables 1-3 compare *regressors* on one encoder, yet end-to-end training spends almost all its
time in the encoder. With ``model.freeze_encoder: true`` a run trains only the regressor (HKMR,
HMR or CMR), the joints-only body kinematics and the losses, on encoder features Φ computed
once:

* :mod:`hkmr.features.cache` — the cache format (float16 shards, ground truth, the encoder's
  weights, a manifest naming the encoder's and the dataset's hashes), :func:`extract`
  (``hkmr features extract``) and :func:`open_cache`, which refuses a stale cache;
* :mod:`hkmr.features.dataset` — :class:`FeatureDataset`: items of cached features with the
  image items' ground truth, precomputed flipped copies for augmentation; and
  :class:`FeatureTestSets`, the evaluation suites' occluded test sets from the cache;
* :mod:`hkmr.features.source` — :func:`prepare_features`: a config's cache, extracted on first
  use and verified; :func:`feature_source`: the trainer's data source from it.

The shared encoder (an end-to-end HMR run trained once when no ``model.encoder_checkpoint`` is
given) is trained by :mod:`hkmr.train.shared_encoder`, above this package. The trainer loads
the frozen encoder into the model, so a checkpoint of a frozen-features run is a complete image
model (``hkmr eval`` and ``hkmr demo`` run it on images); its metrics carry ``regime``
(``frozen_features`` or ``end_to_end``) and ``encoder_hash``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

#: the names the package exports, by the module that defines them, imported on first use
_EXPORTS = {
    ".cache": ("FeatureCache", "StaleCacheError", "extract", "open_cache"),
    ".dataset": ("FeatureDataset", "FeatureTestSets"),
    ".source": ("feature_source", "prepare_features"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from .cache import FeatureCache, StaleCacheError, extract, open_cache
    from .dataset import FeatureDataset, FeatureTestSets
    from .source import feature_source, prepare_features
