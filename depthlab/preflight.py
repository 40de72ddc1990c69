"""What would make every run of a sweep fail, checked once before the first run.

Each check raises a one-line ConfigError naming the problem and the fix; nothing is
written before they all pass (no run directory, no report). `preflight(plan)` checks,
in this order:

  1. paths.runs_dir: a directory that can be created and written (check_writable);
  2. the trainer on this machine (check_trainer, also run by `depthlab train` for its
     one run): trainer.device names a device here (cuda and cuda:N need CUDA, N below
     the number of GPUs); trainer.precision=fp16 needs CUDA (with trainer.device=auto
     too: auto must find a GPU); trainer.cuda_graphs=true needs CUDA, one process,
     trainer.compile=false, fp32 or bf16 and arch.memory_efficient=false;
  3. the ranks of a launcher job of several tasks (hydra/launcher=slurm_ddp; slurm or
     submitit_local with tasks_per_node > 1): nodes x tasks_per_node must divide
     trainer.batch_size (the global batch), and trainer.devices stays 1 (check_ranks);
  4. no two runs share a run directory (check_distinct_dirs);
  5. no run directory holds a run with another config, unless --fresh (check_conflicts);
  6. the data of every run (depthlab.data.survey): there, readable, in a format depthlab
     reads, or downloadable (the download happens here, once); data.train_subset and
     data.test_subset no larger than the split, and, class-balanced, needing no more
     images of a class than the smallest class has where the survey counts them (image
     folders, decoded CIFAR-10); the training set at least one batch.

What needs no machine is checked where every run's config is composed (plan.make_plan
through config.check_config): depths, positive sizes, the values each key takes
(trainer.cuda_graphs true|false|auto, schedule.warmup and optim.momentum in [0, 1),
trainer.threads a positive integer or null, ...), trainer.batch_size divisible by
trainer.devices.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

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


def check_trainer(cfg: Mapping[str, Any], processes: int = 1) -> None:
    """Whether this machine can run the trainer of `cfg` (a resolved run config) as
    engine.setup would, on `processes` ranks: the device, fp16, CUDA graphs (see the
    module's list). One-line ConfigError otherwise."""
    from depthlab.engine.build import resolve_device
    from depthlab.engine.distributed import World
    from depthlab.engine.precision import check_precision
    from depthlab.engine.setup import use_cuda_graphs

    t = cfg["trainer"]
    name, precision = str(t["device"]), t.get("precision", "fp32")
    try:
        device = resolve_device(name)
        if precision == "fp16" and device.type != "cuda" and name == "auto":
            raise ConfigError("trainer.precision=fp16 needs a CUDA device, and trainer.device=auto "
                              "finds none on this machine (the run would be on the CPU); use "
                              "bf16 or fp32 on the CPU")
        if precision != "auto":
            check_precision(precision, device)
        # auto's choice is fp32 or bf16 where graphs run: check them as fp32 (as engine.setup)
        as_run = {**t, "precision": "fp32" if precision == "auto" else precision}
        use_cuda_graphs({**cfg, "trainer": as_run}, device, World(rank=0, size=max(1, processes)))
    except ValueError as err:  # engine's SettingErrors: one line already
        raise ConfigError(str(err)) from None


def check_ranks(plan: Plan) -> None:
    """A launcher job of several tasks is one DistributedDataParallel run of that many
    ranks: trainer.batch_size (the global batch) must divide by them, and trainer.devices
    must stay 1 (or say the same number)."""
    if plan.tasks <= 1:
        return
    job = "SLURM job" if plan.launcher == "slurm" else f"{plan.launcher} job"
    for run in plan.runs:
        t = run.cfg["trainer"]
        devices, batch = int(t.get("devices") or 1), int(t["batch_size"])
        if devices not in (1, plan.tasks):
            raise ConfigError(f"trainer.devices={devices} but each {job} starts {plan.tasks} ranks "
                              f"({plan.tasks_from}); leave trainer.devices at 1 under a launcher "
                              "of several tasks")
        if batch % plan.tasks:
            raise ConfigError(f"trainer.batch_size={batch} is the global batch and must divide by "
                              f"the {plan.tasks} ranks of each {job} ({plan.tasks_from}); use a "
                              f"multiple of {plan.tasks}, or other hydra.launcher.nodes / "
                              "tasks_per_node")


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
    checked = set()
    for run in plan.runs:  # once per distinct trainer and arch
        key = repr((sorted(run.cfg["trainer"].items()), sorted(run.cfg["arch"].items())))
        if key not in checked:
            checked.add(key)
            check_trainer(run.cfg, plan.processes)
    check_ranks(plan)
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
