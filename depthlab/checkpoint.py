"""Checkpoints that survive kills: write to a temp file, fsync, rename; keep
the previous good one; load with `torch.load(weights_only=True)` (no pickles)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from depthlab.rundir import CHECKPOINT, atomic_file
from depthlab.rundir import CHECKPOINT_PREVIOUS as PREVIOUS

log = logging.getLogger("depthlab")

FORMAT = 1


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    # the last good one stays, as PREVIOUS, until the new one is in place
    with atomic_file(path, keep=run_dir / PREVIOUS) as f:
        torch.save({"format": FORMAT, **state}, f)
    return path


def _load(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle opcode, unsafe global ...
        raise CheckpointError(f"{path} is unreadable ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise CheckpointError(f"{path} is not a depthlab checkpoint (format {FORMAT})")
    return state


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The newest readable checkpoint of a run, or None. A corrupt one is reported
    in one line and the previous good one is used; with none, the run starts over."""
    run_dir = Path(run_dir)
    candidates = [p for p in (run_dir / CHECKPOINT, run_dir / PREVIOUS) if p.exists()]
    for i, path in enumerate(candidates):
        try:
            return _load(path)
        except CheckpointError as err:
            fallback = ("falling back to the previous checkpoint" if i + 1 < len(candidates)
                        else "starting this run from scratch")
            log.warning("corrupt checkpoint: %s; %s", err, fallback)
    return None
