"""Image-folder data sets - ImageNet, or any train/ + test/ tree of class folders -
read with torchvision's ImageFolder and DataLoader and the standard transforms,
made reproducible: every sample's augmentation is seeded from (seed, epoch), so
it does not depend on the number of workers or on which worker loads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes
from torchvision.transforms import v2

from .base import (
    STREAM_TEST_SUBSET,
    STREAM_TRAIN_SUBSET,
    DataBundle,
    DataError,
    Shard,
    balanced_subset,
    check_fits_one_batch,
    epoch_generator,
    expand,
    parse_options,
)
from .decode import cpu_count

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet constants
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALISATION = "per-channel mean/std of ImageNet (torchvision's constants)"
SMALL_IMAGE = 64  # pixels; up to this, augment with padded RandomCrop (CIFAR-style), not RandomResizedCrop


def _data_home(sub: str) -> str:
    return os.path.join(os.environ.get("DEPTHLAB_DATA", "~/.cache/depthlab/data"), sub)


@dataclass(frozen=True)
class ImageNetOptions:  # conf/data/imagenet.yaml says what each means
    root: str = field(default_factory=lambda: _data_home("imagenet"))
    image_size: int = 224
    resize: int = 256
    workers: int = 8
    pin_memory: bool = True
    train_subset: int | None = None
    test_subset: int | None = None
    augment: bool = True


@dataclass(frozen=True)
class FolderOptions:  # conf/data/folder.yaml says what each means
    root: str | None = None
    train_dir: str = "train"
    test_dir: str = "test"
    image_size: int = 32
    resize: int | None = None
    workers: int = 8
    pin_memory: bool = True
    train_subset: int | None = None
    test_subset: int | None = None
    augment: bool = True


# --- finding and checking the folders ------------------------------------------

def layout_hint(root: Path, train_dir: str, test_dir: str) -> str:
    return f"expected {root}/{train_dir}/<class>/<images> and {root}/{test_dir}/<class>/<images>"


def check_split_dirs(root: Path, train_dir: str, test_dir: str) -> list[str]:
    """Class names shared by root/train_dir and root/test_dir; a one-line DataError
    when a folder is missing, has no class folders, or the two disagree."""
    hint = layout_hint(root, train_dir, test_dir)
    if not root.is_dir():
        raise DataError(f"data.root={root} is not a folder; {hint}")
    classes = {}
    for split in (train_dir, test_dir):
        if not (root / split).is_dir():
            raise DataError(f"missing {split}/ folder in data.root={root}; {hint}")
        try:
            classes[split] = find_classes(root / split)[0]
        except FileNotFoundError:
            raise DataError(f"no class folders in {root / split}; {hint}") from None
    train, test = classes[train_dir], classes[test_dir]
    if train != test:
        only_train = sorted(set(train) - set(test))
        only_test = sorted(set(test) - set(train))
        raise DataError(
            f"class folders of {train_dir}/ and {test_dir}/ in {root} differ: "
            f"only in {train_dir}/: {', '.join(only_train) or '-'}; "
            f"only in {test_dir}/: {', '.join(only_test) or '-'}; both need the same class folders"
        )
    return train


def image_folder(split_dir: Path) -> ImageFolder:
    """torchvision's ImageFolder (PIL images, no transform), every class folder non-empty."""
    try:
        ds = ImageFolder(str(split_dir), allow_empty=True)
    except FileNotFoundError:
        raise DataError(f"no class folders in {split_dir}") from None
    counts = np.bincount(np.asarray(ds.targets, dtype=np.int64), minlength=len(ds.classes))
    empty = [ds.classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        more = f" and {len(empty) - 3} more" if len(empty) > 3 else ""
        raise DataError(
            f"no images in class folder(s) {', '.join(empty[:3])}{more} of {split_dir}; "
            f"every class folder needs image files ({', '.join(IMG_EXTENSIONS)})"
        )
    return ds


# --- reproducible loading ---------------------------------------------------------

class EpochSampler(Sampler):
    """Yields (index, sample_seed) for `indices`: in order with seed 0 for evaluation;
    for training, shuffled with a seed per sample, both a pure function of (seed, epoch).

    DistributedSampler's contract (set_epoch; a rank's share of the data), written
    here because DistributedSampler gives no per-sample augmentation seeds, cannot
    start mid-epoch, and strides the permutation: with `batch_size` (global) a
    training rank yields, for each batch i, its 1/world slice of the one-process
    batch i, so N ranks train on exactly the samples one process would. Evaluation
    takes indices rank::world (no padding, nothing counted twice). set_epoch(e,
    start_batch=k) skips batches 0..k-1 of the epoch without loading their samples.
    """

    def __init__(self, indices: np.ndarray, *, shuffle: bool, seed: int, batch_size: int,
                 shard: Shard = Shard()) -> None:
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.indices = indices if shuffle else indices[shard.rank::shard.world]
        self.batch_size, self.shard, self.start_batch = batch_size, shard, 0
        self.local_batch = shard.batch(batch_size) if shuffle else batch_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        if not self.shuffle:
            return max(0, len(self.indices) - self.start_batch * self.batch_size)
        return (len(self.indices) // self.batch_size - self.start_batch) * self.local_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if not self.shuffle:
            start = self.start_batch * self.batch_size
            return ((int(i), 0) for i in self.indices[start:])
        g = epoch_generator(self.seed, self.epoch)
        # draw the whole epoch, then take this rank's slices: the same samples and seeds
        # as an uninterrupted one-process epoch
        order = torch.randperm(len(self.indices), generator=g).numpy()
        seeds = torch.randint(2**62, (len(self.indices),), generator=g)
        b, size = self.batch_size, self.local_batch
        first = self.shard.rank * size
        picked = np.concatenate([np.arange(i * b + first, i * b + first + size)
                                 for i in range(self.start_batch, len(self.indices) // b)] or [[]])
        picked = picked.astype(np.int64)
        return zip(self.indices[order[picked]].tolist(), seeds[picked].tolist())


class SeededTransform(Dataset):
    """base[index] through `transform`, run with torch's RNG seeded by the sample's own
    seed (the global state is saved and restored around it, so nothing else is disturbed)."""

    def __init__(self, base: Dataset, transform: Any) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        image, target = self.base[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), target


class FolderLoader:
    """A DataLoader over an EpochSampler that moves each batch to `device`."""

    def __init__(self, dataset: Dataset, sampler: EpochSampler, *, batch_size: int, train: bool,
                 workers: int, pin_memory: bool, device: torch.device) -> None:
        self.sampler, self.device, self.batch_size, self.train = sampler, device, batch_size, train
        self.loader = DataLoader(  # batches of this rank's share (sampler.local_batch)
            dataset, batch_size=sampler.local_batch, sampler=sampler, num_workers=workers,
            pin_memory=pin_memory, drop_last=train, persistent_workers=workers > 0,
        )

    def __len__(self) -> int:  # batches of a whole epoch, whatever its start batch
        n = len(self.sampler.indices)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch {start_batch} is outside 0..{len(self)}")
        self.sampler.set_epoch(epoch, start_batch=start_batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def transforms(*, train: bool, augment: bool, image_size: int, resize: int,
               mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """The standard ImageNet transforms, sized by image_size; small images get
    CIFAR-style padded random crops (RandomResizedCrop would throw most of them away)."""
    to_tensor = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if train and augment:
        if image_size <= SMALL_IMAGE:
            crop = [v2.Resize(image_size), v2.RandomCrop(image_size, padding=image_size // 8)]
        else:
            crop = [v2.RandomResizedCrop(image_size)]
        return v2.Compose([*crop, v2.RandomHorizontalFlip(), *to_tensor])
    return v2.Compose([v2.Resize(resize), v2.CenterCrop(image_size), *to_tensor])


# --- building ---------------------------------------------------------------------

def build_imagenet(cfg: Mapping[str, Any], *, batch_size: int, eval_batch_size: int,
                   device: torch.device, seed: int, shard: Shard = Shard()) -> DataBundle:
    o = parse_options(ImageNetOptions, cfg, "imagenet")
    return _build("imagenet", o, expand(o.root), "train", "val", o.resize,
                  batch_size=batch_size, eval_batch_size=eval_batch_size, device=device, seed=seed,
                  shard=shard)


def build_folder(cfg: Mapping[str, Any], *, batch_size: int, eval_batch_size: int,
                 device: torch.device, seed: int, shard: Shard = Shard()) -> DataBundle:
    o = parse_options(FolderOptions, cfg, "folder")
    if not o.root:
        raise DataError("data.root is required for data=folder: a folder holding "
                        f"{o.train_dir}/<class>/<images> and {o.test_dir}/<class>/<images>")
    return _build("folder", o, expand(o.root), o.train_dir, o.test_dir,
                  o.image_size if o.resize is None else o.resize,
                  batch_size=batch_size, eval_batch_size=eval_batch_size, device=device, seed=seed,
                  shard=shard)


def _build(name: str, o: Any, root: Path, train_dir: str, test_dir: str, resize: int, *,
           batch_size: int, eval_batch_size: int, device: torch.device, seed: int,
           shard: Shard) -> DataBundle:
    if o.image_size < 1:
        raise DataError(f"data.image_size must be a positive number of pixels, got {o.image_size}")
    if resize < o.image_size:
        raise DataError(f"data.resize={resize} is smaller than data.image_size={o.image_size}; "
                        f"the eval resize must be at least the crop size")
    if o.workers < 0:
        raise DataError(f"data.workers must be 0 (load in the main process) or more, got {o.workers}")
    classes = check_split_dirs(root, train_dir, test_dir)
    train_set, test_set = image_folder(root / train_dir), image_folder(root / test_dir)
    train_idx = balanced_subset(train_set.targets, o.train_subset, classes=classes, seed=seed,
                                stream=STREAM_TRAIN_SUBSET, key="train_subset")
    test_idx = balanced_subset(test_set.targets, o.test_subset, classes=classes, seed=seed,
                               stream=STREAM_TEST_SUBSET, key="test_subset")
    check_fits_one_batch(len(train_idx), batch_size)

    sized = dict(image_size=o.image_size, resize=resize, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    common = dict(workers=min(o.workers, cpu_count()),
                  pin_memory=o.pin_memory and device.type == "cuda", device=device)
    train = FolderLoader(
        SeededTransform(train_set, transforms(train=True, augment=o.augment, **sized)),
        EpochSampler(train_idx, shuffle=True, seed=seed, batch_size=batch_size, shard=shard), batch_size=batch_size, train=True, **common,
    )
    test = FolderLoader(
        SeededTransform(test_set, transforms(train=False, augment=False, **sized)),
        EpochSampler(test_idx, shuffle=False, seed=seed, batch_size=eval_batch_size, shard=shard),
        batch_size=eval_batch_size, train=False,
        **common,
    )
    return DataBundle(
        name=name, train=train, test=test, num_classes=len(classes), image_size=o.image_size,
        in_channels=3, train_size=len(train_idx), test_size=len(test_idx), classes=list(classes),
        normalisation=NORMALISATION,
    )
