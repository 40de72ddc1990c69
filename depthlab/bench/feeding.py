"""The data-feeding row: depthlab's device-resident CIFAR-10 loader vs torchvision's DataLoader + ImageFolder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch

from depthlab import machine
from depthlab.bench.reference import torchvision_batches, torchvision_dataset
from depthlab.bench.rows import Row, ratio_row, skipped_row
from depthlab.bench.timing import Clock, interleaved, say

TARGET = (">=", 5.0)


def jpeg_root(data_root: Path) -> Path | None:
    """The train/<class>/*.jpg folder of depthlab's JPEG copy of CIFAR-10 under data_root."""
    for path in (data_root / "cifar10-jpeg", data_root):
        train = path / "train"
        if train.is_dir() and any(train.glob("*/*.jp*g")):
            return path
    return None


def data_row(key: str, name: str, *, batch: int, batches: int, reps: int, data_root: Path,
             cache_dir: Path, device: torch.device | str = "cpu") -> Row:
    """depthlab's loader on `device` (the JPEGs decoded once into its uint8 cache, not
    timed) against torchvision's with all cores, its batches copied to `device`; images/s
    from the end of the first batch (worker start-up excluded) over the next `batches`."""
    folder = jpeg_root(data_root)
    if folder is None:
        why = (f"no CIFAR-10 JPEG folders under {data_root} (want cifar10-jpeg/train/<class>/*.jpg;"
               f" run scripts/unpack_cifar.sh or pass --data-root)")
        say(f"data: {why}")
        return skipped_row(key, name, why, f"{TARGET[0]} {TARGET[1]:g}x")
    import torchvision

    from depthlab.data import build_data

    dev = torch.device(device)
    workers = machine.cpu_count()
    say(f"data: {folder}, {batches} batches of {batch} x {reps} reps on {dev}; "
        f"torchvision with {workers} workers")
    data = build_data({"name": "cifar10", "root": str(folder), "download": False,
                       "cache_dir": str(cache_dir)},
                      batch_size=batch, eval_batch_size=batch, device=dev, seed=0)
    dataset = torchvision_dataset(folder)
    clock = Clock(dev)
    epoch = {"e": 0}

    def timed(it: Iterator[Any]) -> float:
        next(it)
        start = clock.now()
        for _ in range(batches):
            x, _ = next(it)
        return batches * len(x) / (clock.now() - start)

    def depthlab_side() -> float:
        epoch["e"] += 1
        data.train.set_epoch(epoch["e"])
        return timed(iter(data.train))

    def torchvision_side() -> float:
        it = torchvision_batches(dataset, batch, workers, dev)
        try:
            return timed(it)
        finally:
            del it  # shuts the workers down before the other side runs

    got = interleaved(reps, {"depthlab": depthlab_side, "torchvision": torchvision_side})
    copied = "" if dev.type == "cpu" else f", copied to {dev}"
    row = ratio_row(key, name, got, "depthlab", "torchvision", target=TARGET,
                    baseline_is=f"torchvision DataLoader + ImageFolder, {workers} workers{copied}",
                    detail={"folder": str(folder), "workers": workers, "batch": batch,
                            "timed_batches": batches, "device": str(dev),
                            "torchvision": torchvision.__version__})
    say(f"  depthlab/torchvision = {row.ratio:.1f}x")
    return row
