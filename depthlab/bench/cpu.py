"""The CPU benchmark (scripts/benchmark.py): its settings, the training-step and parity rows, and the whole table in one call."""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from depthlab.bench.nets import ModelSpec, compose, run_side, synthetic_batches, train_overrides
from depthlab.bench.reference import forward_backward_side, hand_side, torchvision_model
from depthlab.bench.results import load_average, machine_block, now
from depthlab.bench.rows import Row, make_row
from depthlab.bench.timing import interleaved, quiet_progress, say

BENCHMARKS = ("train", "gradflow", "data", "parity", "memory", "speed")


@dataclass(frozen=True)
class Settings:
    reps: int
    train: tuple[ModelSpec, ...]  # also the models of the gradflow rows
    gradflow_steps: int  # timed steps per variant per rep
    data_batch: int
    data_batches: int  # timed batches per loader per rep (after the first)
    parity: tuple[tuple[str, str, int], ...]  # (label, depthlab arch, depth) vs torchvision
    parity_size: int  # input side, pixels (large 7x7/2 stem on both)
    parity_batch: int
    parity_steps: int
    memory_depth: int
    memory_batch: int
    memory_parallel: bool  # both memory subprocesses at once (peak RSS is per process)
    speed: tuple[ModelSpec, ...] = ()  # bf16 + channels_last, torch.compile (speed.py)
    speed_reps: int | None = None  # None: reps


FULL = Settings(
    reps=5,
    train=(
        # timed windows of about 2 s a side: shorter ones left a +-5% rep-to-rep noise
        ModelSpec("residual-20 (cifar)", "residual", 20, "cifar", batch=32, warm=2, steps=30),
        ModelSpec("residual-50 (imagenet, 32 px)", "residual", 50, "imagenet", batch=4, warm=1,
                  steps=6),
        ModelSpec("dense-BC-100 (cifar)", "dense", 100, "cifar", batch=8, warm=2, steps=8),
    ),
    gradflow_steps=2,
    data_batch=128, data_batches=30,
    parity=(("residual-50 vs resnet50", "residual", 50), ("dense-121 vs densenet121", "dense", 121)),
    parity_size=64, parity_batch=8, parity_steps=2,
    memory_depth=190, memory_batch=64, memory_parallel=True,
    speed=(
        # bf16 step (1 thread): about 0.1 / 0.4 / 0.9 s; windows of 1-2 s a side, 3 reps
        ModelSpec("residual-20 (cifar)", "residual", 20, "cifar", batch=64, warm=2, steps=12),
        ModelSpec("residual-56 (cifar)", "residual", 56, "cifar", batch=64, warm=1, steps=3),
        ModelSpec("dense-BC-100 (cifar)", "dense", 100, "cifar", batch=32, warm=1, steps=2),
    ),
    speed_reps=3,
)

QUICK = Settings(
    reps=2,
    train=(
        ModelSpec("residual-8 (cifar)", "residual", 8, "cifar", batch=4, warm=1, steps=2),
        ModelSpec("dense-BC-10 (cifar)", "dense", 10, "cifar", batch=4, warm=1, steps=2),
    ),
    gradflow_steps=2,
    data_batch=8, data_batches=3,
    parity=(("residual-18 vs resnet18", "residual", 18), ("dense-121 vs densenet121", "dense", 121)),
    parity_size=32, parity_batch=2, parity_steps=1,
    memory_depth=40, memory_batch=4, memory_parallel=False,
    speed=(ModelSpec("residual-8 (cifar)", "residual", 8, "cifar", batch=4, warm=1, steps=2),),
)


def train_rows(s: Settings) -> list[Row]:
    """depthlab.train.run itself (gradient flow every step) against the hand loop over the
    same batches, per net."""
    rows = []
    for spec in s.train:
        assert spec.steps % spec.warm == 0, "steps must be a multiple of warm (run()'s log interval)"
        cfg = compose(train_overrides(spec))
        batches, data = synthetic_batches(cfg)
        say(f"train: {spec.label}, batch {spec.batch}, {spec.warm} + {spec.steps} steps x "
            f"{s.reps} reps")
        with quiet_progress():
            got = interleaved(s.reps, {"depthlab": run_side(cfg, spec.batch),
                                       "hand": hand_side(cfg, batches, data, spec.warm)})
        ratios = [a / b for a, b in zip(got["depthlab"], got["hand"])]
        rows.append(make_row(
            f"train/{spec.key}", f"training step: {spec.label}, batch {spec.batch}",
            depthlab=got["depthlab"], baseline=got["hand"], ratios=ratios, unit="img/s",
            target=(">=", 0.97), baseline_is="hand-written PyTorch loop",
            detail={"batch": spec.batch, "warm_steps": spec.warm, "timed_steps": spec.steps,
                    "overrides": train_overrides(spec)},
        ))
        say(f"  depthlab/hand = {rows[-1].ratio:.3f} (spread {rows[-1].spread[0]:.3f}-"
            f"{rows[-1].spread[1]:.3f})")
    return rows


def parity_rows(s: Settings) -> list[Row]:
    """Forward + backward of depthlab's imagenet-layout nets against torchvision's."""
    from depthlab.models import build_model, describe

    rows = []
    size, batch = s.parity_size, s.parity_batch
    for label, arch, depth in s.parity:
        ours = build_model(arch, depth, layout="imagenet", num_classes=1000, image_size=size,
                           stem="large")
        theirs = torchvision_model(arch, depth)
        params = (sum(p.numel() for p in ours.parameters()),
                  sum(p.numel() for p in theirs.parameters()))
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, size, size, generator=g)
        y = torch.randint(0, 1000, (batch,), generator=g)
        say(f"parity: {label}, batch {batch}, {size}x{size}, {s.parity_steps} steps x {s.reps} reps"
            f" (params {params[0]:,} vs {params[1]:,})")
        a = forward_backward_side(ours, x, y, s.parity_steps)
        b = forward_backward_side(theirs, x, y, s.parity_steps)
        a()  # warm-up
        b()
        got = interleaved(s.reps, {"depthlab": a, "torchvision": b})
        ratios = [p / q for p, q in zip(got["depthlab"], got["torchvision"])]
        tv_name = f"densenet{depth}" if arch == "dense" else f"resnet{depth}"
        rows.append(make_row(
            f"parity/{arch}-{depth}", f"model parity: {label}, batch {batch}, {size}x{size}",
            depthlab=got["depthlab"], baseline=got["torchvision"], ratios=ratios, unit="img/s",
            target=(">=", 0.98), baseline_is=f"torchvision.models.{tv_name}",
            detail={"params": {"depthlab": params[0], "torchvision": params[1]},
                    "flops": describe(ours)["flops"], "batch": batch, "image_size": size,
                    "timed_steps": s.parity_steps},
        ))
        say(f"  depthlab/torchvision = {rows[-1].ratio:.3f}")
        del ours, theirs
        gc.collect()
    return rows


def run(s: Settings, chosen: list[str], *, threads: int, data_root: Path, cache_dir: Path,
        profile_dir: Path | None = None, command: str = "", git: str | None = None,
        quick: bool = False) -> tuple[dict[str, Any], list[Row]]:
    """Every chosen benchmark, in BENCHMARKS' order: the result (latest.json) and its rows."""
    from depthlab.bench.feeding import data_row
    from depthlab.bench.memory import memory_rows
    from depthlab.bench.probe_cost import gradflow_rows
    from depthlab.bench.speed import speed_rows

    result: dict[str, Any] = {
        "date": now(), "command": command, "git": git, "quick": quick,
        "machine": machine_block(threads), "settings": asdict(s), "benchmarks": chosen,
    }
    started = time.perf_counter()
    runners: dict[str, Callable[[], list[Row]]] = {
        "train": lambda: train_rows(s),
        "gradflow": lambda: gradflow_rows(s.train, s.gradflow_steps, s.reps, profile_dir),
        "data": lambda: [data_row("data/cifar10", f"data feeding: CIFAR-10 train, batch "
                                  f"{s.data_batch}, crop + flip", batch=s.data_batch,
                                  batches=s.data_batches, reps=s.reps, data_root=data_root,
                                  cache_dir=cache_dir)],
        "parity": lambda: parity_rows(s),
        "memory": lambda: memory_rows(s.memory_depth, s.memory_batch, threads, s.memory_parallel),
        "speed": lambda: speed_rows(s.speed, s.speed_reps or s.reps, threads),
    }
    rows: list[Row] = []
    for name in BENCHMARKS:
        if name in chosen:
            rows += runners[name]()
    result["seconds"] = time.perf_counter() - started
    result["load_average_end"] = load_average()
    result["rows"] = [asdict(r) for r in rows]
    return result, rows
