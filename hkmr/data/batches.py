"""Batches of a dataset, read a batch at a time when the dataset can (one index tensor per batch,
no per-item Python), else item by item through PyTorch's collation.

A dataset that holds its rows in memory as tensors (the keypoint pool,
:class:`hkmr.data.keypoint_dataset.KeypointDataset`) implements :meth:`BatchedDataset.batch`:
``batch(indices)`` returns what ``default_collate([dataset[i] for i in indices])`` would —
the same keys, dtypes and values — in one gather per field. :func:`loader` builds the
``DataLoader`` of either kind with the same sampler and the same batch boundaries
(``BatchSampler(sampler, batch_size, drop_last)``, which is what a ``DataLoader`` with
``batch_size`` builds itself), so a batched dataset visits exactly the samples, in exactly the
order, of the item-by-item path: a trial's numbers do not depend on which path read its data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler, Subset


@runtime_checkable
class BatchedDataset(Protocol):
    """A dataset whose batches are read in one call (see the module docstring)."""

    def __len__(self) -> int: ...

    def batch(self, indices: torch.Tensor) -> dict: ...


class _Batches(Dataset):
    """A map-style view whose item ``[i0, i1, ...]`` is the batch of those positions (of the
    wrapped dataset, or of ``positions`` into it, as a ``Subset``'s)."""

    def __init__(self, dataset: BatchedDataset, positions: Sequence[int] | None = None):
        self.dataset = dataset
        self.positions = None if positions is None else torch.as_tensor(positions,
                                                                         dtype=torch.long)

    def __len__(self) -> int:
        return len(self.dataset) if self.positions is None else len(self.positions)

    def __getitem__(self, indices: list[int]) -> dict:
        index = torch.as_tensor(indices, dtype=torch.long)
        if index.numel() and not (0 <= int(index.min()) and int(index.max()) < len(self)):
            raise IndexError(f"batch indices outside 0..{len(self) - 1}")
        return self.dataset.batch(index if self.positions is None else self.positions[index])


def batched_view(dataset) -> _Batches | None:
    """The batch-at-a-time view of ``dataset`` (or of a ``Subset`` of one); None if it reads
    items only."""
    if isinstance(dataset, BatchedDataset):
        return _Batches(dataset)
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, BatchedDataset):
        return _Batches(dataset.dataset, dataset.indices)
    return None


def _as_is(batch):
    return batch


def loader(dataset, batch_size: int, sampler: Sampler | None = None, drop_last: bool = False,
           num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` in ``sampler``'s order (default: sequential) in batches
    of ``batch_size``, batch at a time where the dataset can be read so; ``pin_memory``:
    batches in page-locked memory (for non-blocking copies to a GPU)."""
    sampler = sampler if sampler is not None else SequentialSampler(dataset)
    view = batched_view(dataset)
    if view is None:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                          num_workers=num_workers, drop_last=drop_last, pin_memory=pin_memory)
    return DataLoader(view, sampler=BatchSampler(sampler, batch_size, drop_last),
                      batch_size=None, collate_fn=_as_is, num_workers=num_workers,
                      pin_memory=pin_memory)
