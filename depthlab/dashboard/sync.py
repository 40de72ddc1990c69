"""Uploading a sweep's offline W&B runs with `wandb sync`, before its workspace is saved.

    folders = offline_folders(runs, paths)     # every offline-run-* folder of these runs
    argv = sync_command(folders, entity="me", project="depthlab")
    sync(folders, entity="me", project="depthlab")   # runs argv; DashboardError on failure

An offline run writes `<dir>/wandb/offline-run-<time>-<id>/`, where <dir> is its
logger.wandb.dir, else $WANDB_DIR, else the run directory, and <id> is in the run's
`wandb_id.txt` (a resumed run has one such folder per part, same id). The sweep's report
run is found the same way from `<sweep>/wandb_report.json`. The upload itself is W&B's own
`wandb sync` (the same code path as typing it), not a re-implementation: it orders the parts
of a resumed run by start time and skips folders it synced already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Sequence

from depthlab.rundir import WANDB_ID
from depthlab.tracking.wandb_report import report_state

from .runs import RunKeys
from .spec import DashboardError


def _bases(*dirs: str | Path | None) -> list[Path]:
    """Where W&B may have put a run's wandb/ folder, first found first (no repeats)."""
    out: list[Path] = []
    for d in (*dirs, os.environ.get("WANDB_DIR")):
        if d:
            p = Path(d).expanduser().resolve()
            if p not in out:
                out.append(p)
    return out


def _folders(run_id: str, bases: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for base in bases:
        found += [p for p in sorted((base / "wandb").glob(f"offline-run-*-{run_id}"))
                  if p.is_dir() and p not in found]
    return found


def offline_folders(runs: Sequence[RunKeys], paths: Iterable[str | Path] = ()) -> list[Path]:
    """The offline-run-* folders of `runs` (those that logged to W&B) and of the report
    runs of the sweeps they sit in (or of `paths`), oldest part first within each run."""
    found: list[Path] = []
    sweeps: list[tuple[Path, str | None]] = []
    for run in runs:
        if run.wandb is None:
            continue
        try:
            run_id = (run.run_dir / WANDB_ID).read_text().strip()
        except OSError:
            run_id = ""
        if run_id:
            found += _folders(run_id, _bases(run.wandb.dir, run.run_dir))
        sweeps.append((run.run_dir.parent, run.wandb.dir))
    sweeps += [(Path(p), None) for p in paths]
    seen: set[Path] = set()
    for sweep, wandb_dir in sweeps:
        sweep = sweep.resolve()
        if sweep in seen:
            continue
        seen.add(sweep)
        report_id = report_state(sweep).get("id")
        if report_id:
            found += [f for f in _folders(report_id, _bases(wandb_dir, sweep)) if f not in found]
    return found


def sync_command(folders: Sequence[Path], *, entity: str | None = None,
                 project: str | None = None) -> list[str]:
    """The `wandb sync` command line that uploads `folders` (already-synced ones skipped),
    into `entity`/`project` where given (else where each run was logged)."""
    argv = [sys.executable, "-m", "wandb", "sync", "--skip-synced"]
    if entity:
        argv += ["--entity", entity]
    if project:
        argv += ["--project", project]
    return argv + [str(f) for f in folders]


def sync(folders: Sequence[Path], *, entity: str | None = None, project: str | None = None,
         timeout: float | None = None) -> None:
    """Run `sync_command` with its output on the terminal; DashboardError when it fails."""
    argv = sync_command(folders, entity=entity, project=project)
    try:
        result = subprocess.run(argv, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DashboardError(f"wandb sync did not finish in {timeout:.0f} s") from None
    except OSError as err:
        raise DashboardError(f"cannot run wandb sync: {err.strerror or err}") from None
    if result.returncode != 0:
        raise DashboardError(f"wandb sync exited with {result.returncode} (its output is above)")
