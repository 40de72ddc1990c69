"""Metric sinks: where a run's numbers go. Local files always; W&B optionally.

Every sink has the same five calls, made by `depthlab.train` in this order:

    start(run)                          once (also after a resume)
    log_step(step, metrics)             every trainer.log_every steps
    log_gradflow(epoch, record)         every gradflow.every steps (GradFlowRecord)
    log_epoch(epoch, step, metrics)     after each epoch's evaluation
    finish(summary)                     once, whatever the outcome

A sink never stops a run: the training loop wraps non-local sinks so that an
exception in them becomes one warning (see `tracking.safe`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # for the annotation only: importing tracking loads no torch
    from depthlab.models import Layer


@dataclass
class RunInfo:
    name: str  # e.g. "plain-34-s0"
    group: str  # the sweep's name ("train" for a single run)
    run_dir: Path
    config: dict[str, Any]  # the resolved config
    description: dict[str, Any]  # describe(model) without "layers"/"blocks"
    layers: list[Layer]
    blocks: list[str]
    resumed_from_step: int | None = None  # steps done at the checkpoint; None: a fresh start
    extra: dict[str, Any] = field(default_factory=dict)
    # what the run resolved that its config leaves open (trainer.precision=auto) and the
    # machine it runs on, as dotted keys: W&B's config shows these values, config.yaml the typed ones
    resolved: dict[str, Any] = field(default_factory=dict)


def resolved_config(run: RunInfo) -> dict[str, Any]:
    """run.config with run.resolved's dotted keys set (a copy: run.config is unchanged)."""
    import copy

    config = copy.deepcopy(run.config)
    for key, value in run.resolved.items():
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


class Sink(Protocol):
    def start(self, run: RunInfo) -> None: ...
    def log_step(self, step: int, metrics: dict[str, float]) -> None: ...
    def log_gradflow(self, epoch: int, record: Any) -> None: ...
    def log_epoch(self, epoch: int, step: int, metrics: dict[str, float]) -> None: ...
    def finish(self, summary: dict[str, Any]) -> None: ...
