"""One SGD step: forward, backward, gradient-flow record, optimizer step; eagerly (the
reference), or replayed as a captured CUDA graph (graphs.GraphedStep, trainer.cuda_graphs)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.engine.graphs import GraphedStep
from depthlab.engine.setup import Precision
from depthlab.gradflow import GradFlowProbe, GradFlowRecord
from depthlab.optim import learning_rate


def set_learning_rate(optimizer: torch.optim.Optimizer, base_lrs: list[float],
                      schedule: dict[str, Any], step: int, total_steps: int) -> None:
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = learning_rate(schedule, base, step, total_steps)


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, precision: Precision, probe: GradFlowProbe | None,
               step: int) -> tuple[torch.Tensor, torch.Tensor, GradFlowRecord | None]:
    """(loss, correct predictions) as device tensors, and the gradient-flow record when
    `probe` is given (a recorded step). Under DDP, backward() returns once the gradients
    are averaged over the ranks, so the record is the global batch's, as in one process."""
    if isinstance(net, GraphedStep):
        return net.step(optimizer, x, y, precision, probe, step)
    if probe is not None:
        probe.arm()
    with precision.autocast():
        out = net(x)
        loss = F.cross_entropy(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    scaler = precision.scaler
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # gradient flow sees true gradients
    else:
        loss.backward()
    record = probe.record(step) if probe is not None else None
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss.detach(), (out.detach().argmax(1) == y).sum(), record
