"""Seconds of one training step of a run's net, as the run will train it: the plan's estimate
and the `auto` precision choice both time through here.

What is timed is step.train_step itself on random images, with the run's precision, memory
format, torch.compile setting, gradient-flow probe (a recorded step every gradflow.every steps)
and thread count. On a GPU the real batch is timed, and on a CPU too where a step of it is
short (under REAL_BATCH_SECONDS by a first step of 8 images). Otherwise two smaller batches are
(8 and 32 images) and the step is extrapolated linearly to the real batch: a step costs a fixed
part (optimizer, weight gradients, the probe's record) plus a part per image, so seconds, not
minutes, even for ResNet-152.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

CPU_TIMING_BATCHES = (8, 32)  # images per timed step on the CPU (a GPU times the real batch)
REAL_BATCH_SECONDS = 1.5  # on the CPU the real batch is timed when its step takes at most this


@dataclass
class StepTime:
    seconds: float  # one training step at the real batch, the probe's share included
    compile_seconds: float = 0.0  # one-off: torch.compile's first step (0 when not compiled)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(cfg: dict[str, Any], *, image_size: int, num_classes: int,
              precision: str | None = None, channels_last: bool | None = None,
              threads: int | None = None) -> StepTime:
    """Time the training step of `cfg`'s net. `precision` / `channels_last` override the
    config's (how `auto` is decided: both candidates timed the same way); `threads`: torch
    threads for the timing (the plan passes the cores a run will really have)."""
    from depthlab.engine.build import make_model, resolve_device
    from depthlab.engine.precision import make_precision
    from depthlab.engine.step import train_step
    from depthlab.gradflow import GradFlowProbe
    from depthlab.models import describe

    t = cfg["trainer"]
    device = resolve_device(str(t["device"]))
    precision = precision or t.get("precision", "fp32")
    channels_last = bool(t.get("channels_last")) if channels_last is None else channels_last
    batch = int(t["batch_size"])
    every = max(1, int(cfg.get("gradflow", {}).get("every", 10)))
    before = torch.get_num_threads()
    threads = threads or t.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    try:
        torch.manual_seed(0)
        model = make_model(cfg, num_classes, image_size).to(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model.to(memory_format=fmt)
        desc = describe(model, flops=False)
        net = torch.compile(model) if t.get("compile") else model
        probe = GradFlowProbe(model, desc["layers"], desc["blocks"],
                              activations=bool(cfg.get("gradflow", {}).get("activations", True))
                              and not t.get("compile"))
        prec = make_precision(precision, device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def seconds(b: int, recorded: bool) -> float:
            x = torch.randn(b, 3, image_size, image_size, device=device).contiguous(memory_format=fmt)
            y = torch.randint(0, num_classes, (b,), device=device)
            _sync(device)
            start = time.perf_counter()
            train_step(net, opt, x, y, prec, probe if recorded else None, 0)
            _sync(device)
            return time.perf_counter() - start

        def at(b: int) -> float:
            """One step at batch b with the probe's share: plain + (recorded - plain) / every.
            A first, untimed step at each batch size: oneDNN (and torch.compile) build
            kernels per input shape, and bf16's cost several steps' worth."""
            seconds(b, True)
            plain, recorded = seconds(b, False), seconds(b, True)
            return plain + max(0.0, recorded - plain) / every

        try:
            small, large = CPU_TIMING_BATCHES
            warm = time.perf_counter()
            seconds(min(batch, small) if device.type == "cpu" else batch, True)  # warm-up
            compile_s = time.perf_counter() - warm if t.get("compile") else 0.0
            if device.type == "cuda" or batch <= small:
                return StepTime(at(batch), compile_s)
            t_small = at(small)
            # the real batch where its step is short: small batches run bf16 and
            # channels_last less well than big ones (reorders, per-call overhead), so an
            # extrapolation would misjudge them; else two batches, extrapolated
            if t_small * batch / small <= REAL_BATCH_SECONDS:
                return StepTime(at(batch), compile_s)
            large = min(large, batch)
            t_large = at(large)
            if large == batch:
                return StepTime(t_large, compile_s)
            per_image = max((t_large - t_small) / (large - small), 0.5 * t_large / large)
            return StepTime(t_large + per_image * (batch - large), compile_s)
        finally:
            probe.close()
    finally:
        torch.set_num_threads(before)
