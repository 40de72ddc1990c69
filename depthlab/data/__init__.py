"""Data sets for depthlab runs: CIFAR-10 and synthetic images served whole from
the training device, ImageNet and any image folder through torchvision's
DataLoader. One entry point:

    >>> from depthlab.data import build_data
    >>> data = build_data({"name": "synthetic"}, batch_size=64, eval_batch_size=256,
    ...                   device="cpu", seed=0)
    >>> data.train.set_epoch(0)
    >>> x, y = next(iter(data.train))
    >>> tuple(x.shape), x.dtype, y.dtype
    ((64, 3, 32, 32), torch.float32, torch.int64)

`cfg` is the `data` config group (conf/data/<name>.yaml, a dict or DictConfig);
keys left out take the defaults those files show. Data knows nothing of Hydra.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from . import cifar10, folder, synthetic
from .base import DataBundle, DataError, Loader, Shard, check_batch_sizes, expand, parse_options

BUILDERS: dict[str, Callable[..., DataBundle]] = {
    "cifar10": cifar10.build,
    "imagenet": folder.build_imagenet,
    "folder": folder.build_folder,
    "synthetic": synthetic.build,
}
NAMES = tuple(BUILDERS)

__all__ = ["DataBundle", "DataError", "Loader", "NAMES", "Shard", "build_data", "config_facts"]


def build_data(cfg: Mapping[str, Any], *, batch_size: int, eval_batch_size: int,
               device: torch.device | str, seed: int, shard: Shard = Shard()) -> DataBundle:
    """The training and test loaders of the data set `cfg["name"]`, batches on `device`.

    Shuffling and augmentation of epoch e are a pure function of (seed, e): call
    `bundle.train.set_epoch(e)` before each epoch. `shard` (one run on several
    processes): batch_size is the global batch, each loader serves this rank's
    share (see Shard); eval_batch_size is per process. Raises DataError (one line)
    for anything the user can fix.
    """
    name = cfg.get("name")
    if name not in BUILDERS:
        raise DataError(f"unknown data set {name!r} (data.name); valid: {', '.join(NAMES)}")
    check_batch_sizes(batch_size, eval_batch_size)
    return BUILDERS[name](cfg, batch_size=batch_size, eval_batch_size=eval_batch_size,
                          device=torch.device(device), seed=int(seed), shard=shard)


def config_facts(cfg: Mapping[str, Any]) -> dict[str, int | None]:
    """num_classes, image_size, train_size and test_size as far as the data config
    tells them without reading any images (None where only the data can say): what
    a run that failed before its data was built can still record."""
    name = cfg.get("name")
    facts: dict[str, int | None] = dict.fromkeys(("num_classes", "image_size", "train_size",
                                                  "test_size"))
    options = {"synthetic": synthetic.SyntheticOptions, "cifar10": cifar10.CIFAR10Options,
               "imagenet": folder.ImageNetOptions, "folder": folder.FolderOptions}.get(name)
    if options is None:
        return facts
    try:
        o = parse_options(options, cfg, name)
    except DataError:
        return facts
    if name == "synthetic":
        return {"num_classes": o.num_classes, "image_size": o.image_size,
                "train_size": o.train_size, "test_size": o.test_size}
    facts.update(train_size=o.train_subset, test_size=o.test_subset)
    if name == "cifar10":
        facts.update(num_classes=10, image_size=cifar10.SIZE)
        return facts
    facts["image_size"] = o.image_size
    train_dir = "train" if name == "imagenet" else o.train_dir
    if o.root:
        try:  # class folders only: a directory listing, no images read
            facts["num_classes"] = len(folder.find_classes(str(expand(o.root) / train_dir))[0])
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            pass
    return facts
