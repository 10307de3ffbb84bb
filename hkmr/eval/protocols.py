"""The paper's evaluation protocols on the synthetic test split (Sec. 4, Tables 1-5, Fig. 6).

* **P1 / P2**: all four views vs the frontal view (camera 3), as Human3.6M's protocols.
* **Table 1 columns**: Standard, Bar, Circle, Rectangle — the test set without occluders and
  with one random occluder of each kind per image (the data layer's standard occlusion sets).
* **Fig. 6**: MPJPE against degree of occlusion 1..5 per occluder kind. The paper occludes one
  joint at a time and averages over joints; here sample i of the test set is occluded on joint
  ``LSP14[i mod 14]``, so one pass per (kind, degree) averages over the 14 evaluation joints.
* **Table 4 (right)**: 2D MPJPE in pixels and PCK on the joints the renderer marks as
  self-occluded ("invisible joints").
* **Table 5 (left)**: foreground/background and part segmentation accuracy and F1, rendering
  the predicted mesh with the data layer's part renderer.

MPJPE and PA-MPJPE are reported on the 14 evaluation joints (and MPJPE on all 24), in mm.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Subset

from ..body.joints import JointKinematics
from ..model.estimator import MeshEstimator
from .metrics import mpjpe, pa_mpjpe, select_eval_joints


@torch.no_grad()
def predict(model: MeshEstimator, dataset, device: torch.device, batch_size: int = 64,
            limit: int = 0, keys: tuple[str, ...] = ()):
    """Yield (batch, final regressor output) over ``dataset`` (the first ``limit`` items)."""
    if limit and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    model.eval()
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        out = model(batch["img"].to(device))[-1]
        yield batch, out


@torch.no_grad()
def evaluate_joints(model: MeshEstimator, kinematics: JointKinematics, dataset,
                    device: torch.device, batch_size: int = 64, limit: int = 0,
                    prefix: str = "") -> dict[str, float]:
    """Mean MPJPE (14 and 24 joints) and PA-MPJPE (14 joints) in mm over a dataset."""
    errors = {"mpjpe": [], "pa_mpjpe": [], "mpjpe_24": []}
    for batch, out in predict(model, dataset, device, batch_size, limit):
        pred = kinematics(out.pose, out.betas).float().cpu()
        gt = batch["joints3d"][..., :3]
        errors["mpjpe"].append(mpjpe(select_eval_joints(pred), select_eval_joints(gt)))
        errors["pa_mpjpe"].append(pa_mpjpe(select_eval_joints(pred), select_eval_joints(gt)))
        errors["mpjpe_24"].append(mpjpe(pred, gt))
    return {f"{prefix}{k}": torch.cat(v).mean().item() if v else math.nan
            for k, v in errors.items()}
