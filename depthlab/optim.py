"""Optimisers and learning-rate schedules by name, as conf/optim and conf/schedule give them.

    >>> optimizer = make_optimizer({"optim": {"name": "sgd", "lr": 0.1, ...}}, model)
    >>> learning_rate({"name": "cosine", "warmup": 0.1, "min_lr": 0.0}, 0.1, step, total)

Each name is one small function in a registry, like depthlab.data.BUILDERS; a new
optimiser or schedule is one function and one entry (and a conf/ file to choose it):

    OPTIMIZERS[name](params, optim_cfg) -> torch.optim.Optimizer
    SCHEDULES[name](schedule_cfg, base_lr, step, total, warm) -> learning rate

The linear warm-up is applied in one place (learning_rate), before any schedule: a
schedule sees only steps >= warm, the number of warm-up steps. Steps are 0-based.
An unknown name is a one-line ValueError that lists the valid ones.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

Optimizer = Callable[[Iterable[nn.Parameter], Mapping[str, Any]], torch.optim.Optimizer]
Schedule = Callable[[Mapping[str, Any], float, int, int, int], float]


# --------------------------------------------------------------------------- optimisers


def sgd(params: Iterable[nn.Parameter], o: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD with momentum (He et al. 2015); weight decay is an L2 penalty on all parameters."""
    return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"],
                           weight_decay=o["weight_decay"], nesterov=o.get("nesterov", False))


def adamw(params: Iterable[nn.Parameter], o: Mapping[str, Any]) -> torch.optim.Optimizer:
    """AdamW: Adam with decoupled weight decay."""
    return torch.optim.AdamW(params, lr=o["lr"], betas=tuple(o["betas"]),
                             weight_decay=o["weight_decay"])


OPTIMIZERS: dict[str, Optimizer] = {"sgd": sgd, "adamw": adamw}


# --------------------------------------------------------------------------- schedules


def step_decay(s: Mapping[str, Any], base_lr: float, step: int, total: int, warm: int) -> float:
    """base_lr times gamma per milestone passed; milestones are fractions of the whole run
    (warm-up included): the rate drops from step int(m * total) on."""
    passed = sum(step >= int(m * total) for m in s["milestones"])
    return base_lr * s["gamma"] ** passed


def cosine(s: Mapping[str, Any], base_lr: float, step: int, total: int, warm: int) -> float:
    """A cosine from base_lr down to min_lr (an absolute rate, reached at step == total), over
    the steps after warm-up, as torch's CosineAnnealingLR with T_max = total - warm."""
    min_lr = float(s.get("min_lr", 0.0))
    t = (step - warm) / max(1, total - warm)
    return min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))


SCHEDULES: dict[str, Schedule] = {"step": step_decay, "cosine": cosine}


# --------------------------------------------------------------------------- lookup


def lookup(registry: Mapping[str, Callable], what: str, key: str, name: Any) -> Callable:
    """registry[name]; an unknown name is a one-line ValueError naming the config key and
    listing the valid names, e.g. unknown optimizer 'adam' (optim.name); valid: sgd, adamw."""
    try:
        return registry[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name, e.g. a list
        raise ValueError(f"unknown {what} {name!r} ({key}); valid: {', '.join(registry)}") from None


def make_optimizer(cfg: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """The optimiser cfg["optim"] names, over all of the model's parameters."""
    o = cfg["optim"]
    return lookup(OPTIMIZERS, "optimizer", "optim.name", o["name"])(model.parameters(), o)


def run_length(trainer: Mapping[str, Any], steps_per_epoch: int) -> tuple[int | None, int]:
    """(epochs, optimizer steps) of a run: trainer.iterations when set (the papers count
    iterations; the last epoch may be partial), else trainer.epochs whole epochs.
    steps_per_epoch 0 means unknown (a run that failed before its data was read): then
    epochs is None for an iterations run, and the steps of an epochs run are 0."""
    if trainer.get("iterations"):
        total = int(trainer["iterations"])
        return (math.ceil(total / steps_per_epoch) if steps_per_epoch else None), total
    epochs = int(trainer["epochs"])
    return epochs, epochs * steps_per_epoch


def learning_rate(schedule: Mapping[str, Any], base_lr: float, step: int, total: int) -> float:
    """The learning rate of 0-based `step` of `total`: a linear warm-up over the first
    `warmup * total` steps (base_lr * (step + 1) / warm-up steps), then the schedule
    `schedule["name"]` names."""
    rule = lookup(SCHEDULES, "schedule", "schedule.name", schedule["name"])
    warm = int(schedule.get("warmup", 0.0) * total)
    if step < warm:
        return base_lr * (step + 1) / warm
    return rule(schedule, base_lr, step, total, warm)
