"""The training step as a captured CUDA graph (trainer.cuda_graphs): the fast path for
small nets on a GPU. It captures step.forward_loss, the eager step's own forward and loss,
and warms up with step.train_step itself: the eager step is the reference it must equal."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from depthlab.engine.precision import AUTOCAST_DTYPES, Precision
from depthlab.engine.step import StepResult, correct, forward_loss, train_step
from depthlab.gradflow import GradFlowProbe


class GraphedStep:
    """A step object (called like step.train_step, without the net): the training step
    of `model` replayed as one captured CUDA graph: forward, loss,
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

    Streams, capture and replay are bound to `device`, the model's by default: a stream
    made without one lives on the current device (cuda:0), not on trainer.device=cuda:N."""

    def __init__(self, model: nn.Module, precision: Precision, probe: GradFlowProbe | None,
                 warmup: int = 3, device: torch.device | str | None = None) -> None:
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.probe = probe
        dtype = AUTOCAST_DTYPES.get(precision.name)
        # autocast's weight-cast cache must be off inside a capture (torch.cuda.graph docs);
        # the casts themselves are the same
        self.autocast = ((lambda: torch.autocast("cuda", dtype=dtype, cache_enabled=False))
                         if dtype else nullcontext)
        self.warmup = warmup
        self.eager_steps = 0
        self.replays = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self._side = None

    def _eager(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               precision: Precision, probe: GradFlowProbe | None, step: int) -> StepResult:
        """The eager step itself. Once a graph is captured the gradients must stay its
        static tensors, so they are zeroed in place instead of dropped."""
        self.eager_steps += 1
        return train_step(self.model, optimizer, x, y, precision, probe, step,
                          grads_to_none=self.graph is None)

    def _capture(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
        self.static_x, self.static_y = x.clone(), y.clone()  # clone keeps channels_last
        optimizer.zero_grad(set_to_none=True)  # backward allocates .grad from the graph's pool
        if self.probe is not None:
            self.probe.arm()  # block hooks run once, in the capture: their kernels are in the graph
        graph = torch.cuda.CUDAGraph()
        # its own capture stream on the model's device: torch.cuda.graph's default is one
        # stream for the whole process, made on whichever device was current first
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(device=self.device)):
            out, loss = forward_loss(self.model, self.static_x, self.static_y, self.autocast)
            loss.backward()
            self.static_loss = loss.detach()
            self.static_correct = correct(out, self.static_y)
        self.graph = graph
        self.block_tensors = probe_block_tensors(self.probe) if self.probe is not None else None

    def __call__(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 precision: Precision, probe: GradFlowProbe | None, step: int) -> StepResult:
        """One training step (see step.train_step): eager while warming up, then replays."""
        with torch.cuda.device(self.device):  # capture and replay use the current device's state
            return self._step(optimizer, x, y, precision, probe, step)

    def _step(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              precision: Precision, probe: GradFlowProbe | None, step: int) -> StepResult:
        if self.graph is None and self.eager_steps < self.warmup:
            if self._side is None:
                self._side = torch.cuda.Stream(device=self.device)
            current = torch.cuda.current_stream(self.device)
            self._side.wait_stream(current)
            with torch.cuda.stream(self._side):
                result = self._eager(optimizer, x, y, precision, probe, step)
            current.wait_stream(self._side)
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
