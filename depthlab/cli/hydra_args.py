"""Splitting a command line into Hydra flags and overrides, and launching it.

Shared by `train`, `sweep` and `compare`: they all hand Hydra an argv, after
checking the overrides here so that mistakes get one line, not a traceback.
"""

from __future__ import annotations

from pathlib import Path

from depthlab.cli.common import fail
from depthlab.config import (
    ConfigError,
    LayoutChoice,
    check_config,
    compose_config,
    expand_sweep,
    group_options,
    layout_error,
    layout_is_auto,
)
from depthlab.preflight import check_trainer, check_writable

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


def check(overrides: list[str], dirs: list[Path], *, machine: bool = True) -> None:
    """Compose and check the one run `depthlab train` describes: its config, its runs
    directory and (`machine`; not for --cfg/--info, which only print) whether this machine
    can run its trainer (preflight.check_trainer: the device, fp16, CUDA graphs); one-line
    error on a problem, before anything is written. (Sweeps check every run through
    depthlab.plan and depthlab.preflight.)"""
    from omegaconf import OmegaConf

    try:
        if len(expand_sweep(overrides)) > 1:
            fail("train runs one configuration; for comma-separated values use depthlab sweep")
        cfg = compose_config(overrides, dirs, resolve=False)
        auto = layout_is_auto(cfg)
        OmegaConf.resolve(cfg)
        try:
            check_config(cfg)
        except ConfigError as err:
            if not auto:
                raise
            choice = LayoutChoice(cfg.arch.layout, f"the default of data={cfg.data.name}")
            raise layout_error(err, OmegaConf.to_container(cfg), choice) from None
        check_writable(Path(cfg.paths.runs_dir))
        if machine:
            run = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
            check_trainer(run, int(run["trainer"].get("devices") or 1))  # CUDA, fp16, graphs here
    except ConfigError as err:
        fail(str(err))


def groups_help() -> str:
    lines = []
    for group in ("arch", "data", "optim", "schedule", "trainer", "logger", "experiment", "start"):
        lines.append(f"  {group:<11} {', '.join(group_options(group))}")
    return "\n".join(lines)
