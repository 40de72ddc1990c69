"""What a checkpoint holds: the model, the optimizer (and fp16 scaler), where the
run is, and what its final summary needs. A run killed after its last checkpoint
but before summary.json resumes with nothing left to train and still reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthlab.checkpoint import load_checkpoint, save_checkpoint
from depthlab.engine.errors import ResumeError


def new_totals() -> dict[str, float]:
    """The epoch so far: summed loss, correct predictions, images seen, seconds trained."""
    return {"loss": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}


@dataclass
class TrainState:
    epoch: int = 1  # the epoch to train next, from 1
    batch_in_epoch: int = 0  # batches of that epoch already trained
    step: int = 0  # optimizer steps taken
    totals: dict[str, float] = field(default_factory=new_totals)
    best_test_error: float = math.inf
    ratio_init: float | None = None  # first/last gradient ratio at step 0
    ratio_end: float | None = None  # ... at the last recorded step
    wall_before: float = 0.0  # seconds of the earlier sittings
    last_epoch_metrics: dict[str, float] = field(default_factory=dict)
    records_skipped: int = 0  # fp16: gradient-flow records of steps GradScaler skipped (inf/NaN)
    processes: list[int] = field(default_factory=list)  # of the sittings, where it changed: [2, 1]

    def checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None, wall_seconds: float) -> dict[str, Any]:
        """The checkpoint's dictionary (the keys depthlab has always written)."""
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            **({"scaler": scaler.state_dict()} if scaler is not None else {}),
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
            "acc": {k: float(v) for k, v in self.totals.items()},
            "best_test_error": self.best_test_error,
            "grad_ratio_first_last_init": self.ratio_init,
            "grad_ratio_first_last": self.ratio_end,
            "last_epoch_metrics": dict(self.last_epoch_metrics),
            "wall_seconds": wall_seconds,
            "gradflow_records_skipped": self.records_skipped,
            "processes": list(self.processes),
        }

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> "TrainState":
        return cls(
            epoch=state["epoch"], batch_in_epoch=state["batch_in_epoch"], step=state["step"],
            totals=dict(state["acc"]), best_test_error=state["best_test_error"],
            ratio_init=state.get("grad_ratio_first_last_init"),
            ratio_end=state.get("grad_ratio_first_last"),
            wall_before=state.get("wall_seconds", 0.0),
            last_epoch_metrics=dict(state.get("last_epoch_metrics", {})),
            records_skipped=int(state.get("gradflow_records_skipped", 0)),
            processes=[int(p) for p in state.get("processes", [])],
        )

    def save(self, run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler | None, wall_seconds: float) -> None:
        save_checkpoint(run_dir, self.checkpoint(model, optimizer, scaler, wall_seconds))


def resume(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scaler: torch.amp.GradScaler | None) -> TrainState | None:
    """Load the run directory's checkpoint, if any, into model/optimizer/scaler and
    return where it left off; None (nothing loaded) for a fresh start."""
    state = load_checkpoint(run_dir)
    if state is None:
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return TrainState.from_checkpoint(state)


def batch_norm_slices(model: nn.Module, sync_bn: bool, processes: int) -> int:
    """Into how many slices of the global batch a step's batch-norm statistics are taken:
    1 where they are the whole batch's (no batch norm; sync_bn; one process, where plain
    batch norm sees the whole batch as SyncBatchNorm would), else one per process."""
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return processes if has_bn and not sync_bn else 1


def continue_on(state: TrainState, processes: int, model: nn.Module, sync_bn: bool,
                batch_size: int, run_dir: Path, earlier: int | None = None) -> None:
    """Take `state` on to a sitting of `processes` processes. Another number than the last
    sitting's continues the same run, up to float summation order, where every step computes
    the same whatever the split of the global batch (data order and augmentation are a
    function of (seed, epoch), gradients are averaged over the batch); batch norm with per
    process statistics is not: ResumeError, one line. `earlier`: the last sitting's number
    where the checkpoint predates `processes` (its summary.json's)."""
    before = state.processes[-1] if state.processes else earlier
    if before is not None and before != processes:
        was, now = (batch_norm_slices(model, sync_bn, n) for n in (before, processes))
        if was != now:
            plural = "es" if before > 1 else ""
            raise ResumeError(
                f"{run_dir} was trained on {before} process{plural} with batch norm over "
                f"{batch_size // was} images (per process), {batch_size // now} on {processes}: "
                f"resume it on {before} process{plural} (trainer.devices={before}), "
                f"or pass --fresh")
    if not state.processes or state.processes[-1] != processes:
        state.processes.append(processes)
