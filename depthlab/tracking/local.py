"""The run directory: plain files that pandas, `depthlab report` and a person read.

    config.yaml          the resolved config
    summary.json         status and final numbers (rewritten atomically)
    layers.csv           index,name,kind,stage,shortcut,params - weighted layers in depth order
    blocks.csv           block_index,block
    metrics_steps.csv    step,epoch,loss,error,lr,images_per_sec
    metrics_epochs.csv   epoch,step,train_loss,train_error,test_loss,test_error,lr,
                         images_per_sec,epoch_seconds,wall_seconds
    gradflow.csv         step,epoch,layer_index,layer,stage,shortcut,grad_norm,weight_norm,ratio
    activations.csv      step,epoch,block_index,block,act_std
    checkpoint.pt        the last epoch's checkpoint (see depthlab.checkpoint)

CSV rows are appended as the run goes (a crash loses at most the current
line); on resume, rows past the checkpoint are dropped so that every step and
epoch appears exactly once. Errors are fractions in [0, 1].
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from . import RunInfo

STEP_COLUMNS = ["step", "epoch", "loss", "error", "lr", "images_per_sec"]
EPOCH_COLUMNS = ["epoch", "step", "train_loss", "train_error", "test_loss", "test_error", "lr",
                 "images_per_sec", "epoch_seconds", "wall_seconds"]
GRADFLOW_COLUMNS = ["step", "epoch", "layer_index", "layer", "stage", "shortcut", "grad_norm",
                    "weight_norm", "ratio"]
ACTIVATION_COLUMNS = ["step", "epoch", "block_index", "block", "act_std"]
FILES = {
    "metrics_steps.csv": STEP_COLUMNS,
    "metrics_epochs.csv": EPOCH_COLUMNS,
    "gradflow.csv": GRADFLOW_COLUMNS,
    "activations.csv": ACTIVATION_COLUMNS,
}


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same directory, then rename over `path`."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_finite(data), indent=2, sort_keys=False) + "\n")


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null (diverged runs have them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_json(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def truncate_csv(path: Path, column: str, keep_upto: float) -> None:
    """Drop rows whose `column` is past `keep_upto` (and any torn last line)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # a line torn by a kill
    if not lines:
        path.unlink()
        return
    reader = csv.DictReader(io.StringIO("".join(lines)))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in reader:
        try:
            if float(row[column]) <= keep_upto:
                writer.writerow(row)
        except (TypeError, ValueError):
            continue
    atomic_write_text(path, out.getvalue())


class LocalSink:
    """Writes the run directory. Always on: it is the record `report` reads."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._files: dict[str, Any] = {}
        self._writers: dict[str, csv.writer] = {}
        self._layers: list = []
        self._blocks: list[str] = []
        self._epoch_of_step: dict[int, int] = {}

    def start(self, run: RunInfo) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._layers, self._blocks = run.layers, run.blocks
        atomic_write_text(self.run_dir / "config.yaml",
                          yaml.safe_dump(run.config, sort_keys=False))
        self._write_table("layers.csv", ["index", "name", "kind", "stage", "shortcut", "params"],
                          [[l.index, l.name, l.kind, l.stage, int(l.shortcut), l.params]
                           for l in run.layers])
        self._write_table("blocks.csv", ["block_index", "block"],
                          [[i, b] for i, b in enumerate(run.blocks)])
        for name, columns in FILES.items():
            path = self.run_dir / name
            if run.resumed_from_step is None and path.exists():
                path.unlink()
            elif run.resumed_from_step is not None:
                # steps.csv counts steps done (1-based); gradflow rows carry the
                # 0-based index of the step whose gradient they hold.
                done = run.resumed_from_step
                column, limit = {
                    "metrics_epochs.csv": ("epoch", run.extra.get("resumed_epoch", 0)),
                    "metrics_steps.csv": ("step", done),
                }.get(name, ("step", done - 1))
                truncate_csv(path, column, limit)
            new = not path.exists()
            f = open(path, "a", newline="")
            self._files[name] = f
            self._writers[name] = csv.writer(f, lineterminator="\n")
            if new:
                self._writers[name].writerow(columns)

    def _write_table(self, name: str, header: list[str], rows: list[list[Any]]) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write_text(self.run_dir / name, out.getvalue())

    def _row(self, name: str, row: list[Any]) -> None:
        self._writers[name].writerow(row)

    def _flush(self) -> None:
        for f in self._files.values():
            f.flush()

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._row("metrics_steps.csv", [step] + [metrics.get(c) for c in STEP_COLUMNS[1:]])

    def log_gradflow(self, epoch: int, record) -> None:
        rows = (
            [record.step, epoch, layer.index, layer.name, layer.stage, int(layer.shortcut), g, w, r]
            for layer, g, w, r in zip(self._layers, record.grad_norm, record.weight_norm,
                                      record.ratio)
        )
        self._writers["gradflow.csv"].writerows(rows)
        if record.act_std:
            self._writers["activations.csv"].writerows(
                [record.step, epoch, i, block, s]
                for i, (block, s) in enumerate(zip(self._blocks, record.act_std))
            )

    def log_epoch(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self._row("metrics_epochs.csv", [epoch, step] + [metrics.get(c) for c in EPOCH_COLUMNS[2:]])
        self._flush()  # an epoch's rows are on disk before its checkpoint is

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.run_dir / "summary.json", summary)

    def finish(self, summary: dict[str, Any]) -> None:
        self._flush()
        for f in self._files.values():
            f.close()
        self._files.clear()
        self.write_summary(summary)
