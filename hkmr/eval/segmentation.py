"""Segmentation scores of Table 5 (left), accumulated over a whole test set as SPIN's LSP
protocol does: one confusion matrix per task, accuracy = correct pixels / all pixels, F1 = the
mean over classes of 2·TP / (2·TP + FP + FN) (classes absent from both maps are left out).

Three label sets from the renderer's part maps (0 background, SMPL joint id + 1):

* ``fb``: foreground/background (2 classes);
* ``part``: the six coarse parts of LSP's part annotations that SPIN evaluates (head, torso,
  left/right arm, left/right leg) plus background, 7 classes — see :data:`PART_GROUPS`;
* ``part24``: the 24 SMPL parts plus background (25 classes), finer than the paper's protocol.
"""

from __future__ import annotations

import torch

from ..body.joints import JOINT_INDEX

#: coarse part of each SMPL skinning part (SMPL's "hip" part is the thigh, "collar" the
#: shoulder girdle, "shoulder" the upper arm)
PART_GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("neck", "head"),
    "torso": ("pelvis", "spine1", "spine2", "spine3", "left_collar", "right_collar"),
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist", "left_hand"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist", "right_hand"),
    "left_leg": ("left_hip", "left_knee", "left_ankle", "left_foot"),
    "right_leg": ("right_hip", "right_knee", "right_ankle", "right_foot"),
}
_COARSE = torch.zeros(25, dtype=torch.long)
for _group, (_name, _joints) in enumerate(PART_GROUPS.items(), start=1):
    for _j in _joints:
        _COARSE[JOINT_INDEX[_j] + 1] = _group
assert (_COARSE[1:] > 0).all(), "every SMPL part belongs to a coarse part"
del _group, _name, _joints, _j

#: number of classes (background included) of each task
TASKS: dict[str, int] = {"fb": 2, "part": len(PART_GROUPS) + 1, "part24": 25}


def relabel(parts: torch.Tensor, task: str) -> torch.Tensor:
    """Part maps (labels 0..24) -> the labels of ``task``."""
    parts = parts.long()
    if task == "fb":
        return (parts > 0).long()
    if task == "part":
        return _COARSE.to(parts.device)[parts]
    if task == "part24":
        return parts
    raise ValueError(f"unknown segmentation task {task!r}; expected one of {sorted(TASKS)}")


def confusion(pred: torch.Tensor, gt: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts, rows = ground truth, columns = prediction, over all pixels given."""
    idx = gt.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores(conf: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean F1) of a confusion matrix; NaN for an empty one."""
    conf = conf.double()
    total = conf.sum()
    if total == 0:
        return float("nan"), float("nan")
    tp = conf.diagonal()
    denom = conf.sum(0) + conf.sum(1)  # 2·TP + FP + FN
    present = denom > 0
    f1 = 2 * tp[present] / denom[present]
    return (tp.sum() / total).item(), f1.mean().item()


class SegmentationAccumulator:
    """Confusion matrices of every task, updated batch by batch."""

    def __init__(self):
        self.conf = {task: torch.zeros(k, k, dtype=torch.long) for task, k in TASKS.items()}
        self.images = 0

    def update(self, pred_parts: torch.Tensor, gt_parts: torch.Tensor) -> None:
        """pred_parts, gt_parts: (B, S, S) part maps (0 background, joint id + 1)."""
        pred_parts, gt_parts = torch.as_tensor(pred_parts), torch.as_tensor(gt_parts)
        for task, k in TASKS.items():
            self.conf[task] += confusion(relabel(pred_parts, task), relabel(gt_parts, task), k)
        self.images += len(gt_parts)

    def result(self) -> dict[str, float]:
        """``seg_{task}_acc`` (%, as the paper's Table 5) and ``seg_{task}_f1`` (0..1)."""
        out = {}
        for task, conf in self.conf.items():
            acc, f1 = scores(conf)
            out[f"seg_{task}_acc"], out[f"seg_{task}_f1"] = 100 * acc, f1
        out["seg_images"] = float(self.images)
        return out
