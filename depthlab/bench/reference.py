"""The baselines, written by hand as a researcher would: the tutorial training loop, torchvision's models and loader."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.bench.nets import fresh_model
from depthlab.bench.timing import Clock
from depthlab.engine.precision import AUTOCAST_DTYPES


def hand_optimizer(model: nn.Module, o: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD with the config's lr, momentum and weight decay (optim=sgd)."""
    return torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"],
                           weight_decay=o["weight_decay"])


def hand_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The minimal PyTorch training step every tutorial writes; with `dtype`, its forward
    under autocast and the loss in fp32 (the mixed-precision recipe of PyTorch's docs)."""
    if dtype is None:
        out = model(x)
        loss = F.cross_entropy(out, y)
    else:
        with torch.autocast(x.device.type, dtype=dtype):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def hand_side(cfg: dict[str, Any], batches: list[tuple[torch.Tensor, torch.Tensor]], data: Any,
              warm: int, *, steps: int | None = None, device: str = "cpu", precision: str = "fp32",
              channels_last: bool = False,
              wrap: Callable[[nn.Module], nn.Module] = lambda model: model) -> Callable[[], float]:
    """A side for interleaved(): the hand loop on a fresh model of cfg (same seed) over
    `batches` (run()'s, moved to the device and memory format once, beforehand), at the same
    precision (autocast) and memory format; images/s of the `steps` after the first `warm`
    (default: all the rest), timed on a device-synchronising clock. `wrap` puts the fresh model in what trains it
    (DistributedDataParallel for the DDP row)."""
    dev = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    steps = len(batches) - warm if steps is None else steps
    batches = [(x.to(dev).contiguous(memory_format=fmt), y.to(dev))
               for x, y in batches[:warm + steps]]
    dtype = AUTOCAST_DTYPES.get(precision)
    clock = Clock(dev)
    images = sum(len(y) for _, y in batches[warm:])

    def once() -> float:
        model = fresh_model(cfg, data).to(dev, memory_format=fmt)
        optimizer = hand_optimizer(model, cfg["optim"])
        net = wrap(model)
        for x, y in batches[:warm]:
            hand_step(net, optimizer, x, y, dtype)
        start = clock.now()
        for x, y in batches[warm:]:
            hand_step(net, optimizer, x, y, dtype)
        return images / (clock.now() - start) if steps else float("nan")
    return once


def forward_backward_side(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          steps: int) -> Callable[[], float]:
    """A side for interleaved(): `steps` forward + backward (+ zero_grad) of `model` on one
    batch, images/s; the same for depthlab's model and torchvision's (the parity rows)."""
    model.train()

    def once() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            F.cross_entropy(model(x), y).backward()
            model.zero_grad(set_to_none=True)
        return steps * len(x) / (time.perf_counter() - start)
    return once


def torchvision_model(arch: str, depth: int) -> nn.Module:
    """torchvision's resnet<depth> or densenet<depth>, as a researcher would take it."""
    import torchvision

    name = f"densenet{depth}" if arch == "dense" else f"resnet{depth}"
    return getattr(torchvision.models, name)()


def torchvision_dataset(folder: Path) -> Any:
    """ImageFolder(folder/train) with the usual CIFAR-10 augmentation: RandomCrop(32,
    padding=4), RandomHorizontalFlip, ToTensor, Normalize."""
    import torchvision
    import torchvision.transforms as T

    from depthlab.data.cifar10 import MEAN, STD

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(MEAN, STD)])
    return torchvision.datasets.ImageFolder(str(folder / "train"), transform=transform)


def torchvision_batches(dataset: Any, batch: int, workers: int,
                        device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A fresh DataLoader(dataset, shuffle=True, num_workers=workers) iterator, its batches
    copied to `device` when that is not the CPU. Delete it to stop the workers."""
    from torch.utils.data import DataLoader

    dev = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        drop_last=True, pin_memory=dev.type == "cuda")
    if dev.type == "cpu":
        return iter(loader)

    def moved() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in loader:
            yield x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
    return moved()
