"""Everything a run needs before its first step: device, precision, data, model
(DDP-wrapped across ranks), optimizer, gradient-flow probe, the step, and its length."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from depthlab.data import DataBundle, Shard, build_data
from depthlab.engine.build import make_model, resolve_device
from depthlab.engine.distributed import World, rank_device
from depthlab.engine.errors import CudaGraphsError, SyncBatchNormError
from depthlab.engine.graphs import GraphedStep
from depthlab.engine.precision import FastPath, Precision, choose_fast_path, is_auto, make_precision
from depthlab.engine.step import StepResult, train_step
from depthlab.gradflow import GradFlowProbe
from depthlab.models import describe
from depthlab.optim import make_optimizer, run_length

# auto: the nets whose step is bound by kernel launches on a GPU (32 px images, 16-64
# channels); which ones gain is for the GPU benchmark (scripts/gpu_benchmark.py) to say.
GRAPH_AUTO_ARCHS = ("plain", "residual")


def use_cuda_graphs(cfg: dict[str, Any], device: torch.device, world: World) -> bool:
    """Whether the training step runs as a captured CUDA graph (trainer.cuda_graphs:
    true | false | auto). true where it cannot run is a one-line CudaGraphsError; auto
    is on for plain/residual nets of the cifar layout on one CUDA device in fp32/bf16."""
    t = cfg["trainer"]
    setting = t.get("cuda_graphs", False)
    if setting not in (True, False, "auto"):
        raise CudaGraphsError(f"trainer.cuda_graphs must be true, false or auto, got {setting!r}")
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
        raise CudaGraphsError(f"trainer.cuda_graphs=true needs {why_not}; use false or auto")
    if setting == "auto":
        return (why_not is None and cfg["arch"]["name"] in GRAPH_AUTO_ARCHS
                and cfg["arch"].get("layout") == "cifar")
    return bool(setting)


@dataclass
class Setup:
    """A run's working parts. `model` is the bare network (state dicts, gradient flow);
    `train_net` is what the training step calls (DDP-wrapped across ranks, compiled
    if asked); `eval_net` what evaluation calls (never DDP: each rank evaluates its
    own part of the test set with rank 0's buffers, then the sums are reduced).
    `step(optimizer, x, y, precision, probe, step)` is one training step: step.train_step
    on train_net, or its captured CUDA graph (graphs.GraphedStep). `fast_path` says how
    trainer.precision and trainer.channels_last were resolved."""

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
    step: Callable[..., StepResult]
    fast_path: FastPath


def resolve_fast_path(cfg: dict[str, Any], device: torch.device, world: World,
                      image_size: int, num_classes: int,
                      earlier: dict[str, Any] | None = None) -> FastPath:
    """trainer.precision / trainer.channels_last with `auto` resolved, the same on every
    rank: as the run's earlier sittings chose (`earlier`: its summary.json, on resume), else
    by precision.choose_fast_path, timing this net on rank 0 and broadcasting the choice."""
    t = cfg["trainer"]
    if not is_auto(t):
        return choose_fast_path(t, device, None)
    if earlier and earlier.get("precision") in ("fp32", "bf16", "fp16") and "channels_last" in earlier:
        return FastPath(earlier["precision"], bool(earlier["channels_last"]),
                        earlier.get("fast_path") or "auto: as this run's earlier sittings")
    from depthlab.engine.timing import time_step

    def timer(precision: str, channels_last: bool) -> float:
        return time_step(cfg, image_size=image_size, num_classes=num_classes,
                         precision=precision, channels_last=channels_last).seconds

    chosen = [choose_fast_path(t, device, timer) if world.main else None]
    if world.distributed:
        torch.distributed.broadcast_object_list(chosen, src=0)
    return chosen[0]


def build_setup(cfg: dict[str, Any], world: World, earlier: dict[str, Any] | None = None) -> Setup:
    """Build what `cfg` describes for this rank (the same on every rank but the device
    and the data shard). `earlier`: the run's summary.json from an earlier sitting, whose
    resolved precision a resumed `auto` run keeps."""
    t = cfg["trainer"]
    device = rank_device(resolve_device(str(t["device"])), world)
    if t.get("precision") != "auto":
        make_precision(t.get("precision", "fp32"), device)  # fp16 without CUDA fails before any work
    use_cuda_graphs({**cfg, "trainer": {**t, "precision": "fp32" if t.get("precision") == "auto"
                                        else t.get("precision")}}, device, world)  # ditto
    sync_bn = bool(cfg["arch"].get("sync_bn")) and world.distributed
    if sync_bn and device.type != "cuda":
        raise SyncBatchNormError(f"arch.sync_bn=true needs CUDA (SyncBatchNorm), and this run is "
                                 f"on {device}; use arch.sync_bn=false on the CPU")
    threads = t.get("threads")
    if not threads and world.distributed and device.type == "cpu":
        threads = max(1, (torch.get_num_threads() or 1) // world.size)  # share the cores
    if threads:
        torch.set_num_threads(int(threads))
    seed = int(cfg["seed"])

    data_cfg = {k: v for k, v in cfg["data"].items() if k != "layout"}  # layout is the model's
    data = build_data(data_cfg, batch_size=t["batch_size"], eval_batch_size=t["eval_batch_size"],
                      device=device, seed=seed, shard=Shard(world.rank, world.size))
    fast_path = resolve_fast_path(cfg, device, world, data.image_size, data.num_classes, earlier)
    precision = make_precision(fast_path.precision, device)
    graphs = use_cuda_graphs({**cfg, "trainer": {**t, "precision": fast_path.precision}}, device, world)
    torch.manual_seed(seed)  # the same initial weights on every rank (DDP checks them too)
    model = make_model(cfg, data.num_classes, data.image_size)
    desc = describe(model)
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if fast_path.channels_last:
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
                          activations=bool(gf.get("activations", True)) and not t.get("compile"),
                          ranks=world.size)
    step = GraphedStep(model, precision, probe) if graphs else functools.partial(train_step, train_net)
    return Setup(world=world, device=device, seed=seed, data=data, model=model,
                 train_net=train_net, eval_net=eval_net, desc=desc, optimizer=optimizer,
                 base_lrs=[g["lr"] for g in optimizer.param_groups], precision=precision,
                 probe=probe, steps_per_epoch=steps_per_epoch, epochs=epochs,
                 total_steps=total_steps, channels_last=fast_path.channels_last, step=step,
                 fast_path=fast_path)
