"""The frozen-encoder feature-cache protocol (issue 9).

Tables 1-3 compare *regressors* on one encoder, yet end-to-end training spends almost all its
time in the encoder. With ``model.freeze_encoder: true`` a run trains only the regressor (HKMR
or HMR), the joints-only body kinematics and the losses, on encoder features Φ computed once:

* :mod:`hkmr.features.cache` — the cache format (float16 shards, ground truth, the encoder's
  weights, a manifest naming the encoder's and the dataset's hashes), :func:`extract`
  (``hkmr features extract``) and :func:`open_cache`, which refuses a stale cache;
* :mod:`hkmr.features.dataset` — :class:`FeatureDataset`: items of cached features with the
  image items' ground truth, precomputed flipped copies for augmentation, the occluded test sets;
* :mod:`hkmr.features.protocol` — :func:`prepare_features`: a config's encoder (given, or the
  shared one trained once) and its cache, extracted on first use and verified.

The trainer (:class:`hkmr.train.trainer.Trainer`) loads the frozen encoder into the model, so a
checkpoint of a frozen-feature run is a complete image model (``hkmr eval`` and ``hkmr demo``
run it on images); its metrics carry ``protocol`` (``frozen_features`` or ``end_to_end``) and
``encoder_hash``. Evaluation (:func:`hkmr.eval.protocols.evaluate_protocols`) reads the cached
occluded test sets instead of rendering occluders.
"""

from .cache import (FeatureCache, EncoderWeights, StaleCacheError, extract, load_encoder,
                    open_cache)
from .dataset import FeatureDataset
from .protocol import ensure_encoder, prepare_features

__all__ = ["EncoderWeights", "FeatureCache", "FeatureDataset", "StaleCacheError",
           "ensure_encoder", "extract", "load_encoder", "open_cache", "prepare_features"]
