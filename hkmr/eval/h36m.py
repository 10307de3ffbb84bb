"""Human3.6M MPJPE / PA-MPJPE as HMR, SPIN and the paper's Table 1 measure them on SPIN-format
files: the H36M joint regressor on the predicted mesh, SPIN's 14 joints, centred on the
regressed pelvis, against ``S`` (already root-centred by SPIN's preprocessing) with no further
centring; PA-MPJPE after a per-sample similarity Procrustes alignment. Joint orders:
:mod:`hkmr.data.h36m`."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Subset

from ..data.h36m import H36M_TO_J14, J24_TO_J14, PELVIS
from .metrics import pa_mpjpe
from .predict import predict, predicted_vertices


def h36m_joints14(regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """(17, V) regressor, (B, V, 3) meshes -> (B, 14, 3) SPIN's 14 joints minus the pelvis."""
    joints17 = torch.einsum("jv,bvc->bjc", regressor.to(vertices), vertices)
    return joints17[:, list(H36M_TO_J14)] - joints17[:, PELVIS:PELVIS + 1]


def h36m_errors(regressor: torch.Tensor, vertices: torch.Tensor, s24: torch.Tensor
                ) -> dict[str, torch.Tensor]:
    """Per-sample MPJPE and PA-MPJPE (mm) of meshes against SPIN's ``S`` (B, 24, 4); NaN where
    ``S`` lacks one of the 14 joints (confidence 0)."""
    pred = h36m_joints14(regressor, vertices.float()).cpu()
    gt, conf = s24[:, list(J24_TO_J14), :3].float(), s24[:, list(J24_TO_J14), 3]
    ok = (conf > 0).all(-1)
    nan = torch.tensor(math.nan)
    return {"mpjpe": torch.where(ok, 1000 * (pred - gt).norm(dim=-1).mean(-1), nan),
            "pa_mpjpe": torch.where(ok, pa_mpjpe(pred, gt), nan)}


def h36m_pass(model, body, regressor: torch.Tensor, dataset, indices, device, *,
              batch_size: int, size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``model`` on ``dataset[indices]`` (items with ``s24``); (positions, errors)."""
    index, errors = [], {"mpjpe": [], "pa_mpjpe": []}
    for batch, out in predict(model, Subset(dataset, [int(i) for i in np.asarray(indices)]),
                              device, batch_size, size=size):
        if "s24" not in batch:
            raise ValueError("the Human3.6M evaluation needs the set's 'S' key (3D joints)")
        index.append(batch["index"])
        for k, v in h36m_errors(regressor, predicted_vertices(out, body), batch["s24"]).items():
            errors[k].append(v)
    return torch.cat(index), {k: torch.cat(v) for k, v in errors.items()}
