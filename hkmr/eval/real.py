"""The real-data evaluations of Sec. 4 on SPIN-format files, as one step after the synthetic
suites: Table 1 on a SPIN-format set (Human3.6M with the H36M regressor,
:mod:`hkmr.eval.h36m`), Table 5 (left) on LSP (:mod:`hkmr.eval.lsp`) and Table 4 (right) on
MPII (:mod:`hkmr.eval.mpii`), each run when its ``eval.*`` files are configured."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..config import EvalConfig
from ..data.h36m import REGRESSOR_FILE, REGRESSOR_SOURCE, find_regressor, load_regressor
from .lsp import evaluate_lsp_segmentation
from .mpii import evaluate_spin_invisible
from .suites import evaluate_spin


def with_flags(ev: EvalConfig, args) -> EvalConfig:
    """``ev`` with the command's ``--spin-npz``-style flags (when given) in place."""
    given = {f.name: str(getattr(args, f.name)) for f in dataclasses.fields(ev)
             if getattr(args, f.name, None) is not None}
    return dataclasses.replace(ev, **given)


def check_real(ev: EvalConfig, body) -> tuple[torch.Tensor | None, str | None]:
    """Check the configured files before any work: (H36M regressor or None, label of the
    joints Table 1 on ``spin_npz`` uses, None without ``spin_npz``)."""
    for name in ("spin", "lsp", "mpii"):
        if getattr(ev, f"{name}_npz") and not getattr(ev, f"{name}_images"):
            raise ValueError(f"{name}_npz needs {name}_images (the folder of its images)")
    if not ev.spin_npz:
        return None, None
    path = ev.h36m_regressor or find_regressor(Path(ev.spin_npz).parent)
    if path is None:
        print(f"note: no {REGRESSOR_FILE} given or beside {ev.spin_npz}: the SPIN-format "
              "MPJPE uses SMPL's kinematic joints and is NOT comparable with the paper's "
              f"Table 1; get the file from {REGRESSOR_SOURCE} and pass --h36m-regressor")
        return None, "smpl_joints (no H36M regressor)"
    return torch.from_numpy(load_regressor(path, body.num_vertices)), f"h36m_regressor {path}"


def evaluate_real(model, body, kinematics, ev: EvalConfig, device: torch.device, *,
                  size: int, batch_size: int = 64, limit: int = 0,
                  regressor: torch.Tensor | None = None) -> dict[str, float]:
    """Every configured real-data evaluation; keys ``spin_*``, ``lsp_seg_*``, ``mpii_*``."""
    out: dict[str, float] = {}
    if ev.spin_npz:
        out.update(evaluate_spin(model, kinematics, ev.spin_npz, ev.spin_images, device,
                                 size=size, batch_size=batch_size, limit=limit, body=body,
                                 regressor=regressor))
    if ev.lsp_npz:
        out.update(evaluate_lsp_segmentation(model, body, ev.lsp_npz, ev.lsp_images, device,
                                             size=size, mask_root=ev.lsp_masks,
                                             batch_size=batch_size, limit=limit))
    if ev.mpii_npz:
        out.update(evaluate_spin_invisible(model, kinematics, ev.mpii_npz, ev.mpii_images,
                                           device, size=size, batch_size=batch_size,
                                           limit=limit))
    return out
