"""CIFAR-10 from disk: find it (the pickled release or image folders), download
it when allowed, decode it once into a uint8 cache, and serve it from the
training device."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torchvision.datasets import CIFAR10

from . import cache
from .base import (
    STREAM_TEST_SUBSET,
    STREAM_TRAIN_SUBSET,
    DataBundle,
    DataError,
    Shard,
    balanced_subset,
    check_fits_one_batch,
    expand,
    parse_options,
)
from .decode import decode_images
from .device_loader import DeviceLoader
from .folder import check_split_dirs, image_folder

# Per-channel mean/std of the 50,000 training images of the pickled release.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
NORMALISATION = ("per-channel mean/std of the CIFAR-10 training set: mean (0.4914, 0.4822, 0.4465), "
                 "std (0.2470, 0.2435, 0.2616)")
SIZE = 32  # pixels
PICKLED_DIR = CIFAR10.base_folder  # "cifar-10-batches-py"
PICKLED_FILES = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
JPEG_DIR = "cifar10-jpeg"  # the folder inside depthlab's JPEG copy of CIFAR-10 (scripts/unpack_cifar.sh)


@dataclass(frozen=True)
class CIFAR10Options:  # conf/data/cifar10.yaml says what each means
    root: str = field(default_factory=lambda: os.environ.get("DEPTHLAB_DATA", "~/.cache/depthlab/data"))
    download: bool = True
    cache_dir: str = "~/.cache/depthlab/cache"
    train_subset: int | None = None
    test_subset: int | None = None
    augment: bool = True
    crop_padding: int = 4
    flip: bool = True


# --- finding ---------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    layout: str  # "pickled" (the python release) | "folders" (train/ + test/ image folders)
    path: Path  # the folder holding the batch files, or train/ and test/


def find_source(root: Path) -> Source | None:
    """The first layout present: pickled in root/cifar-10-batches-py or root itself,
    then image folders in root or root/cifar10-jpeg."""
    for path in (root / PICKLED_DIR, root):
        if any((path / name).is_file() for name in PICKLED_FILES):
            return Source("pickled", path)
    for path in (root, root / JPEG_DIR):
        if (path / "train").is_dir() or (path / "test").is_dir():
            return Source("folders", path)
    return None


def not_found(root: Path, why: str) -> DataError:
    return DataError(
        f"no CIFAR-10 under data.root={root} ({why}); it reads the pickled release "
        f"({root}/{PICKLED_DIR}/data_batch_1..5, test_batch, batches.meta) or image folders "
        f"({root}/train/<class>/*.png|jpg and {root}/test/<class>/..., also under "
        f"{root}/{JPEG_DIR}/); point data.root at one of them"
    )


def download(root: Path) -> Source:
    try:
        CIFAR10(str(root), train=True, download=True)  # fetches, checks md5, unpacks
    except Exception as err:  # no network, proxy, disk full, bad archive: all end the same way
        detail = " ".join(str(err).split())[:160] or type(err).__name__
        raise not_found(root, f"the download failed: {type(err).__name__}: {detail}") from None
    source = find_source(root)
    if source is None:
        raise not_found(root, "the download finished but left no readable files")
    return source


# --- reading ---------------------------------------------------------------------

class _Pickled(CIFAR10):
    """torchvision's reader of the pickled release, rooted at the batch folder itself
    and without its md5 checks, which reject every file but the byte-exact original
    (a re-pickled copy, a test fixture). Downloads are checked by CIFAR10 itself."""

    base_folder = ""
    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def read_pickled(path: Path) -> dict[str, np.ndarray]:
    try:
        train, test = _Pickled(str(path), train=True), _Pickled(str(path), train=False)
    except Exception as err:  # unpickling errors have many types
        raise DataError(f"cannot read the pickled CIFAR-10 in {path}: {type(err).__name__}: "
                        f"{' '.join(str(err).split())[:160]}") from None
    return {
        "train_x": np.ascontiguousarray(train.data.transpose(0, 3, 1, 2)),  # NHWC -> NCHW
        "train_y": np.asarray(train.targets, dtype=np.int64),
        "test_x": np.ascontiguousarray(test.data.transpose(0, 3, 1, 2)),
        "test_y": np.asarray(test.targets, dtype=np.int64),
        "classes": np.asarray(train.classes),
    }


def _pickled(path: Path) -> tuple[list[Path], Callable[[], dict[str, np.ndarray]]]:
    missing = [name for name in PICKLED_FILES if not (path / name).is_file()]
    if missing:
        raise DataError(f"incomplete pickled CIFAR-10 in {path}: missing {', '.join(missing)}; "
                        f"it needs {', '.join(PICKLED_FILES)}")
    return [path / name for name in PICKLED_FILES], lambda: read_pickled(path)


def _folders(path: Path) -> tuple[list[str], Callable[[], dict[str, np.ndarray]]]:
    classes = check_split_dirs(path, "train", "test")
    train, test = image_folder(path / "train"), image_folder(path / "test")

    def read() -> dict[str, np.ndarray]:
        return {
            "train_x": decode_images([p for p, _ in train.samples], SIZE, f"decoding {path}/train"),
            "train_y": np.asarray(train.targets, dtype=np.int64),
            "test_x": decode_images([p for p, _ in test.samples], SIZE, f"decoding {path}/test"),
            "test_y": np.asarray(test.targets, dtype=np.int64),
            "classes": np.asarray(classes),
        }

    return [p for p, _ in train.samples + test.samples], read


def load_arrays(o: CIFAR10Options) -> dict[str, np.ndarray]:
    """train_x/test_x (N, 3, 32, 32) uint8, train_y/test_y int64, classes: from the
    cache when this exact source was decoded before, else read, decoded and cached."""
    root = expand(o.root)
    source = find_source(root)
    if source is None:
        if not o.download:
            raise not_found(root, "data.download=false, so nothing was fetched")
        source = download(root)
    files, read = (_pickled if source.layout == "pickled" else _folders)(source.path)
    key = cache.fingerprint(source.layout, source.path, files)
    path = expand(o.cache_dir) / f"cifar10-{source.layout}-{key}.npz"
    try:
        return cache.cached(path, read)
    except OSError as err:
        raise DataError(f"cannot write the decoded CIFAR-10 to data.cache_dir={path.parent}: "
                        f"{err.strerror or err}") from None


# --- serving ---------------------------------------------------------------------

def build(cfg: Mapping[str, Any], *, batch_size: int, eval_batch_size: int,
          device: torch.device, seed: int, shard: Shard = Shard()) -> DataBundle:
    o = parse_options(CIFAR10Options, cfg, "cifar10")
    if not 0 <= o.crop_padding < SIZE:
        raise DataError(f"data.crop_padding must be 0..{SIZE - 1} pixels, got {o.crop_padding}")
    arrays = load_arrays(o)
    classes = [str(c) for c in arrays["classes"]]
    for split in ("train", "test"):
        labels = arrays[f"{split}_y"]
        if len(labels) and not 0 <= labels.min() <= labels.max() < len(classes):
            raise DataError(f"CIFAR-10 {split} labels run {labels.min()}..{labels.max()} but there "
                            f"are {len(classes)} class names; the data under data.root is corrupt")
    train_idx = balanced_subset(arrays["train_y"], o.train_subset, classes=classes, seed=seed,
                                stream=STREAM_TRAIN_SUBSET, key="train_subset")
    test_idx = balanced_subset(arrays["test_y"], o.test_subset, classes=classes, seed=seed,
                               stream=STREAM_TEST_SUBSET, key="test_subset")
    check_fits_one_batch(len(train_idx), batch_size)

    def on_device(split: str, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if len(idx) < len(y):  # copy only when a subset is taken
            x, y = x[idx], y[idx]
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    common = dict(mean=MEAN, std=STD, seed=seed, shard=shard)
    train = DeviceLoader(*on_device("train", train_idx), batch_size=batch_size, train=True,
                         crop_padding=o.crop_padding if o.augment else 0,
                         flip=o.flip and o.augment, **common)
    test = DeviceLoader(*on_device("test", test_idx), batch_size=eval_batch_size, train=False,
                        **common)
    return DataBundle(
        name="cifar10", train=train, test=test, num_classes=len(classes), image_size=SIZE,
        in_channels=3, train_size=len(train_idx), test_size=len(test_idx), classes=classes,
        normalisation=NORMALISATION,
    )
