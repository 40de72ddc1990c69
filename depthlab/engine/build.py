"""The device and the network a config names: the two parts that a run, the plan's timer,
the probe and the lesion tool all build the same way."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from depthlab.engine.errors import DeviceError
from depthlab.models import build_model

# arch keys that are not build_model options: the name picks the builder, the layout
# is passed on its own, sync_bn is the engine's (it converts the built model)
ARCH_KEYS_NOT_OPTIONS = {"name", "layout", "sync_bn"}


def resolve_device(name: str, what: str = "trainer.device") -> torch.device:
    """cpu, cuda, cuda:N or auto (cuda when present) as a device of this machine; a one-line
    DeviceError (a ValueError) naming `what` otherwise: an unknown name, CUDA where there is
    none, cuda:N where N is not below the number of GPUs."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {name!r} for {what}; valid: cpu, cuda, cuda:N, auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{what}={name} but no CUDA device is available; use cpu or auto")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise DeviceError(f"{what}={name} but this machine has {count} CUDA device(s), "
                              f"cuda:0 to cuda:{count - 1}; use one of those, cuda, or auto")
    return device


def make_model(cfg: dict[str, Any], num_classes: int, image_size: int) -> nn.Module:
    """The network of cfg's arch and depth (not yet on a device)."""
    arch = cfg["arch"]
    options = {k: v for k, v in arch.items() if k not in ARCH_KEYS_NOT_OPTIONS}
    options["image_size"] = image_size
    return build_model(arch["name"], cfg["depth"], num_classes=num_classes,
                       layout=arch["layout"], **options)
