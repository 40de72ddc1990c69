"""Everything a run needs before its first step: device, precision, data, model
(DDP-wrapped across ranks), optimizer, gradient-flow probe, and its length."""

from __future__ import annotations

import platform
import socket
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch
from torch import nn

from depthlab.data import DataBundle, Shard, build_data
from depthlab.engine.distributed import World, rank_device
from depthlab.engine.graphs import GraphedStep
from depthlab.gradflow import GradFlowProbe
from depthlab.models import build_model, describe
from depthlab.optim import make_optimizer, run_length

# arch keys that are not build_model options: the name picks the builder, the layout
# is passed on its own, sync_bn is the engine's (it converts the built model)
ARCH_KEYS_NOT_OPTIONS = {"name", "layout", "sync_bn"}


class PrecisionError(ValueError):
    """A trainer or arch setting that the resolved device cannot run; str() is one line."""


class DevicesError(PrecisionError):
    """trainer.devices that does not fit how the run was started; str() is one line."""


# auto: the nets whose step is bound by kernel launches on a GPU (32 px images, 16-64
# channels); which ones gain is for the GPU benchmark (scripts/gpu_benchmark.py) to say.
GRAPH_AUTO_ARCHS = ("plain", "residual")


def use_cuda_graphs(cfg: dict[str, Any], device: torch.device, world: World) -> bool:
    """Whether the training step runs as a captured CUDA graph (trainer.cuda_graphs:
    true | false | auto). true where it cannot run is a one-line PrecisionError; auto
    is on for plain/residual nets of the cifar layout on one CUDA device in fp32/bf16."""
    t = cfg["trainer"]
    setting = t.get("cuda_graphs", False)
    if setting not in (True, False, "auto"):
        raise PrecisionError(f"trainer.cuda_graphs must be true, false or auto, got {setting!r}")
    why_not = None
    if device.type != "cuda":
        why_not = f"a CUDA device, and this run is on {device}"
    elif world.distributed:
        why_not = "one process (DDP's all-reduce inside a graph is not supported here)"
    elif t.get("compile"):
        why_not = "trainer.compile=false (both cut launch overhead: choose one)"
    elif t.get("precision", "fp32") == "fp16":
        why_not = "fp32 or bf16 (fp16's GradScaler checks for inf on the host)"
    elif cfg["arch"].get("memory_efficient"):
        why_not = "arch.memory_efficient=false (recomputation in backward)"
    if setting is True and why_not:
        raise PrecisionError(f"trainer.cuda_graphs=true needs {why_not}; use false or auto")
    if setting == "auto":
        return (why_not is None and cfg["arch"]["name"] in GRAPH_AUTO_ARCHS
                and cfg["arch"].get("layout") == "cifar")
    return bool(setting)


def resolve_device(name: str, what: str = "trainer.device") -> torch.device:
    """cpu, cuda, cuda:N or auto (cuda when present); ValueError naming `what` otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r} for {what}; valid: cpu, cuda, cuda:N, auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what}={name} but no CUDA device is available; use cpu or auto")
    return device


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 autocast runs on the CPU and on CUDA; fp16 needs CUDA (its GradScaler).
    The rule of config.check_config, applied again once `auto` is resolved."""
    if precision == "fp16" and device.type != "cuda":
        raise PrecisionError(f"trainer.precision=fp16 needs a CUDA device, and this run is on "
                             f"{device}; use bf16 or fp32 on the CPU")


def make_model(cfg: dict[str, Any], num_classes: int, image_size: int) -> nn.Module:
    arch = cfg["arch"]
    options = {k: v for k, v in arch.items() if k not in ARCH_KEYS_NOT_OPTIONS}
    options["image_size"] = image_size
    return build_model(arch["name"], cfg["depth"], num_classes=num_classes,
                       layout=arch["layout"], **options)


def machine() -> str:
    return f"{socket.gethostname()} ({platform.machine()}, {platform.system()}, torch {torch.__version__})"


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16
    autocast: Callable[[], ContextManager[Any]]
    scaler: torch.amp.GradScaler | None  # fp16 only


def make_precision(name: str, device: torch.device) -> Precision:
    check_precision(name, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
    return Precision(name, autocast, scaler)


@dataclass
class Setup:
    """A run's working parts. `model` is the bare network (state dicts, gradient flow);
    `train_net` is what the training step calls (DDP-wrapped across ranks, compiled
    if asked); `eval_net` what evaluation calls (never DDP: each rank evaluates its
    own part of the test set, then the sums are reduced)."""

    world: World
    device: torch.device
    seed: int
    data: DataBundle
    model: nn.Module
    train_net: nn.Module
    eval_net: nn.Module
    desc: dict[str, Any]
    optimizer: torch.optim.Optimizer
    base_lrs: list[float]
    precision: Precision
    probe: GradFlowProbe
    steps_per_epoch: int
    epochs: int
    total_steps: int
    channels_last: bool


def build_setup(cfg: dict[str, Any], world: World) -> Setup:
    """Build what `cfg` describes for this rank (the same on every rank but the device
    and the data shard)."""
    t = cfg["trainer"]
    device = rank_device(resolve_device(str(t["device"])), world)
    precision = make_precision(t.get("precision", "fp32"), device)
    graphs = use_cuda_graphs(cfg, device, world)  # before any work: true where it cannot run fails here
    sync_bn = bool(cfg["arch"].get("sync_bn")) and world.distributed
    if sync_bn and device.type != "cuda":
        raise PrecisionError(f"arch.sync_bn=true needs CUDA (SyncBatchNorm), and this run is on "
                             f"{device}; use arch.sync_bn=false on the CPU")
    threads = t.get("threads")
    if not threads and world.distributed and device.type == "cpu":
        threads = max(1, (torch.get_num_threads() or 1) // world.size)  # share the cores
    if threads:
        torch.set_num_threads(int(threads))
    seed = int(cfg["seed"])

    data_cfg = {k: v for k, v in cfg["data"].items() if k != "layout"}  # layout is the model's
    data = build_data(data_cfg, batch_size=t["batch_size"], eval_batch_size=t["eval_batch_size"],
                      device=device, seed=seed, shard=Shard(world.rank, world.size))
    torch.manual_seed(seed)  # the same initial weights on every rank (DDP checks them too)
    model = make_model(cfg, data.num_classes, data.image_size)
    desc = describe(model)
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if t.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    steps_per_epoch = len(data.train)
    if steps_per_epoch == 0:
        raise ValueError(f"the training set ({data.train_size} images) is smaller than one batch "
                         f"({t['batch_size']}); lower trainer.batch_size")
    epochs, total_steps = run_length(t, steps_per_epoch)

    train_net = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        train_net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    eval_net = model
    if t.get("compile"):
        train_net = torch.compile(train_net)
        eval_net = train_net if not world.distributed else torch.compile(model)
    # Block hooks inside a compiled graph would break it: no activation stats then.
    gf = cfg["gradflow"]
    probe = GradFlowProbe(model, desc["layers"], desc["blocks"],
                          activations=bool(gf.get("activations", True)) and not t.get("compile"))
    if graphs:
        train_net = GraphedStep(model, precision, probe)
    return Setup(world=world, device=device, seed=seed, data=data, model=model,
                 train_net=train_net, eval_net=eval_net, desc=desc, optimizer=optimizer,
                 base_lrs=[g["lr"] for g in optimizer.param_groups], precision=precision,
                 probe=probe, steps_per_epoch=steps_per_epoch, epochs=epochs,
                 total_steps=total_steps, channels_last=bool(t.get("channels_last")))
