"""What a data config points at, found without loading it: for a sweep's plan and
preflight (does the data exist, in a format depthlab reads, how many images).

`survey(cfg, fetch=True)` runs the real CIFAR-10 download when the data is
missing and downloads are allowed, so a sweep downloads once, before its first
run; `fetch=False` (a dry run) only says a download would happen. It counts the
images of every class where it lists them (image folders, decoded CIFAR-10), so a
class-balanced data.train_subset/test_subset that needs more of a class than it has
fails here, as the builders would. Every problem is a one-line DataError, the same
ones the builders raise.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .base import DataError, check_balanced_subset, expand, parse_options

CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000  # the release's split sizes


@dataclass(frozen=True)
class DataSurvey:
    description: str  # one line for the plan
    train_size: int  # images a run trains on (the subset where one is taken)
    test_size: int
    image_size: int  # pixels the model sees
    num_classes: int


def survey(cfg: Mapping[str, Any], *, fetch: bool = True) -> DataSurvey:
    name = cfg.get("name")
    if name == "cifar10":
        return _cifar10(cfg, fetch)
    if name == "synthetic":
        return _synthetic(cfg)
    if name in ("imagenet", "folder"):
        return _folder(cfg, name)
    from . import NAMES

    raise DataError(f"unknown data set {name!r} (data.name); valid: {', '.join(NAMES)}")


def _subset(cfg: Mapping[str, Any], key: str, available: int,
            classes: tuple[list[str], list[int]] | None = None) -> int:
    """The images data.<key> takes: all, or a class-balanced subset that must fit the data
    (`classes`: names and images per class, where the survey has read them; None for a
    release whose classes are all one size)."""
    size = cfg.get(key)
    if size is None:
        return available
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise DataError(f"data.{key} must be a positive number of images or null (all), got {size!r}")
    if size > available:
        raise DataError(f"data.{key}={size} is larger than the {available} images available; "
                        f"use at most {available} or null (all)")
    if classes is not None:
        check_balanced_subset(size, classes[1], classes[0], key)
    return int(size)


def _per_class(targets: Any, names: Any) -> tuple[list[str], list[int]]:
    """(class names, images per class) of a split's labels."""
    names = [str(n) for n in names]
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=len(names))
    return names, counts[:len(names)].tolist()


def _readable(root: Path) -> None:
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise DataError(f"data.root={root} is not readable (no read permission); "
                        "fix its permissions or point data.root elsewhere")


def _cifar10(cfg: Mapping[str, Any], fetch: bool) -> DataSurvey:
    from .cifar10 import (
        SIZE,
        CIFAR10Options,
        _pickled,
        check_split_dirs,
        download,
        find_source,
        load_arrays,
        not_found,
    )

    o = parse_options(CIFAR10Options, {k: v for k, v in cfg.items() if k != "layout"}, "cifar10")
    root = expand(o.root)
    _readable(root)
    if root.exists() and not root.is_dir():
        raise not_found(root, "data.root is a file, not a folder")
    source = find_source(root)
    if source is None:
        if not o.download:
            raise not_found(root, "data.download=false, so nothing is fetched")
        if not fetch:
            return DataSurvey(f"cifar10: not in {root} yet; the first run would download it "
                              "(about 170 MB)", _subset(cfg, "train_subset", CIFAR10_TRAIN),
                              _subset(cfg, "test_subset", CIFAR10_TEST), SIZE, 10)
        existed = root.exists()
        try:
            source = download(root)  # the real download; one-line DataError when it cannot happen
        except DataError:
            if not existed:  # leave nothing behind: the folder was made for the download
                shutil.rmtree(root, ignore_errors=True)
            raise
    what = "the pickled release" if source.layout == "pickled" else "image folders"
    per_class = {"train": None, "test": None}  # the release: 5,000 / 1,000 of every class
    if fetch:  # decode once here into data.cache_dir, not in every parallel run at once
        arrays = load_arrays(o)  # (it checks the files and lists the images itself)
        train, test = len(arrays["train_y"]), len(arrays["test_y"])
        per_class = {split: _per_class(arrays[f"{split}_y"], arrays["classes"])
                     for split in per_class}
    elif source.layout == "pickled":
        _pickled(source.path)  # all batch files there
        train, test = CIFAR10_TRAIN, CIFAR10_TEST
    else:
        from .folder import image_folder

        classes = check_split_dirs(source.path, "train", "test")
        folders = {split: image_folder(source.path / split) for split in per_class}
        per_class = {split: _per_class(f.targets, classes) for split, f in folders.items()}
        train, test = len(folders["train"].samples), len(folders["test"].samples)
    n_train = _subset(cfg, "train_subset", train, per_class["train"])
    n_test = _subset(cfg, "test_subset", test, per_class["test"])
    return DataSurvey(f"cifar10: {what} in {source.path}; {_sizes(n_train, train, n_test, test)}",
                      n_train, n_test, SIZE, 10)


def _synthetic(cfg: Mapping[str, Any]) -> DataSurvey:
    from .synthetic import SyntheticOptions

    o = parse_options(SyntheticOptions, {k: v for k, v in cfg.items() if k != "layout"}, "synthetic")
    return DataSurvey(f"synthetic: {o.train_size:,} train / {o.test_size:,} test images, "
                      f"{o.image_size} px, {o.num_classes} classes (made in memory)",
                      o.train_size, o.test_size, o.image_size, o.num_classes)


def _folder(cfg: Mapping[str, Any], name: str) -> DataSurvey:
    from .folder import FolderOptions, ImageNetOptions, check_split_dirs, image_folder

    opts = {k: v for k, v in cfg.items() if k != "layout"}
    if name == "imagenet":
        o = parse_options(ImageNetOptions, opts, "imagenet")
        train_dir, test_dir = "train", "val"
    else:
        o = parse_options(FolderOptions, opts, "folder")
        if not o.root:
            raise DataError("data.root is required for data=folder: a folder holding "
                            f"{o.train_dir}/<class>/<images> and {o.test_dir}/<class>/<images>")
        train_dir, test_dir = o.train_dir, o.test_dir
    root = expand(o.root)
    _readable(root)
    classes = check_split_dirs(root, train_dir, test_dir)
    train_set, test_set = image_folder(root / train_dir), image_folder(root / test_dir)
    train, test = len(train_set.samples), len(test_set.samples)
    n_train = _subset(cfg, "train_subset", train, _per_class(train_set.targets, classes))
    n_test = _subset(cfg, "test_subset", test, _per_class(test_set.targets, classes))
    return DataSurvey(f"{name}: image folders in {root}; {_sizes(n_train, train, n_test, test)}, "
                      f"{len(classes)} classes, {o.image_size} px", n_train, n_test,
                      o.image_size, len(classes))


def _sizes(n_train: int, train: int, n_test: int, test: int) -> str:
    def one(n: int, total: int, split: str) -> str:
        return f"{n:,} {split}" + (f" (class-balanced subset of {total:,})" if n < total else "")
    return f"{one(n_train, train, 'train')} / {one(n_test, test, 'test')} images"
