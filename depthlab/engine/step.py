"""One SGD step: forward, loss, backward, gradient-flow record, optimizer step.

`train_step` is the eager step, the reference; `forward_loss` is its forward and loss, the part
that the CUDA-graph path (graphs.GraphedStep, trainer.cuda_graphs) captures, that the plan's
timer and the benchmarks time, and that the probe's one pass runs: one body for all of them.
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.engine.precision import Precision
from depthlab.gradflow import GradFlowProbe, GradFlowRecord
from depthlab.optim import learning_rate

StepResult = tuple[torch.Tensor, torch.Tensor, GradFlowRecord | None]


def set_learning_rate(optimizer: torch.optim.Optimizer, base_lrs: list[float],
                      schedule: dict[str, Any], step: int, total_steps: int) -> None:
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = learning_rate(schedule, base, step, total_steps)


def forward_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 autocast: Callable[[], ContextManager[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, loss): the forward pass under `autocast`, cross-entropy in fp32."""
    with autocast():
        out = net(x)
        loss = F.cross_entropy(out.float(), y)
    return out, loss


def correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct predictions of a batch, as a device tensor (no host sync)."""
    return (out.detach().argmax(1) == y).sum()


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, precision: Precision, probe: GradFlowProbe | None,
               step: int, *, grads_to_none: bool = True) -> StepResult:
    """(loss, correct predictions) as device tensors, and the gradient-flow record when
    `probe` is given (a recorded step). Under DDP, backward() returns once the weight
    gradients are averaged over the ranks, so their norms are the global batch's; the
    probe reduces its block statistics (output std, backward signal) over the ranks too.
    Under fp16 the record is of the unscaled loss, and is marked `overflow` where
    GradScaler found inf/NaN and skipped the step.
    `grads_to_none=False` zeroes the gradients in place (0 + g == g exactly) instead of
    dropping them: a captured CUDA graph must keep its static gradient tensors."""
    if probe is not None:
        probe.arm()
    out, loss = forward_loss(net, x, y, precision.autocast)
    optimizer.zero_grad(set_to_none=grads_to_none)
    scaler = precision.scaler
    scale = 1.0
    if scaler is not None:
        if probe is not None:
            scale = scaler.get_scale()  # what scale() multiplies this loss by (a host read)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # gradient flow sees true gradients
    else:
        loss.backward()
    record = probe.record(step, loss_scale=scale) if probe is not None else None
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
        if record is not None:
            # update() lowers the scale only after finding inf/NaN (and skipping the step)
            record.overflow = scaler.get_scale() < scale
    else:
        optimizer.step()
    return loss.detach(), correct(out, y), record
