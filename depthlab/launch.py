"""Hydra's entry point: one Hydra job = one run directory = one `train.run`.

Typer commands hand their arguments to `launch()`, which runs `@hydra.main`
with them, so Hydra's override grammar, `--cfg job`, `--multirun` and launcher
plugins (joblib, submitit) all keep working. Each job decides what to do with
its directory: skip a completed run, resume an unfinished one, or start over
(`run.fresh=true`); it records a failure in the run's `summary.json` instead of
killing the sweep. A run directory that holds a different config is refused
without touching it (RunConflict).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import depthlab.config  # noqa: F401 (registers the arch.layout resolver before Hydra composes)
from depthlab import rundir
from depthlab.rundir import RunSummary, is_volatile

log = logging.getLogger("depthlab")


@dataclass
class JobOutcome:
    run_dir: Path
    status: str  # completed | diverged | interrupted | failed | skipped | conflict (left untouched)
    summary: RunSummary | None
    error: str | None = None
    user_error: bool = False


OUTCOMES: list[JobOutcome] = []  # what the jobs of this process did, for the CLI to report


class RunConflict(ValueError):
    pass


def _strip(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in cfg.items():
        if is_volatile(key):
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if not is_volatile(f"{key}.{k}")}
        out[key] = value
    return out


def config_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ (ignoring keys that don't change the experiment)."""
    diffs: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{prefix}{k}.")
        elif a != b:
            diffs.append(f"{prefix[:-1]}: {a!r} -> {b!r}")

    walk(_strip(old), _strip(new), "")
    return diffs


def check_same_run(run_dir: Path, cfg: dict[str, Any]) -> None:
    """RunConflict when run_dir holds a run with a different config (keys that don't
    change the experiment aside); an unreadable config.yaml is no conflict: the run
    starts over. Checked by each job, and by the preflight for a whole sweep at once."""
    config_path = run_dir / rundir.CONFIG
    if not config_path.exists():
        return
    try:
        old = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError:
        return
    diffs = config_difference(old, cfg)
    if diffs:
        raise RunConflict(
            f"{run_dir} holds a run with a different config ({'; '.join(diffs[:3])}); "
            "pass --fresh to replace it, or run.name=... / sweep.name=... for a new one"
        )


def prepare_run_dir(run_dir: Path, cfg: dict[str, Any], fresh: bool,
                    writer: bool = True) -> RunSummary | None:
    """Return the summary of a finished run to skip, or None to (re)start training.
    Only the writer (rank 0 of a run on several processes) deletes anything."""
    if fresh and not writer:
        return None
    if fresh:
        for name in rundir.FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / rundir.WANDB, ignore_errors=True)  # else `wandb sync` uploads the old run too
        log_file = run_dir / rundir.TRAIN_LOG
        if log_file.exists():  # Hydra's handler holds it open (append mode): empty it, keep it
            log_file.open("r+").truncate(0)
        return None
    check_same_run(run_dir, cfg)
    summary_path = run_dir / rundir.SUMMARY
    if summary_path.exists():
        try:
            summary = rundir.read_summary(run_dir)
        except ValueError:
            return None
        if summary.get("status") in ("completed", "diverged"):
            return summary
    return None


def _is_new(run_dir: Path) -> bool:
    return not any((run_dir / name).exists() for name in (rundir.SUMMARY, rundir.CHECKPOINT))


def make_sinks(cfg: dict[str, Any]) -> list[Any]:
    wandb_cfg = (cfg.get("logger") or {}).get("wandb") or {}
    if wandb_cfg.get("mode", "disabled") == "disabled":
        return []
    try:
        from depthlab.tracking.safe import SafeSink
        from depthlab.tracking.wandb_sink import WandbSink
    except ImportError as err:  # W&B trouble never stops a run
        log.warning("W&B logging off: %s", err)
        return []
    return [SafeSink(WandbSink(wandb_cfg), "W&B")]


def run_job(cfg: DictConfig) -> RunSummary | None:
    from depthlab import train
    from depthlab.config import ConfigError, check_config
    from depthlab.data import DataError
    from depthlab.engine import distributed
    from depthlab.engine.errors import SettingError
    from depthlab.models import ArchitectureError

    distributed.adopt_submitit()  # a SLURM job of several tasks: each task is one rank
    writer = distributed.from_env().main
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun:
        from depthlab.progress import enter_sweep_run

        enter_sweep_run(int(hc.job.num))  # for the sweep-level progress line
    group = cfg.sweep.name if multirun else cfg.run.group
    container = OmegaConf.to_container(cfg, resolve=True)
    new_dir = _is_new(run_dir)
    try:
        check_config(cfg)
        done = prepare_run_dir(run_dir, container, bool(cfg.run.fresh), writer)
        if done is not None:
            log.info("%s: already %s, skipping (--fresh to run it again)", cfg.run.name,
                     done["status"])
            OUTCOMES.append(JobOutcome(run_dir, "skipped", done))
            return done
        summary = train.run(container, run_dir, group=group, sink_factory=make_sinks)
        OUTCOMES.append(JobOutcome(run_dir, summary["status"], summary))
        if summary["status"] == "interrupted" and multirun:
            # Ctrl-C / SIGTERM stops the whole sweep, not just this run; the same
            # command resumes it.
            raise SystemExit(130)
        return summary
    except RunConflict as err:
        # The directory belongs to another run (maybe completed): leave it exactly as it
        # is (no summary, no error.txt); the CLI reports the one-line message.
        message = " ".join(str(err).split())
        OUTCOMES.append(JobOutcome(run_dir, "conflict", None, message, user_error=True))
        return None
    except (ConfigError, DataError, ArchitectureError, SettingError, FileNotFoundError,
            PermissionError) as err:
        message = " ".join(str(err).split())
        if writer and not multirun and new_dir:
            # bad input: leave nothing behind but what was there before
            _remove_new_dirs(run_dir, Path(cfg.paths.runs_dir))
        elif writer and multirun:
            _record_failure(run_dir, cfg, container, group, message)
        OUTCOMES.append(JobOutcome(run_dir, "failed", None, message, user_error=True))
        return None
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a bug or a crash in one run must not end a sweep
        message = f"{type(err).__name__}: {' '.join(str(err).split())}"
        log.error("%s failed: %s", cfg.run.name, message)
        if writer:
            (run_dir / rundir.ERROR).write_text(traceback.format_exc())
            _record_failure(run_dir, cfg, container, group, message)
        OUTCOMES.append(JobOutcome(run_dir, "failed", None, message))
        return None


def _remove_new_dirs(run_dir: Path, runs_dir: Path) -> None:
    """Remove a run directory Hydra made for a run that never started, and its
    parents up to the runs directory where they are left empty."""
    shutil.rmtree(run_dir, ignore_errors=True)
    stop = runs_dir.resolve().parent
    for parent in run_dir.resolve().parents:
        if parent == stop or not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()


def _record_failure(run_dir: Path, cfg: DictConfig, container: dict[str, Any], group: str,
                    message: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        summary = rundir.read_summary(run_dir) if (run_dir / rundir.SUMMARY).exists() else {}
    except ValueError:
        summary = {}
    # A run that failed before train.run wrote its summary still describes itself as
    # far as its config tells, so its row in summary.csv has the other runs' columns.
    try:
        head = _config_summary(container, group)
    except Exception:  # noqa: BLE001 (a config that failed its checks may describe nothing)
        head = {}
    rundir.write_summary(run_dir, rundir.failed_summary({**head, **summary}, name=cfg.run.name,
                                                        error=message))


def _config_summary(cfg: dict[str, Any], group: str) -> RunSummary:
    """The descriptive keys of train.run's summary that the config alone gives
    (num_classes and sizes as far as the data config tells them; None otherwise)."""
    from depthlab import machine
    from depthlab.data import config_facts
    from depthlab.engine.build import make_model, resolve_device
    from depthlab.models import describe
    from depthlab.optim import run_length

    arch, data, t = cfg["arch"], cfg["data"], cfg["trainer"]
    facts = config_facts({k: v for k, v in data.items() if k != "layout"})
    out = rundir.summary_head(
        name=cfg["run"]["name"], group=group, arch=arch["name"], depth=cfg["depth"],
        layout=arch["layout"], norm=arch.get("norm"), shortcut=None,
        preact=arch.get("preact"), zero_init_residual=arch.get("zero_init_residual"),
        seed=cfg["seed"], data=data["name"], num_classes=facts["num_classes"],
        train_subset=data.get("train_subset"), train_size=facts["train_size"],
        test_size=facts["test_size"], params=None, flops=None, epochs=None,
        total_steps=None, device=str(t["device"]), machine=machine.line(),
    )
    try:
        out["device"] = str(resolve_device(str(t["device"])))  # as train.run records it
    except ValueError:
        pass
    steps_per_epoch = (facts["train_size"] or 0) // max(1, int(t["batch_size"]))
    out["epochs"], total_steps = run_length(t, steps_per_epoch)
    out["total_steps"] = total_steps or None
    if facts["num_classes"] and facts["image_size"]:
        try:  # the model as the run would have built it, on the CPU
            desc = describe(make_model(cfg, facts["num_classes"], facts["image_size"]))
        except Exception:  # noqa: BLE001 (best effort: the failure being recorded may be this)
            desc = {}
        out.update({k: desc[k] for k in ("arch", "depth", "layout", "norm", "shortcut", "preact",
                                          "zero_init_residual", "params", "flops") if k in desc})
    return out


@hydra.main(version_base="1.3", config_path="pkg://depthlab.conf", config_name="config")
def hydra_entry(cfg: DictConfig) -> RunSummary | None:
    return run_job(cfg)


def launch(args: list[str]) -> list[JobOutcome]:
    """Run Hydra with `args` (overrides and Hydra flags) as its command line."""
    OUTCOMES.clear()
    if os.environ.get("RANK", "0") != "0":
        # under torchrun: Hydra's record of the config and its train.log are rank 0's
        args = [*args, "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    argv = sys.argv
    sys.argv = ["depthlab", *args]
    try:
        hydra_entry()
    finally:
        sys.argv = argv
    return list(OUTCOMES)
