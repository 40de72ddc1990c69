"""The training step as a captured CUDA graph (trainer.cuda_graphs): the fast path for
small nets on a GPU. The eager step (step.train_step) is the reference it must equal."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.gradflow import GradFlowProbe, GradFlowRecord

Result = tuple[torch.Tensor, torch.Tensor, GradFlowRecord | None]


class GraphedStep(nn.Module):
    """The training step of `model` replayed as one captured CUDA graph: forward, loss,
    backward and the probe's block statistics (output std, backward-signal norm) are
    recorded once and replayed on static buffers, so a small net costs a few launches
    a step instead of hundreds (small CIFAR nets on a GPU are bound by kernel launches,
    not arithmetic). The optimizer step, the learning rate and the host read of the
    gradient-flow record stay eager, outside the graph: the kernels are eager's own,
    so the numbers are eager's (tests/engine/test_cuda_graphs.py checks it on a GPU).

    The probe's block hooks are armed for the capture whatever the step, so every
    replay computes the block statistics (two small kernels a block); `probe` given to
    `step()` only says that this step is recorded (read to the host).

    The first `warmup` steps run eagerly on a side stream (lazy cuDNN/cuBLAS set-up must
    not happen during capture); they are real training steps. A batch of another shape
    than the captured one (none with the train loaders' whole batches) runs eagerly.
    Calling the module itself is the model's eager forward."""

    def __init__(self, model: nn.Module, precision: Any, probe: GradFlowProbe | None,
                 warmup: int = 3) -> None:
        super().__init__()
        self.model = model
        self.probe = probe
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision.name)
        # autocast's weight-cast cache must be off inside a capture (torch.cuda.graph docs);
        # the casts themselves are the same
        self.autocast = ((lambda: torch.autocast("cuda", dtype=dtype, cache_enabled=False))
                         if dtype else nullcontext)
        self.warmup = warmup
        self.eager_steps = 0
        self.replays = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self._side = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _eager(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               precision: Any, probe: GradFlowProbe | None, step: int) -> Result:
        """step.train_step's fp32/bf16 path (this module may not import step). Once a graph
        is captured the gradients must stay its static tensors: they are zeroed in place
        (0 + g == g exactly) instead of dropped."""
        self.eager_steps += 1
        optimizer.zero_grad(set_to_none=self.graph is None)
        if probe is not None:
            probe.arm()
        with precision.autocast():
            out = self.model(x)
            loss = F.cross_entropy(out.float(), y)
        loss.backward()
        record = probe.record(step) if probe is not None else None
        optimizer.step()
        return loss.detach(), (out.detach().argmax(1) == y).sum(), record

    def _capture(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
        self.static_x, self.static_y = x.clone(), y.clone()  # clone keeps channels_last
        optimizer.zero_grad(set_to_none=True)  # backward allocates .grad from the graph's pool
        if self.probe is not None:
            self.probe.arm()  # block hooks run once, in the capture: their kernels are in the graph
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            with self.autocast():
                out = self.model(self.static_x)
                loss = F.cross_entropy(out.float(), self.static_y)
            loss.backward()
            self.static_loss = loss.detach()
            self.static_correct = (out.detach().argmax(1) == self.static_y).sum()
        self.graph = graph
        self.block_tensors = probe_block_tensors(self.probe) if self.probe is not None else None

    def step(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
             precision: Any, probe: GradFlowProbe | None, step: int) -> Result:
        """One training step (see step.train_step): eager while warming up, then replays."""
        if self.graph is None and self.eager_steps < self.warmup:
            if self._side is None:
                self._side = torch.cuda.Stream()
            self._side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self._side):
                result = self._eager(optimizer, x, y, precision, probe, step)
            torch.cuda.current_stream().wait_stream(self._side)
            return result
        if self.graph is None:
            self._capture(optimizer, x, y)
        elif x.shape != self.static_x.shape or x.stride() != self.static_x.stride() \
                or y.shape != self.static_y.shape:
            return self._eager(optimizer, x, y, precision, probe, step)
        else:
            self.static_x.copy_(x)
            self.static_y.copy_(y)
        self.graph.replay()  # also the step just captured: capture runs no kernel
        self.replays += 1
        record = None
        if probe is not None:
            restore_block_tensors(probe, self.block_tensors)
            record = probe.record(step)
        optimizer.step()
        return self.static_loss, self.static_correct, record


# GradFlowProbe keeps the block statistics its hooks computed in `_act` / `_back` until
# record() reads them. A graph replay runs no Python, so the hooks do not fire again:
# the tensors they wrote during capture are refilled by every replay, and are handed
# back to the probe before each record. (Its only private coupling to the probe.)
def probe_block_tensors(probe: GradFlowProbe) -> dict[str, list[torch.Tensor | None]]:
    probe._armed = False
    return {name: list(getattr(probe, name)) for name in ("_act", "_back") if hasattr(probe, name)}


def restore_block_tensors(probe: GradFlowProbe, saved: dict[str, list[torch.Tensor | None]] | None) -> None:
    for name, tensors in (saved or {}).items():
        setattr(probe, name, list(tensors))
