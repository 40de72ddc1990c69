"""Reading run directories: what each run logged to W&B (names, group, per-layer keys)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from depthlab import rundir
from depthlab.analysis.runs import find_runs
from depthlab.tracking.wandb_sink import BLOCK_SERIES, WandbConfig, block_keys, layer_keys


@dataclass
class _Layer:  # what layer_keys reads of a layer
    index: int
    name: str


@dataclass
class RunKeys:
    """One run as W&B has it: names, where it logged, and the per-layer keys it logged."""

    name: str
    group: str
    run_dir: Path
    wandb: WandbConfig | None  # None: logger=none (nothing in W&B)
    series: dict[str, list[str]] = field(default_factory=dict)  # stat -> keys, in depth order


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def read_run_keys(run_dir: Path) -> RunKeys:
    """What the run in `run_dir` logged to W&B, from its directory alone (config.yaml,
    summary.json, layers.csv, blocks.csv), named as the W&B sink names it."""
    run_dir = Path(run_dir)
    try:
        config = yaml.safe_load((run_dir / rundir.CONFIG).read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    try:
        summary = rundir.read_summary(run_dir)
        summary = summary if isinstance(summary, dict) else {}
    except (OSError, ValueError):
        summary = {}
    try:
        wb = WandbConfig.from_mapping((config.get("logger") or {}).get("wandb"))
    except (TypeError, ValueError):
        wb = None
    if wb is not None and wb.mode == "disabled":
        wb = None
    run = RunKeys(name=str(summary.get("name") or (config.get("run") or {}).get("name")
                           or run_dir.name),
                  group=str(summary.get("group") or run_dir.parent.name), run_dir=run_dir,
                  wandb=wb)
    if wb is None:
        return run
    index, name = rundir.LAYER_COLUMNS[:2]
    layers = [_Layer(int(r[index]), r[name]) for r in _rows(run_dir / rundir.LAYERS)]
    blocks = [r[rundir.BLOCK_COLUMNS[1]] for r in _rows(run_dir / rundir.BLOCKS)]
    activations = bool((config.get("gradflow") or {}).get("activations", True))
    for stat in wb.series:
        if stat in BLOCK_SERIES:
            if activations and blocks:
                run.series[stat] = block_keys(blocks, stat)
        elif layers:
            run.series[stat] = layer_keys(layers, stat)
    return run


def read_runs_keys(paths: Iterable[str | Path]) -> list[RunKeys]:
    """Every run under `paths` (run or sweep directories)."""
    return [read_run_keys(d) for d in find_runs(paths)]


def verdict_texts(paths: Iterable[str | Path]) -> list[str]:
    """The verdicts on the runs under `paths`, in the words of `depthlab report`."""
    from depthlab.analysis import load_runs, verdicts

    table, _ = load_runs(paths)
    return [] if table.empty else [v.text for v in verdicts(table)]
