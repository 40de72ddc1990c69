"""What would make every run of a sweep fail, checked once before the first run.

Each check raises a one-line error naming the problem and the fix; nothing is
written before they all pass (no run directory, no report). The checks: the data
(missing, unreadable or in a format depthlab does not read; a download that
cannot happen), the runs directory (not writable), the device (CUDA asked for
where there is none), and the run directories already there (a completed run
with a different config is a conflict, never overwritten). Depth validity is
checked where every run's config is composed (plan.make_plan).
"""

from __future__ import annotations

import os
from pathlib import Path

from depthlab.config import ConfigError
from depthlab.plan import Plan, data_key


def check_writable(runs_dir: Path) -> None:
    """The runs directory must be a directory we can create files in (checked
    before Hydra makes anything, so a bad path leaves nothing behind)."""
    existing = runs_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"paths.runs_dir={runs_dir} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"paths.runs_dir={runs_dir} is not writable (no write permission on {existing})")


def check_device(device: str) -> None:
    from depthlab.engine.build import resolve_device

    try:
        resolve_device(device)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_distinct_dirs(plan: Plan) -> None:
    """Two runs of one sweep must not share a directory (run.name leaves out a swept key)."""
    seen: dict[Path, list[str]] = {}
    for run in plan.runs:
        if run.run_dir in seen:
            differ = sorted(set(run.overrides) - set(seen[run.run_dir]))
            raise ConfigError(
                f"two runs of this sweep would share {run.run_dir} (they differ in "
                f"{', '.join(differ) or 'nothing'}); put the swept key in run.name, e.g. "
                "run.name='${arch.name}-${depth}-s${seed}-lr${optim.lr}'"
            )
        seen[run.run_dir] = run.overrides


def check_conflicts(plan: Plan, fresh: bool) -> None:
    """A run directory that holds a different config is an error before anything runs:
    the completed run there stays as it is (pass --fresh or another sweep.name)."""
    if fresh:
        return
    from depthlab.launch import RunConflict, check_same_run

    for run in plan.runs:
        try:
            check_same_run(run.run_dir, run.cfg)
        except RunConflict as err:
            raise ConfigError(str(err)) from None


def preflight(plan: Plan, *, fresh: bool, fetch: bool) -> dict[str, tuple[int, int, int, int]]:
    """Run every check; return the data sizes the estimates need, by data key.
    `fetch`: download missing data now (False for a dry run: only say it would)."""
    from depthlab.data import DataError
    from depthlab.data.survey import survey

    for runs_dir in dict.fromkeys(Path(r.cfg["paths"]["runs_dir"]) for r in plan.runs):
        check_writable(runs_dir)
    for device in dict.fromkeys(str(r.cfg["trainer"]["device"]) for r in plan.runs):
        check_device(device)
    check_distinct_dirs(plan)
    check_conflicts(plan, fresh)
    sizes = {}
    for run in plan.runs:
        key = data_key(run.cfg)
        if key in sizes:
            continue
        try:
            found = survey(run.cfg["data"], fetch=fetch)
        except DataError as err:
            raise ConfigError(str(err)) from None
        if found.train_size < int(run.cfg["trainer"]["batch_size"]):
            raise ConfigError(f"the training set ({found.train_size} images) is smaller than one "
                              f"batch (trainer.batch_size={run.cfg['trainer']['batch_size']}); "
                              "lower trainer.batch_size or raise data.train_subset")
        plan.data[key] = found.description
        sizes[key] = (found.train_size, found.test_size, found.image_size, found.num_classes)
    return sizes
