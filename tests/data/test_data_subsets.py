"""Class-balanced subsets: counts, determinism, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlab.data import DataError, build_data
from depthlab.data.base import balanced_subset

CLASSES = [f"c{i}" for i in range(10)]
LABELS = np.repeat(np.arange(10), 20)  # 20 per class, sorted by class


def subset(size, seed=0, labels=LABELS):
    return balanced_subset(labels, size, classes=CLASSES, seed=seed, stream=1, key="train_subset")


def test_divisible_subset_is_balanced():
    idx = subset(50)
    assert len(idx) == len(set(idx.tolist())) == 50
    assert np.bincount(LABELS[idx], minlength=10).tolist() == [5] * 10
    assert (np.diff(idx) > 0).all()  # kept in the data set's order


def test_remainder_goes_to_the_first_classes():
    assert np.bincount(LABELS[subset(23)], minlength=10).tolist() == [3, 3, 3] + [2] * 7


def test_subset_is_deterministic_per_seed():
    assert subset(30, seed=4).tolist() == subset(30, seed=4).tolist()
    assert subset(30, seed=4).tolist() != subset(30, seed=5).tolist()


def test_none_is_everything_and_full_size_is_everything():
    assert subset(None).tolist() == list(range(200))
    assert subset(200).tolist() == list(range(200))


@pytest.mark.parametrize("size", [0, -5])
def test_non_positive_subset(size):
    with pytest.raises(DataError, match=f"data.train_subset must be a positive .* got {size}"):
        subset(size)


def test_subset_larger_than_the_data_set_names_both_numbers():
    with pytest.raises(DataError) as err:
        subset(201)
    assert "201" in str(err.value) and "200" in str(err.value)


def test_subset_needing_more_of_a_class_than_it_has():
    labels = np.concatenate([np.repeat(np.arange(9), 20), [9]])  # class c9 has one image
    with pytest.raises(DataError, match="needs 3 images of class 'c9' but it has 1"):
        subset(30, labels=labels)


def test_subsets_through_build_data():
    cfg = {"name": "synthetic", "train_size": 100, "test_size": 50}
    data = build_data(cfg, batch_size=10, eval_batch_size=50, device="cpu", seed=0)
    assert data.train_size == 100  # synthetic sets are sized directly, already balanced
    labels = torch.cat([y for _, y in data.train])
    assert torch.bincount(labels, minlength=10).tolist() == [10] * 10
