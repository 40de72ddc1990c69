"""What a run directory holds: file names, CSV columns, the summary, and how files are written.

One run = one directory. Everything that writes one (`train`, the probe, launch's failure
path, the sinks in `tracking`) or reads one (`analysis`, `report`, `lesion`, the CLI)
names its files, columns and summary keys through this module. Plain Python: it imports
neither torch, matplotlib nor hydra, and nothing of depthlab, so every part may use it.

    config.yaml          CONFIG               the resolved config
    summary.json         SUMMARY              a RunSummary: status and final numbers
    layers.csv           LAYERS               LAYER_COLUMNS: weighted layers in depth order
    blocks.csv           BLOCKS               BLOCK_COLUMNS
    metrics_steps.csv    METRICS_STEPS        STEP_COLUMNS
    metrics_epochs.csv   METRICS_EPOCHS       EPOCH_COLUMNS
    gradflow.csv         GRADFLOW             GRADFLOW_COLUMNS
    activations.csv      ACTIVATIONS          ACTIVATION_COLUMNS: per block, output std and backward signal
    checkpoint.pt        CHECKPOINT           the last checkpoint (see depthlab.checkpoint)
    checkpoint.prev.pt   CHECKPOINT_PREVIOUS  the one before it, kept until the next is in place
    wandb_id.txt         WANDB_ID             the W&B run id (see depthlab.tracking.wandb_sink)
    error.txt            ERROR                the traceback of a run that crashed
    train.log            TRAIN_LOG            the run's log (Hydra's job logging)
    wandb/               WANDB                W&B's offline runs
    .hydra/config.yaml   HYDRA_CONFIG         Hydra's record of the composed config

CSV rows are appended as the run goes (a crash loses at most the current line); on
resume, rows past the checkpoint are dropped so that every step and epoch appears
exactly once. Errors are fractions in [0, 1]. Every whole-file write goes through a
temp file and a rename (`atomic_write`, `atomic_file`): a killed run never leaves half
a file.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Collection, Iterator, Mapping, Sequence, TypedDict

# --------------------------------------------------------------------------- file names

CONFIG = "config.yaml"
SUMMARY = "summary.json"
LAYERS = "layers.csv"
BLOCKS = "blocks.csv"
METRICS_STEPS = "metrics_steps.csv"
METRICS_EPOCHS = "metrics_epochs.csv"
GRADFLOW = "gradflow.csv"
ACTIVATIONS = "activations.csv"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_PREVIOUS = "checkpoint.prev.pt"
WANDB_ID = "wandb_id.txt"
ERROR = "error.txt"
TRAIN_LOG = "train.log"  # named in conf/hydra/job_logging/depthlab.yaml too (YAML cannot import)
WANDB = "wandb"  # the directory wandb makes under its dir (the run directory by default)
HYDRA_CONFIG = ".hydra/config.yaml"  # under hydra.output_subdir (conf/config.yaml)

# Every file a run writes, in the order `run.fresh` removes them (train.log and the
# wandb/ directory are handled apart: Hydra holds the log open).
FILES = (SUMMARY, CONFIG, LAYERS, BLOCKS, METRICS_STEPS, METRICS_EPOCHS, GRADFLOW, ACTIVATIONS,
         CHECKPOINT, CHECKPOINT_PREVIOUS, WANDB_ID, ERROR)


def holds_run(names: Collection[str]) -> bool:
    """Whether a directory holding the files `names` is a run directory: it has
    summary.json, or config.yaml and metrics_epochs.csv (a run killed before it wrote
    its first summary)."""
    return SUMMARY in names or {CONFIG, METRICS_EPOCHS} <= set(names)


# --------------------------------------------------------------------------- CSV columns

LAYER_COLUMNS = ["index", "name", "kind", "stage", "shortcut", "params"]
BLOCK_COLUMNS = ["block_index", "block"]
STEP_COLUMNS = ["step", "epoch", "loss", "error", "lr", "images_per_sec"]
EPOCH_COLUMNS = ["epoch", "step", "train_loss", "train_error", "test_loss", "test_error", "lr",
                 "images_per_sec", "epoch_seconds", "wall_seconds"]
GRADFLOW_COLUMNS = ["step", "epoch", "layer_index", "layer", "stage", "shortcut", "grad_norm",
                    "weight_norm", "ratio"]
# act_std: std of the block's output h_b; back_norm: ||dL/dh_b||, the L2 norm of the loss
# gradient at that output (empty in runs made before it was recorded)
ACTIVATION_COLUMNS = ["step", "epoch", "block_index", "block", "act_std", "back_norm"]
# The CSVs appended row by row while the run goes, with their columns.
APPENDED = {
    METRICS_STEPS: STEP_COLUMNS,
    METRICS_EPOCHS: EPOCH_COLUMNS,
    GRADFLOW: GRADFLOW_COLUMNS,
    ACTIVATIONS: ACTIVATION_COLUMNS,
}
# Columns that hold text (names); every other column of the CSVs above is a number.
TEXT_COLUMNS = ("layer", "stage", "block", "name", "kind")


# --------------------------------------------------------------------------- the summary

# What `status` says, in the order tables list them.
STATUSES = ("completed", "diverged", "running", "interrupted", "failed")


class RunSummary(TypedDict, total=False):
    """summary.json: one JSON object per run, written by `train.run` (status running at the
    start, then the outcome), by the probe (a run stopped at initialisation) and by
    launch's failure path alike. Keys appear in the order their writer adds them (see
    `summary_head`, `summary_result`, `failed_summary`); any may be missing in a summary
    written before it existed, or by a run that failed early. Non-finite numbers are
    written as null."""

    # what the run is
    name: str  # run name, e.g. "plain-34-s0"
    group: str  # sweep name ("train" for a single run)
    kind: str  # "probe" for the probe's runs; absent for trained runs
    arch: str  # plain | residual | dense
    depth: int  # weighted layers on the main path
    layout: str  # cifar | imagenet
    norm: str | None
    shortcut: str | None  # A | B | C for residual nets
    preact: bool | None
    zero_init_residual: bool | None
    seed: int
    data: str  # data set name
    num_classes: int | None
    train_subset: int | None
    train_size: int | None  # images
    test_size: int | None  # images
    params: int | None
    flops: int | None  # forward, per image, multiply-add = 2
    epochs: int | None
    total_steps: int | None
    device: str
    machine: str
    processes: int  # ranks of a run on several processes (DDP); absent for one process
    process_counts: list[int]  # processes of its sittings where a resume changed them, e.g. [2, 1]
    normalisation: str  # how the data set's images were normalised
    # how it went
    status: str  # one of STATUSES
    started_at: str  # ISO 8601, UTC
    error: str  # one line, for status failed
    diverged: bool
    final_train_error: float | None  # fraction
    final_test_error: float | None
    best_test_error: float | None
    epochs_completed: int
    steps_completed: int
    grad_ratio_first_last_init: float | None  # first_last_ratio at initialisation (step 0;
    # fp16: the first step GradScaler did not skip, whose weights are still the initial ones)
    grad_ratio_first_last: float | None  # ... at the last recorded step
    log10_grad_ratio_init: float | None  # log10 of the above (None: no logarithm)
    log10_grad_ratio: float | None
    images_per_sec: float | None  # the last epoch's training throughput
    wall_seconds: float  # wall time of the run, summed over its resumes
    gradflow_records_skipped: int  # fp16: records of steps with inf/NaN gradients, left out
    cuda_graph_replays: int  # steps replayed as the captured CUDA graph, summed over resumes (graphs on only)
    finished_at: str
    # the probe's
    probe_batch: int
    probe_loss: float
    probe_note: str | None


def summary_head(*, name: str, group: str, arch: str, depth: int, layout: str,
                 norm: str | None, shortcut: str | None, preact: bool | None,
                 zero_init_residual: bool | None, seed: int, data: str,
                 num_classes: int | None, train_subset: int | None, train_size: int | None,
                 test_size: int | None, params: int | None, flops: int | None,
                 epochs: int | None, total_steps: int | None, device: str,
                 machine: str) -> RunSummary:
    """What a trained run is, in summary.json's order: train.run's summary starts with
    these, and a run that failed before train.run wrote one gets them from its config."""
    return RunSummary(
        name=name, group=group, arch=arch, depth=depth, layout=layout, norm=norm,
        shortcut=shortcut, preact=preact, zero_init_residual=zero_init_residual, seed=seed,
        data=data, num_classes=num_classes, train_subset=train_subset, train_size=train_size,
        test_size=test_size, params=params, flops=flops, epochs=epochs, total_steps=total_steps,
        device=device, machine=machine)


def summary_result(*, status: str, final_train_error: float | None,
                   final_test_error: float | None, best_test_error: float | None,
                   epochs_completed: int, steps_completed: int,
                   grad_ratio_first_last_init: float | None,
                   grad_ratio_first_last: float | None) -> RunSummary:
    """How a run ended, in summary.json's order: status (diverged follows from it), the
    errors, the work done, the gradient ratios first/last and their `log10`."""
    return RunSummary(
        status=status, diverged=status == "diverged", final_train_error=final_train_error,
        final_test_error=final_test_error, best_test_error=best_test_error,
        epochs_completed=epochs_completed, steps_completed=steps_completed,
        grad_ratio_first_last_init=grad_ratio_first_last_init,
        grad_ratio_first_last=grad_ratio_first_last,
        log10_grad_ratio_init=log10(grad_ratio_first_last_init),
        log10_grad_ratio=log10(grad_ratio_first_last))


def failed_summary(known: Mapping[str, Any], *, name: str, error: str) -> RunSummary:
    """A failed run's summary: what was `known` (a summary on disk over the config's
    head), marked failed with the one-line `error`; steps and epochs completed are 0
    unless recorded."""
    summary = RunSummary(**known)
    summary.update(name=name, status="failed", diverged=False, error=error)
    summary.setdefault("steps_completed", 0)
    summary.setdefault("epochs_completed", 0)
    return summary


def write_summary(run_dir: str | Path, summary: Mapping[str, Any]) -> Path:
    """Write summary.json atomically, keys in the mapping's order."""
    path = Path(run_dir) / SUMMARY
    write_json(path, summary)
    return path


def read_summary(run_dir: str | Path) -> Any:
    """summary.json as JSON gives it (a dict unless someone wrote another); raises
    OSError when it cannot be read, ValueError when it is no JSON."""
    return read_json(Path(run_dir) / SUMMARY)


def first_last_ratio(layers: Sequence[Any], grad_norm: Sequence[float]) -> float:
    """Gradient norm of the first main-path layer over that of the last (layers[i] is the
    layer of grad_norm[i]; a layer with a true `shortcut` is off the main path)."""
    main = [g for layer, g in zip(layers, grad_norm) if not layer.shortcut]
    return main[0] / main[-1] if main[-1] > 0 else float("inf")


def log10(value: Any) -> float | None:
    """log10 of `value` as float() reads it, when that is finite and positive; None for
    anything else (None, NaN, inf, zero, negatives, text that is no number). This is
    what summary.json and W&B record (null: no logarithm); a caller that wants NaN
    instead says so where it calls."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return math.log10(x) if math.isfinite(x) and x > 0 else None


def log10_or_nan(value: Any) -> float:
    """`log10`, with NaN where it gives None: for float columns (the probe's rows, the
    analysis table), where NaN, not None, is the missing number."""
    x = log10(value)
    return math.nan if x is None else x


# --------------------------------------------------------------------------- volatile keys

# Config keys that may change between invocations of the same run without making it a
# different run (where it runs, how it logs, where files go). A key covers the keys
# under it. launch compares configs without them; a sweep's default name leaves them out.
VOLATILE = ("run.fresh", "logger", "trainer.device", "trainer.devices", "trainer.threads",
            "trainer.log_every", "data.root", "data.cache_dir", "data.workers", "paths", "sweep")


def is_volatile(key: str) -> bool:
    """Whether the dotted config key `key` is one of VOLATILE or under one."""
    return any(key == v or key.startswith(v + ".") for v in VOLATILE)


# --------------------------------------------------------------------------- writing files


@contextmanager
def atomic_file(path: str | Path, *, keep: str | Path | None = None) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: a temp file beside it (.<name>.tmp<pid>),
    flushed, fsynced and renamed over `path` when the block ends. If the block (or the
    write) fails, the temp file is removed and `path` is left as it was. With `keep`,
    an existing `path` is first renamed to `keep` (the previous good version stays until
    the new one is in place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if keep is not None and path.exists():
            os.replace(path, keep)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` through `atomic_file`."""
    with atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null (diverged runs have them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    """`data` as indented JSON (keys in order, NaN/inf as null), atomically."""
    atomic_write(path, json.dumps(_finite(data), indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)
