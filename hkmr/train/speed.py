"""The GPU training path's speed switches (``train.pin_memory``, ``train.channels_last``,
``train.compile``; with ``train.amp``, :class:`~hkmr.train.trainer.Trainer`): what a CUDA user
expects, each switchable so ``benchmarks/gpu_check.py`` can report them side by side.

* **pinned memory, non-blocking copies**: the loader's batches are page-locked, so the copy
  to the GPU overlaps the previous step's kernels;
* **channels last**: images and convolution weights in NHWC, the layout tensor cores read
  (ResNet50 under AMP); a no-op for the keypoint and feature regimes (no 4D tensors);
* **torch.compile**: the training model compiled (the checkpoint keeps the plain module).

On a CPU every switch is off whatever the config says: none of them speeds a CPU step up,
and the CPU presets' numbers stay those of the plain eager path.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig


def pin_batches(train: TrainConfig, device: torch.device) -> bool:
    return train.pin_memory and device.type == "cuda"


def _channels_last(train: TrainConfig, device: torch.device) -> bool:
    return train.channels_last and device.type == "cuda"


def prepare_for_speed(model: nn.Module, train: TrainConfig, device: torch.device) -> nn.Module:
    """The model to train with: in channels-last layout and compiled where switched on (the
    layout changes ``model`` in place; compiling wraps it)."""
    if _channels_last(train, device):
        model.to(memory_format=torch.channels_last)
    if train.compile and device.type == "cuda":
        return torch.compile(model)
    return model


def batch_to(batch: dict, device: torch.device, train: TrainConfig) -> dict:
    """The batch's tensors on ``device`` (non-blocking: a copy from pinned memory overlaps
    the GPU's work); images in channels-last layout where switched on."""
    layout = torch.channels_last if _channels_last(train, device) else torch.preserve_format
    return {k: (v.to(device, non_blocking=True,
                     memory_format=layout if v.dim() == 4 else torch.preserve_format)
                if torch.is_tensor(v) else v) for k, v in batch.items()}
