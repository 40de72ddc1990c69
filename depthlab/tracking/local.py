"""The local sink: writes the run directory, the files that pandas, `depthlab report` and
a person read. What the directory holds (file names, columns, the summary) is
`depthlab.rundir`; this module writes it as the run goes and trims it on resume.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml

from depthlab import rundir
from depthlab.rundir import atomic_write

from . import RunInfo


def truncate_csv(path: Path, column: str, keep_upto: float,
                 columns: list[str] | None = None) -> None:
    """Drop rows whose `column` is past `keep_upto` (and any torn last line). With
    `columns`, the file is rewritten with those columns (a column the file lacks is
    left empty in its rows): a run resumed by a newer depthlab keeps one header."""
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
    writer = csv.DictWriter(out, fieldnames=columns or reader.fieldnames, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for row in reader:
        try:
            if float(row[column]) <= keep_upto:
                writer.writerow(row)
        except (TypeError, ValueError):
            continue
    atomic_write(path, out.getvalue())


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
        atomic_write(self.run_dir / rundir.CONFIG, yaml.safe_dump(run.config, sort_keys=False))
        self._write_table(rundir.LAYERS, rundir.LAYER_COLUMNS,
                          [[l.index, l.name, l.kind, l.stage, int(l.shortcut), l.params]
                           for l in run.layers])
        self._write_table(rundir.BLOCKS, rundir.BLOCK_COLUMNS,
                          [[i, b] for i, b in enumerate(run.blocks)])
        for name, columns in rundir.APPENDED.items():
            path = self.run_dir / name
            if run.resumed_from_step is None and path.exists():
                path.unlink()
            elif run.resumed_from_step is not None:
                # steps.csv counts steps done (1-based); gradflow rows carry the
                # 0-based index of the step whose gradient they hold.
                done = run.resumed_from_step
                column, limit = {
                    rundir.METRICS_EPOCHS: ("epoch", run.extra.get("resumed_epoch", 0)),
                    rundir.METRICS_STEPS: ("step", done),
                }.get(name, ("step", done - 1))
                truncate_csv(path, column, limit, columns)
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
        atomic_write(self.run_dir / name, out.getvalue())

    def _row(self, name: str, row: list[Any]) -> None:
        self._writers[name].writerow(row)

    def _flush(self) -> None:
        for f in self._files.values():
            f.flush()

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._row(rundir.METRICS_STEPS,
                  [step] + [metrics.get(c) for c in rundir.STEP_COLUMNS[1:]])

    def log_gradflow(self, epoch: int, record) -> None:
        rows = (
            [record.step, epoch, layer.index, layer.name, layer.stage, int(layer.shortcut), g, w, r]
            for layer, g, w, r in zip(self._layers, record.grad_norm, record.weight_norm,
                                      record.ratio)
        )
        self._writers[rundir.GRADFLOW].writerows(rows)
        if record.act_std:
            back = record.back_norm or [None] * len(record.act_std)
            self._writers[rundir.ACTIVATIONS].writerows(
                [record.step, epoch, i, block, s, b]
                for i, (block, s, b) in enumerate(zip(self._blocks, record.act_std, back))
            )

    def log_epoch(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self._row(rundir.METRICS_EPOCHS,
                  [epoch, step] + [metrics.get(c) for c in rundir.EPOCH_COLUMNS[2:]])
        self._flush()  # an epoch's rows are on disk before its checkpoint is

    def write_summary(self, summary: dict[str, Any]) -> None:
        rundir.write_summary(self.run_dir, summary)

    def finish(self, summary: dict[str, Any]) -> None:
        self._flush()
        for f in self._files.values():
            f.close()
        self._files.clear()
        self.write_summary(summary)
