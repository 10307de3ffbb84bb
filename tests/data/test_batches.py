"""Batch-at-a-time reading (hkmr/data/batches.py) and the keypoint pool's parallel placement:
the same samples, in the same order, with the same values as the item-by-item path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from hkmr.config import load_config
from hkmr.data.batches import batched_view, loader
from hkmr.data.keypoint_dataset import keypoint_source
from hkmr.data.keypoint_pool import place_split, split_rows
from hkmr.data.synthetic import synthetic_spec

TINY = ["data.synth_train=48", "data.synth_val=8", "data.synth_test=16",
        "data.keypoint_dropout=0.2", "model.prior=none"]


@pytest.fixture(scope="module")
def source():
    return keypoint_source(load_config("smoke_keypoints", TINY), log=lambda m: None)


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


def test_the_training_batches_are_the_item_by_item_batches(source):
    train = source.train
    train.set_epoch(3)  # fresh noise and drops
    batches = []
    for read in (lambda s: DataLoader(train, batch_size=20, sampler=s, drop_last=True),
                 lambda s: loader(train, 20, s, drop_last=True)):
        sampler = DistributedSampler(train, num_replicas=1, rank=0, shuffle=True, seed=5)
        sampler.set_epoch(2)
        batches.append(list(read(sampler)))
    assert batched_view(train) is not None
    assert len(batches[1]) == len(batches[0]) == len(train) // 20
    for a, b in zip(*batches):
        _same(a, b)
    assert not torch.equal(batches[1][0]["index"], torch.arange(20)), "shuffled"


def test_a_subset_of_an_occluded_test_set_reads_the_subsets_items(source):
    occluded = source.test.occluded("circle")
    rows = [5, 0, 17, 3, 9]
    subset = Subset(occluded, rows)
    (batch,) = list(loader(subset, 8))
    _same(batch, next(iter(DataLoader(subset, batch_size=8))))
    assert batch["index"].tolist() == rows and batch["occluded"].sum() > 0
    with pytest.raises(IndexError, match="batch indices"):
        batched_view(subset)[[0, 5]]


def test_a_pool_placed_in_two_processes_is_the_pool_placed_in_one(body_model):
    spec = synthetic_spec(load_config("smoke_keypoints", ["data.synth_train=300"]).data)
    one, two = split_rows(spec, "train", body_model), place_split(spec, "train", body_model, 2)
    assert len(one["image_id"]) == 1200
    for k in one:
        assert one[k].dtype == two[k].dtype and np.array_equal(one[k], two[k]), k
