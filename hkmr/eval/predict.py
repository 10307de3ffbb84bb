"""Running a :class:`hkmr.model.estimator.MeshEstimator` over an evaluation set: batches with
the final regressor output (Sec. 4: every table scores the last iteration), and the predicted
meshes those outputs stand for."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from ..data.batches import loader

from ..model.estimator import MeshEstimator


@torch.no_grad()
def predict(model: MeshEstimator, dataset, device: torch.device, batch_size: int = 64,
            limit: int = 0, keys: tuple[str, ...] = (), size: int | None = None):
    """Yield (batch, final regressor output) over ``dataset`` (the first ``limit`` items).

    ``size``: the model's input side; images of another size are resized (bilinear)."""
    if limit and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    model.eval()
    for batch in loader(dataset, batch_size):  # a batch at a time where the dataset can
        if "features" in batch:  # a feature dataset (frozen-features regime)
            yield batch, model(features=batch["features"].to(device))[-1]
            continue
        if "keypoint_input" in batch:  # the keypoint regime
            yield batch, model(batch["keypoint_input"].to(device))[-1]
            continue
        img = batch["img"].to(device)
        if size and img.shape[-1] != size:
            img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False,
                                antialias=True)
        out = model(img)[-1]
        yield batch, out


def predicted_vertices(out, body) -> torch.Tensor:
    """The predicted meshes (B, V, 3): the regressed mesh (CMR) or SMPL of Θ, β."""
    if out.vertices is not None:
        return out.vertices
    return body.forward(out.pose[:, :1], out.pose[:, 1:], out.betas).vertices
