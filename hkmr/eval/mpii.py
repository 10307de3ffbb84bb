"""Table 4 (right) on a SPIN-format MPII-style set: 2D error (pixels of the crop) and PCK of
the projected predicted joints on the joints annotated invisible, the same measure as the
synthetic suite's (:func:`hkmr.eval.suites.evaluate_suites`, ``invisible``) with the
annotations' visibility (``part_visible``, MPII's ``is_visible``) in place of the renderer's.
Joints are the 15 SMPL joints J24 annotates (:data:`hkmr.data.spin.SMPL_FROM_J24`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.datasets import SpinDataset
from .suites import _invisible, _run


def evaluate_spin_invisible(model, kinematics, npz: str | Path, img_root: str | Path,
                            device: torch.device, *, size: int, batch_size: int = 64,
                            limit: int = 0) -> dict[str, float]:
    """``mpii_{invisible,all}_{mpjpe_2d_px,pck,joints}`` and ``mpii_pck_threshold_px``."""
    ds = SpinDataset(npz, img_root, size=size)
    if "part" not in ds.data or "part_visible" not in ds.data:
        raise ValueError(f"{npz}: Table 4 (right) needs keys 'part' and 'part_visible' (the "
                         "2D joints and their annotated visibility)")
    idx = np.arange(min(limit, len(ds)) if limit else len(ds))
    was_training = model.training
    try:
        res = _run(model, kinematics, ds, idx, device, batch_size=batch_size, size=size,
                   image_size=size, with_2d=True)
    finally:
        model.train(was_training)
    return {f"mpii_{k}": v for k, v in _invisible(res, idx, size).items()}
