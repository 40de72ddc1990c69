"""What every data set shares: the bundle handed to training, the one error
type, option parsing, seeds, and class-balanced subsets."""

from __future__ import annotations

import os
import types
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence, Union

import numpy as np
import torch


class DataError(ValueError):
    """A user-facing data problem; str() is one line: what was wrong and what is valid."""


class Loader(Protocol):
    """Batches of (x, y) already on the training device."""

    def __len__(self) -> int: ...  # batches per epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    # Order/augmentation of epoch e = f(seed, e). start_batch=k: iteration yields that
    # epoch's batches k, k+1, ... (a resume mid-epoch) without producing 0..k-1.
    def set_epoch(self, epoch: int, start_batch: int = 0) -> None: ...


@dataclass(frozen=True)
class Shard:
    """This process's part of the data when one run trains on several processes
    (DistributedDataParallel): process `rank` of `world`. Training batch i of rank r
    is its 1/world slice of the one-process run's batch i, so the ranks together see
    exactly the samples one process would; the test set is split into disjoint
    strided parts (rank::world), no sample padded in or counted twice."""

    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is outside 0..{self.world - 1}")

    def batch(self, global_batch: int) -> int:
        """This rank's share of a global batch (trainer.batch_size is the global batch)."""
        if global_batch % self.world:
            raise DataError(f"trainer.batch_size={global_batch} does not divide by "
                            f"{self.world} processes; use a multiple of {self.world}")
        return global_batch // self.world


@dataclass
class DataBundle:
    name: str  # "cifar10" | "imagenet" | "folder" | "synthetic"
    train: Loader  # shuffled, augmented, last incomplete batch dropped; this rank's share of each batch
    test: Loader  # fixed order, no augmentation, every sample once (this rank's part of the set)
    num_classes: int
    image_size: int  # H == W of the tensors the model sees
    in_channels: int
    train_size: int  # training images actually used (after train_subset), all ranks together
    test_size: int  # all ranks together
    classes: list[str]
    normalisation: str  # human-readable description of what x was normalised with


# Independent random streams derived from the run seed; an epoch's stream also
# takes the epoch number, so resuming at an epoch boundary replays it exactly.
STREAM_TRAIN_SUBSET = 1
STREAM_TEST_SUBSET = 2
STREAM_EPOCH = 3


def derive_seed(seed: int, *stream: int) -> int:
    """A 63-bit seed that depends on (seed, *stream) only, well mixed (numpy's SeedSequence)."""
    words = np.random.SeedSequence([seed % 2**64, *stream]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for one epoch's order and augmentation (never the global RNG;
    CPU so that the same seed gives the same batches on any device)."""
    return torch.Generator().manual_seed(derive_seed(seed, STREAM_EPOCH, epoch))


# --- options -----------------------------------------------------------------

# Keys of the data config group that are not data options: `name` picks the
# builder; `layout` is the network layout the set gets by default (the trainer's).
NOT_OPTIONS = ("name", "layout")


def parse_options(cls: type, cfg: Mapping[str, Any], name: str) -> Any:
    """Build the options dataclass `cls` from the `data` config; unknown keys and
    wrongly typed values are one-line DataErrors (a typo must not pass silently)."""
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(cfg) - set(known) - set(NOT_OPTIONS))
    if unknown:
        raise DataError(
            f"unknown key(s) {', '.join('data.' + k for k in unknown)} for data={name}; "
            f"valid: {', '.join([*NOT_OPTIONS, *known])}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name in cfg:
            value = cfg[f.name]
        elif f.default is not MISSING:
            value = f.default
        else:
            value = f.default_factory()  # type: ignore[misc]
        values[f.name] = _check_type(f.name, value, hints[f.name])
    return cls(**values)


def _check_type(key: str, value: Any, hint: Any) -> Any:
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, (str, Path)):
            return str(value)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    expected = " or ".join(words[k] for k in allowed)
    raise DataError(f"data.{key} must be {expected}, got {value!r}")


def expand(path: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(path)))


def check_batch_sizes(batch_size: Any, eval_batch_size: Any) -> None:
    for what, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataError(f"{what} must be a positive integer, got {value!r}")


def check_fits_one_batch(train_size: int, batch_size: int) -> None:
    # The training loader drops the last incomplete batch (BatchNorm), so a set
    # smaller than one batch would give an epoch of zero steps.
    if train_size < batch_size:
        raise DataError(
            f"the training set has {train_size} images, fewer than one batch of {batch_size}; "
            f"lower the batch size or raise data.train_subset"
        )


# --- subsets -----------------------------------------------------------------

def balanced_subset(labels: Any, size: int | None, *, classes: list[str], seed: int,
                    stream: int, key: str) -> np.ndarray:
    """Indices (ascending) of a class-balanced subset of `size` samples: the first
    size // C of each class after a seeded shuffle, the remainder going one each to
    the first classes. size None = every sample."""
    labels = np.asarray(labels, dtype=np.int64)
    n, num_classes = len(labels), len(classes)
    if size is None:
        return np.arange(n)
    if size <= 0:
        raise DataError(f"data.{key} must be a positive number of images or null (all), got {size}")
    if size > n:
        raise DataError(f"data.{key}={size} is larger than the {n} images available; "
                        f"use at most {n}, or null for all")
    counts = np.bincount(labels, minlength=num_classes)[:num_classes].tolist()
    check_balanced_subset(size, counts, classes, key)
    rng = np.random.default_rng(np.random.SeedSequence([seed % 2**64, stream]))
    order = rng.permutation(n)
    shuffled = labels[order]
    picked = [order[shuffled == c][:class_quota(size, num_classes, c)] for c in range(num_classes)]
    return np.sort(np.concatenate(picked))


def class_quota(size: int, num_classes: int, c: int) -> int:
    """Images of class `c` (0-based) in a class-balanced subset of `size`: size // C, and
    one more for each of the first size % C classes."""
    return size // num_classes + (c < size % num_classes)


def largest_balanced_subset(counts: Sequence[int]) -> int:
    """The largest subset `balanced_subset` can take from classes of these sizes (in class
    order): the smallest class's size from every class, plus one from each class of the
    leading run of larger classes (where the remainder goes)."""
    smallest = min(counts)
    extra = next((i for i, n in enumerate(counts) if n <= smallest), len(counts))
    return smallest * len(counts) + extra


def check_balanced_subset(size: int, counts: Sequence[int], classes: Sequence[str], key: str) -> None:
    """A one-line DataError when a class-balanced subset of `size` needs more images of a
    class than it has (`counts`: images per class, in class order), naming the largest
    subset that fits. Shared by the builders and the sweep's preflight (data.survey)."""
    for c, have in enumerate(counts):
        quota = class_quota(size, len(counts), c)
        if have < quota:
            raise DataError(f"data.{key}={size} needs {quota} images of class {classes[c]!r} "
                            f"but it has {have} (class-balanced: {size} images over {len(counts)} "
                            "classes); use at most "
                            f"{largest_balanced_subset(counts)}, or null for all")
