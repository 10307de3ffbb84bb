"""Data-parallel training (DDP) that is the same training as one process.

A trial with N workers (``workers_per_trial``) trains one model with N ranks, each on its
share of the one-process batch; ``train.batch_size`` is that *global* batch. For the N ranks
to take the optimiser steps one process would take:

* **Batches**: ``torch.utils.data.DistributedSampler`` (``drop_last``) gives rank r the
  positions r, r + N, r + 2N, ... of the epoch's permutation, which depends on the seed and
  the epoch only; with B / N samples a step, the ranks' step-s batches together are positions
  sB .. sB + B - 1: the one-process batch of step s (:func:`rank_batch_size`).
* **Gradients**: DDP averages the model's gradients over the ranks. Each term of Eq. 3 is a
  mean over the annotated entries of the batch (:mod:`hkmr.train.losses`), so a rank divides
  its sum by the global count / N (:meth:`Ranks.loss_denominators`, one all-reduce a step):
  the average of the ranks' gradients is then the gradient of the one-process loss.
* **The discriminator prior** (its own Adam, outside DDP) averages its gradients over the ranks
  (:meth:`Ranks.average_gradients`) and its real poses are the ranks' shares of one draw of B
  (:meth:`Ranks.share`), so every rank keeps the same discriminator.
* **Metrics**: the epoch's loss terms are means over all ranks' samples and its throughput is
  the images of all ranks per second (:meth:`Ranks.reduce_epoch`); validation runs once, on
  rank 0, while the others wait for its result (:meth:`Ranks.from_main`).

With one process (``world_size`` 1) every method is the identity and nothing communicates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def rank_batch_size(global_batch: int, world_size: int) -> int:
    """The samples a rank takes per step of the global batch ``train.batch_size``."""
    if global_batch % world_size:
        raise ValueError(f"train.batch_size={global_batch} is the global batch of a step; "
                         f"it must divide among the {world_size} workers of the trial "
                         "(workers_per_trial)")
    return global_batch // world_size


class Ranks:
    """The collective operations of rank ``rank`` of ``world_size`` (the default process group
    of ``torch.distributed``, which Ray Train's ``TorchTrainer`` initialises)."""

    def __init__(self, rank: int = 0, world_size: int = 1, device: torch.device | None = None):
        self.rank, self.world_size = rank, world_size
        self.device = device or torch.device("cpu")
        if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
            raise ValueError(f"world_size={world_size} needs an initialised torch.distributed "
                             "process group (a Ray Train TorchTrainer makes one)")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over the ranks of ``tensor`` (a new tensor; no gradient flows)."""
        if not self.distributed:
            return tensor
        out = tensor.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def loss_denominators(self, counts: torch.Tensor) -> torch.Tensor:
        """What a rank divides each term's sum by, from its own annotation ``counts``: the
        global batch's count (at least 1, as one process clamps it) over the world size."""
        return self.sum(counts).clamp(min=1) / self.world_size

    def share(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous 1/N of ``tensor`` (the same on every rank) along dim 0."""
        if not self.distributed:
            return tensor
        n = tensor.shape[0] // self.world_size
        return tensor[self.rank * n:(self.rank + 1) * n]

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Average the gradients of a module that DDP does not wrap, in place."""
        if not self.distributed:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def reduce_epoch(self, sums: dict[str, float], samples: int, seconds: float
                     ) -> tuple[dict[str, float], int, float]:
        """(means over all ranks' samples of the sample-weighted ``sums``, all ranks' samples,
        the slowest rank's seconds). ``sums`` holds the same keys on every rank."""
        if not self.distributed:
            return {k: v / max(samples, 1) for k, v in sums.items()}, samples, seconds
        keys = sorted(sums)
        values = torch.tensor([sums[k] for k in keys] + [float(samples)], dtype=torch.float64,
                              device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        slowest = torch.tensor([seconds], dtype=torch.float64, device=self.device)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        total = int(values[-1].item())
        means = {k: values[i].item() / max(total, 1) for i, k in enumerate(keys)}
        return means, total, slowest.item()

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only; every rank returns its result (the others wait)."""
        if not self.distributed:
            return fn()
        box = [fn() if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0,
                                   device=self.device if self.device.type == "cuda" else None)
        return box[0]
