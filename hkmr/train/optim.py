"""The optimiser of Eq. 3: Adam (as SPIN) over the trainable parameters, in the implementation
``train.adam`` names.

``single`` is PyTorch's per-tensor loop (its CPU default), ``foreach`` the same arithmetic on
lists of tensors (multi-tensor kernels): bit-for-bit the loop's parameters, measured ~10 %
faster on the keypoint models' 1 M parameters on one CPU thread. ``fused`` is one kernel per
step, ~2.7x faster there, but it rounds differently, so a seed follows another (equally
deterministic) trajectory. ``benchmarks/bench_seed.py`` measures what a step costs.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..config import TrainConfig


def adam_flags(train: TrainConfig) -> dict[str, bool]:
    """``torch.optim.Adam``'s keyword arguments that select the implementation."""
    return {"single": {"foreach": False, "fused": False},
            "foreach": {"foreach": True, "fused": False},
            "fused": {"foreach": False, "fused": True}}[train.adam]


def make_optimizer(params: Iterable[torch.nn.Parameter], train: TrainConfig) -> torch.optim.Adam:
    """Adam on ``params`` with ``train.lr``, ``train.weight_decay`` and ``train.adam``."""
    return torch.optim.Adam(list(params), lr=train.lr, weight_decay=train.weight_decay,
                            **adam_flags(train))


def load_optimizer_state(optimizer: torch.optim.Adam, state: dict, train: TrainConfig) -> None:
    """Load a checkpoint's optimiser state, keeping this config's implementation (a state
    dict carries the flags it was saved with; the moments and step count do not depend on
    them)."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        group.update(adam_flags(train))
