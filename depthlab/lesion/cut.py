"""Cutting blocks: loading a trained run, deleting one block at a time, testing the net."""

from __future__ import annotations

import math
import types
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import torch
import yaml
from torch import nn

from depthlab.models.blocks import PreActBasicBlock, PreActBottleneck
from depthlab.rundir import CONFIG

COLUMNS = ["run", "arch", "depth", "seed", "block_index", "block", "stage", "downsampling",
           "status", "test_error", "test_loss", "delta_error"]


class LesionError(ValueError):
    """A lesion problem the user can fix; str() is one line."""


@dataclass(frozen=True)
class BlockInfo:
    index: int  # 0-based, forward order
    name: str  # module path, e.g. "layer2.0"
    stage: str  # "stage1", ...
    downsampling: bool  # changes the shape: stride 2 or more channels out than in
    residual: bool
    removable: bool  # residual blocks always; plain blocks only where the shape is kept


@dataclass
class LoadedRun:
    run_dir: Path
    name: str
    cfg: dict[str, Any]
    model: nn.Module
    data: Any  # depthlab.data.DataBundle
    recorded_test_error: float | None  # the run's own final test error (summary.json)


# --------------------------------------------------------------------------- loading


def load_run(run_dir: str | Path, *, device: str = "auto", eval_batch_size: int | None = None,
             test_subset: int | None = None, data_root: str | None = None) -> LoadedRun:
    """A trained run's model (checkpoint.pt, rebuilt from config.yaml as depthlab.train
    builds it) and its test set (data.test_subset respected; `test_subset`/`data_root`
    override the run's). Raises LesionError for anything the user can fix."""
    from depthlab.analysis import load_summary
    from depthlab.checkpoint import load_checkpoint
    from depthlab.data import DataError, build_data
    from depthlab.engine.build import make_model
    from depthlab.models import ArchitectureError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LesionError(f"{run_dir}: no such run directory")
    config_path = run_dir / CONFIG
    if not config_path.is_file():
        raise LesionError(f"{run_dir} is not a run directory (no config.yaml); give a directory "
                          "made by depthlab train, e.g. runs/residual-56-s0")
    try:
        cfg = yaml.safe_load(config_path.read_text()) or {}
        arch = cfg["arch"]["name"]
        depth = int(cfg["depth"])
        seed = int(cfg.get("seed", 0))
        data_cfg = {k: v for k, v in dict(cfg["data"]).items() if k != "layout"}
        trainer = cfg.get("trainer") or {}
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise LesionError(f"{config_path} is not a depthlab run config ({type(err).__name__}: "
                          f"{err})") from None
    if arch not in ("plain", "residual"):
        raise LesionError(f"{run_dir} is a {arch} net: lesion deletes blocks of plain and "
                          "residual nets (a dense layer's output is concatenated, there is no "
                          "identity path to fall back on)")
    state = load_checkpoint(run_dir)
    if state is None:
        raise LesionError(f"{run_dir} has no readable checkpoint.pt (the run has not finished "
                          "an epoch yet?)")
    if test_subset is not None:
        data_cfg["test_subset"] = test_subset
    if data_root is not None:
        data_cfg["root"] = data_root
    dev = _device(device)
    eval_bs = eval_batch_size or int(trainer.get("eval_batch_size") or 256)
    try:
        data = build_data(data_cfg, batch_size=int(trainer.get("batch_size") or 1),
                          eval_batch_size=eval_bs, device=dev, seed=seed)
    except DataError as err:
        raise LesionError(f"{run_dir}: {err}") from None
    try:
        model = make_model(cfg, data.num_classes, data.image_size)
    except ArchitectureError as err:
        raise LesionError(f"{run_dir}: {err}") from None
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise LesionError(f"{run_dir}: checkpoint.pt does not fit the net config.yaml "
                          f"describes ({first})") from None
    model.to(dev).eval()
    summary, _problem = load_summary(run_dir)  # only to compare errors: optional
    try:
        recorded = float(summary["final_test_error"]) if summary else None
    except (KeyError, TypeError, ValueError):
        recorded = None
    name = (cfg.get("run") or {}).get("name") or f"{arch}-{depth}-s{seed}"
    return LoadedRun(run_dir, str(name), cfg, model, data, recorded)


def _device(name: str) -> torch.device:
    from depthlab.engine.build import resolve_device

    try:
        return resolve_device(name, what="--device")
    except ValueError as err:
        raise LesionError(str(err)) from None


# --------------------------------------------------------------------------- blocks and deletion


def _is_residual(block: nn.Module) -> bool:
    return bool(getattr(block, "residual", False))


def _channels(block: nn.Module) -> tuple[int, int]:
    convs = [m for n, m in block.named_children() if n.startswith("conv")]
    return convs[0].in_channels, convs[-1].out_channels


def _changes_shape(block: nn.Module) -> bool:
    """Stride or channel count differs between the block's input and output (downsampling)."""
    c_in, c_out = _channels(block)
    return getattr(block, "stride", 1) != 1 or c_in != c_out


def blocks_of(model: nn.Module) -> list[BlockInfo]:
    """The net's blocks in forward order, with what deleting each one means."""
    if not hasattr(model, "block_names") or not hasattr(model, "stage_of"):
        raise LesionError("lesion needs a plain or residual net made by depthlab.models")
    out = []
    for i, name in enumerate(model.block_names()):
        block = model.get_submodule(name)
        downsampling = _changes_shape(block)
        residual = _is_residual(block)
        out.append(BlockInfo(i, name, model.stage_of(name), downsampling, residual,
                             removable=residual or not downsampling))
    return out


def shortcut_path(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a residual block outputs with its residual branch removed: the shortcut alone.
    Pre-activation blocks: their shortcut as their forward computes it. Every other block:
    relu(shortcut(x)), the ReLU that post-activation blocks apply after the addition (not
    part of the branch); on an identity or zero-padding shortcut it changes nothing where
    the input is a ReLU's output (He et al.'s blocks, SkipInit). Not the block's own path
    for ReZero blocks (no ReLU after their sum; their input can be negative) nor for
    Fixup's downsampling blocks (their shortcut reads x + bias1a)."""
    if isinstance(block, (PreActBasicBlock, PreActBottleneck)):
        if block.downsample is None:
            return x
        # pre-activation blocks feed the shortcut their pre-activated input (see blocks.py)
        return block.downsample(block.relu(block.bn1(x)))
    identity = x if block.downsample is None else block.downsample(x)
    return torch.relu(identity)


def _identity(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x


def _shortcut_only(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return shortcut_path(self, x)


@contextmanager
def lesioned(model: nn.Module, block_name: str) -> Iterator[nn.Module]:
    """Inside the block, `block_name` is deleted: a residual block keeps only its shortcut,
    a plain block becomes the identity (LesionError where it changes the shape)."""
    block = model.get_submodule(block_name)
    if _is_residual(block):
        forward = _shortcut_only
    else:
        if _changes_shape(block):
            c_in, c_out = _channels(block)
            raise LesionError(f"plain block {block_name} changes the shape "
                              f"({c_in} -> {c_out} channels, stride {block.stride}): "
                              "it cannot be replaced by the identity")
        forward = _identity
    if "forward" in block.__dict__:
        raise LesionError(f"block {block_name} is already deleted")
    block.forward = types.MethodType(forward, block)
    try:
        yield block
    finally:
        del block.forward


# --------------------------------------------------------------------------- the experiment


def loss_and_error(model: nn.Module, loader) -> tuple[float, float]:
    """(test loss, test error) exactly as depthlab.train evaluates a run."""
    from depthlab.engine.loop import evaluate as train_evaluate

    return train_evaluate(model, loader, nullcontext)


def lesion(run: LoadedRun, *, on_step: Callable[[str, int, int], None] | None = None
           ) -> pd.DataFrame:
    """Test error of the intact net, then with each block deleted in turn (COLUMNS).

    status: "original" (nothing deleted), "ok", or "n/a" (a plain block that changes shape).
    delta_error = test_error - the original's; errors are fractions.
    on_step(description, done, total) is called after each evaluation.
    """
    model, cfg = run.model, run.cfg
    blocks = blocks_of(model)
    arch, depth, seed = cfg["arch"]["name"], int(cfg["depth"]), cfg.get("seed")
    removable = [b for b in blocks if b.removable]
    total, done = 1 + len(removable), 0
    loss0, err0 = loss_and_error(model, run.data.test)
    done += 1
    if on_step:
        on_step("intact net", done, total)
    rows = [[run.name, arch, depth, seed, -1, "", "", False, "original", err0, loss0, 0.0]]
    for b in blocks:
        if not b.removable:
            rows.append([run.name, arch, depth, seed, b.index, b.name, b.stage, b.downsampling,
                         "n/a", math.nan, math.nan, math.nan])
            continue
        with lesioned(model, b.name):
            loss, err = loss_and_error(model, run.data.test)
        rows.append([run.name, arch, depth, seed, b.index, b.name, b.stage, b.downsampling,
                     "ok", err, loss, err - err0])
        done += 1
        if on_step:
            on_step(f"without {b.name}", done, total)
    return pd.DataFrame(rows, columns=COLUMNS)
