"""Rank sharding of the data: each rank's batch i is its slice of the one-process
batch i (same samples, same augmentation), the slices are disjoint and cover the
batch, and the test set is split without padding."""

import numpy as np
import pytest
import torch
from cli.helpers import cli

from depthlab.data import DataError, Shard
from depthlab.data.device_loader import DeviceLoader
from depthlab.data.folder import EpochSampler


def loader(shard=Shard(), train=True, n=100, batch=20):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(n)  # a label names its sample
    return DeviceLoader(images, labels, batch_size=batch, mean=(0.5,) * 3, std=(0.25,) * 3,
                        train=train, seed=3, crop_padding=2 if train else 0, flip=train,
                        shard=shard)


@pytest.mark.parametrize("world", [2, 4])
def test_device_loader_ranks_split_each_global_batch(world):
    one = loader()
    ranks = [loader(Shard(r, world)) for r in range(world)]
    for start in (0, 2):  # a whole epoch, and one resumed at batch 2
        for ld in (one, *ranks):
            ld.set_epoch(4, start_batch=start)
        batches = list(one)
        per_rank = [list(r) for r in ranks]
        assert len(batches) == 5 - start and all(len(b) == len(batches) for b in per_rank)
        assert all(len(r) == len(one) == 5 for r in ranks)  # batches per epoch: the global count
        for i, (x, y) in enumerate(batches):
            assert torch.equal(torch.cat([b[i][1] for b in per_rank]), y)
            assert torch.equal(torch.cat([b[i][0] for b in per_rank]), x)  # same crops and flips
            assert all(len(b[i][1]) == 20 // world for b in per_rank)


def test_device_loader_test_parts_are_disjoint_and_cover_the_set():
    parts = [loader(Shard(r, 2), train=False, n=101, batch=16) for r in range(2)]
    labels = [torch.cat([y for _, y in p]).tolist() for p in parts]
    assert (len(labels[0]), len(labels[1])) == (51, 50)  # no padding
    assert sorted(labels[0] + labels[1]) == list(range(101))
    assert (len(parts[0]), len(parts[1])) == (4, 4)


@pytest.mark.parametrize("world", [2, 3])
def test_epoch_sampler_ranks_split_each_global_batch(world):
    indices = np.arange(10, 70)  # 60 samples, global batch 12: 5 batches
    one = EpochSampler(indices, shuffle=True, seed=7, batch_size=12)
    ranks = [EpochSampler(indices, shuffle=True, seed=7, batch_size=12, shard=Shard(r, world))
             for r in range(world)]
    for start in (0, 3):
        for s in (one, *ranks):
            s.set_epoch(2, start_batch=start)
        seq = list(one)
        per_rank = [list(r) for r in ranks]
        local = 12 // world
        assert len(seq) == len(one) == (5 - start) * 12
        assert all(len(r) == len(s) == (5 - start) * local for r, s in zip(per_rank, ranks))
        for i in range(5 - start):  # batch i = rank 0's part, rank 1's part, ...
            joined = sum((r[i * local:(i + 1) * local] for r in per_rank), [])
            assert joined == seq[i * 12:(i + 1) * 12]  # same samples and augmentation seeds
    everything = [i for r in per_rank for i, _ in r]
    assert len(set(everything)) == len(everything)  # disjoint


def test_epoch_sampler_test_parts_are_disjoint_and_cover_the_set():
    indices = np.arange(5, 30)
    parts = [list(EpochSampler(indices, shuffle=False, seed=0, batch_size=4, shard=Shard(r, 2)))
             for r in range(2)]
    got = [i for p in parts for i, _ in p]
    assert sorted(got) == list(range(5, 30)) and len(got) == 25


def test_a_global_batch_that_does_not_divide_is_one_line_error():
    with pytest.raises(DataError, match=r"trainer.batch_size=128 does not divide by 3 processes"):
        Shard(0, 3).batch(128)
    result = cli("train", "data=synthetic", "depth=8", "trainer.devices=3", "trainer.batch_size=128",
                 "logger=none")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "error: trainer.batch_size=128 is the global batch and must divide by trainer.devices=3; "
        "use a multiple of 3")


def test_devices_must_be_a_positive_number():
    result = cli("train", "data=synthetic", "depth=8", "trainer.devices=0", "logger=none")
    assert result.exit_code == 2
    assert "trainer.devices must be a positive number of processes, got 0" in result.output
