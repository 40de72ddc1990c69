"""Splitting a command line into Hydra flags and overrides, and launching it.

Shared by `train`, `sweep` and `compare`: they all hand Hydra an argv, after
checking the overrides here so that mistakes get one line, not a traceback.
"""

from __future__ import annotations

from pathlib import Path

from depthlab.cli.common import fail
from depthlab.config import ConfigError, check_config, compose_config, expand_sweep, group_options

# Hydra flags that take a value, and those that don't (see `hydra --help`).
WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--config-path", "-cp",
              "--config-name", "-cn", "--experimental-rerun"}
NO_VALUE = {"--resolve", "--multirun", "-m", "--hydra-help", "--run", "-r", "--info", "-i"}
INFO_ONLY = {"--cfg", "-c", "--info", "-i", "--hydra-help"}


def split_args(args: list[str]) -> tuple[list[str], list[str], list[Path]]:
    """(hydra flags, overrides, extra config dirs)."""
    flags, overrides, dirs = [], [], []
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if a.startswith("-") and (name in WITH_VALUE or name in NO_VALUE):
            if name in WITH_VALUE and not eq:
                if i + 1 >= len(args):
                    fail(f"{a} needs a value")
                value = args[i + 1]
                flags += [a, value]
                i += 2
            else:
                flags.append(a)
                i += 1
            if name in ("--config-dir", "-cd"):
                dirs.append(Path(value))
            continue
        if a.startswith("-"):
            fail(f"unknown option {a!r}; see --help (Hydra flags: --cfg job, --config-dir DIR, --info)")
        overrides.append(a)
        i += 1
    return flags, overrides, dirs


def info_only(flags: list[str]) -> bool:
    return any(f.partition("=")[0] in INFO_ONLY for f in flags)


def check(overrides: list[str], dirs: list[Path], *, sweep: bool) -> list[list[str]]:
    """Compose and check every run the overrides describe; one-line error on the first problem."""
    try:
        runs = expand_sweep(overrides)
        if not sweep and len(runs) > 1:
            fail("train runs one configuration; for comma-separated values use depthlab sweep")
        for run in _probes(runs):
            cfg = compose_config(run, dirs)
            check_config(cfg)
            check_writable(Path(cfg.paths.runs_dir))
    except ConfigError as err:
        fail(str(err))
    return runs


def check_writable(runs_dir: Path) -> None:
    """The runs directory must be a directory we can create files in (checked
    before Hydra makes anything, so a bad path leaves nothing behind)."""
    import os

    existing = runs_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"paths.runs_dir={runs_dir} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"paths.runs_dir={runs_dir} is not writable (no write permission on {existing})")


def _probes(runs: list[list[str]]) -> list[list[str]]:
    """Runs that together use every value of every axis, each at least once: the
    first run, then for each later run only if it brings a value not yet seen
    (a 4 x 2 x 3 sweep is checked with 4 composes, not 24). Depth rules depend on
    arch and layout together, so (arch, layout, depth) triples are all kept."""
    seen: set[str] = set()
    triples: set[tuple[str, ...]] = set()
    chosen = []
    for run in runs:
        triple = tuple(o for o in run if o.split("=")[0] in ("arch", "arch.layout", "depth",
                                                              "arch.block", "data"))
        if not set(run) <= seen or triple not in triples:
            chosen.append(run)
            seen.update(run)
            triples.add(triple)
    return chosen


def groups_help() -> str:
    lines = []
    for group in ("arch", "data", "optim", "schedule", "trainer", "logger", "experiment"):
        lines.append(f"  {group:<11} {', '.join(group_options(group))}")
    return "\n".join(lines)
