"""`depthlab sweep`: many runs through Hydra's multirun and launcher plugins."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

import typer

from depthlab.cli.common import console, fail, out
from depthlab.cli.hydra_args import info_only, split_args
from depthlab.config import ConfigError, LayoutChoice, expand_sweep, parse_overrides
from depthlab.rundir import ERROR, SUMMARY, is_volatile

HELP = """Run a sweep: every combination of the comma-separated values, one run each.

Arguments are Hydra overrides; a comma list or range() makes an axis:

  depthlab sweep depth=18,34,50,152

  depthlab sweep depth=20,32,44,56 data.train_subset=5000 --dry-run

  depthlab sweep depth=18,34 seed=0,1,2 arch=plain,residual data=imagenet data.root=/data/imagenet trainer=gpu

  depthlab sweep depth=20,56 hydra/launcher=joblib hydra.launcher.n_jobs=2

  depthlab sweep depth=20,56,110 hydra/launcher=slurm hydra.launcher.partition=gpu

With no arch= the sweep covers plain and residual. Without arch.layout= the
layout follows the depths: the ImageNet tables' depths (18, 34, 50, 101, 152,
200; dense 121, 161, 169, 201, 264) take the imagenet layout on any data (a
3x3 stem for small images), other depths the data set's layout (cifar for
CIFAR-10); one layout for the whole sweep.

Before anything runs it prints the plan (runs, layout, data, device, steps,
and an estimate from timing a few steps of each net) and checks what would
make every run fail (data, download, runs_dir, CUDA, depths, a run directory
holding another config): one line and nothing written if so. --dry-run stops
after the plan. Runs go to
runs/<sweep.name>/<arch>-<depth>-s<seed>/; sweep.name defaults to a name made
from the overrides, so the same command finds its own runs again: completed
runs are skipped, unfinished ones resume from their last checkpoint
(--fresh starts every run over). The sweep ends with the comparison table,
the verdicts and report.md in the sweep directory.

Launchers (Hydra plugins): basic (default, one run after another), joblib
(several at once on this machine), submitit_local, slurm (submitit on a SLURM
cluster; edit partition, GPUs, time and memory with hydra.launcher.* overrides,
see conf/hydra/launcher/slurm.yaml), slurm_ddp (each run one SLURM job of
nodes x gpus_per_node tasks, one DistributedDataParallel rank per GPU). With
trainer.devices=N every run uses N processes on this machine.
"""


def default_sweep_name(prefix: str, overrides: list[str]) -> str:
    """A readable, stable name from the overrides: same command, same directory."""
    parts = []
    for o in sorted(overrides):
        key, _, value = o.partition("=")
        # keys that don't change the experiment don't change its name; nor do Hydra's own
        if key.startswith("hydra") or is_volatile(key):
            continue
        parts.append(f"{key.split('.')[-1]}{value}")
    name = re.sub(r"[^A-Za-z0-9.+_-]+", "-", "_".join(parts)).strip("-_") or "default"
    name = f"{prefix}-{name}"
    if len(name) > 60:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:50]}-{digest}"
    return name


def has_key(overrides: list[str], key: str) -> bool:
    return any(o.partition("=")[0].lstrip("+~") == key for o in overrides)


def run_sweep(overrides: list[str], flags: list[str], dirs: list[Path], *, prefix: str,
              fresh: bool, title: str, command: str, extra: list[list[str]] = (),
              dry_run: bool = False, layout: LayoutChoice | None = None) -> None:
    """Plan the multirun (and `extra` multiruns into the same sweep directory), check
    what would fail every run, print the plan, launch, then print the table and
    verdicts and write the report."""
    name_override = None
    if not has_key(overrides, "sweep.name"):
        name_override = f"sweep.name={default_sweep_name(prefix, overrides)}"
    launches = [[*ovr, *([name_override] if name_override else []),
                 *(["run.fresh=true"] if fresh else [])] for ovr in [overrides, *extra]]
    if info_only(flags):  # --cfg job / --info: Hydra prints, nothing runs
        from depthlab.launch import launch

        for ovr in launches:
            launch(["--multirun", *flags, *ovr])
        return
    from depthlab.plan import estimate, format_plan, make_plan, plural
    from depthlab.preflight import preflight

    try:
        plan = make_plan(launches, dirs, layout=layout)
        sizes = preflight(plan, fresh=fresh, fetch=not dry_run)
        with console.status("timing a few steps of each net for the estimate"):
            estimate(plan, sizes)
    except ConfigError as err:
        fail(str(err))
    out.print(f"[bold]{title}[/]: {plural(len(plan.runs), 'run')} -> {plan.sweep_dir}", highlight=False,
              soft_wrap=True)
    for line in format_plan(plan):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if dry_run:
        out.print("dry run: nothing was written", highlight=False)
        return
    from depthlab.launch import launch
    from depthlab.progress import SweepClock

    outcomes = []
    with SweepClock([r.seconds or 0.0 for r in plan.runs], plan.jobs,
                    plan.seconds or 0.0).exported() as clock:
        for ovr in _with_choices(launches, plan):
            outcomes += launch(["--multirun", *flags, *ovr])
            clock.next_launch(len(expand_sweep(ovr)))
    conflicts = [o for o in outcomes if o.status == "conflict"]
    if conflicts:  # appeared after the preflight (another process); the run was left untouched
        fail(conflicts[0].error)
    from depthlab.cli.report import build_report

    build_report([plan.sweep_dir], out_dir=plan.sweep_dir, title=title, commands=[command])
    failed = [p for p in plan.sweep_dir.glob(f"*/{SUMMARY}") if '"failed"' in p.read_text()]
    if failed:
        fail(f"{len(failed)} of {len(plan.runs)} runs failed (see their {SUMMARY} / {ERROR})",
             code=1)


def _with_choices(launches: list[list[str]], plan) -> list[list[str]]:
    """Each launch with what the plan decided written out: the sweep's layout where
    depthlab chose it, and trainer.precision/channels_last where `auto` was resolved, so
    every run (and a SLURM job composing its own config) gets the same ones."""
    extra = [f"arch.layout={plan.layout.layout}"] if plan.layout.auto else []
    if plan.fast_path is not None:
        extra += plan.fast_path.overrides()
    keys = {o.partition("=")[0] for o in extra}
    return [[*(o for o in ovr if o.partition("=")[0] not in keys), *extra] for ovr in launches]


def command_line(name: str, args: list[str], fresh: bool) -> str:
    return shlex.join(["depthlab", name, *(["--fresh"] if fresh else []), *args])


DRY_RUN_HELP = "Print the plan (runs, layout, data, device, steps, estimated time) and exit; nothing is written."


def sweep(
    ctx: typer.Context,
    fresh: bool = typer.Option(False, "--fresh", help="Start every run of the sweep over."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
) -> None:
    command = command_line("sweep", list(ctx.args), fresh)
    flags, overrides, dirs = split_args(list(ctx.args))
    if not overrides:
        fail("nothing to sweep: give overrides such as depth=20,32,44,56 (see --help)")
    try:
        parse_overrides(overrides)
    except ConfigError as err:
        fail(str(err))
    title = "Sweep"
    if not has_key(overrides, "arch"):
        overrides = ["arch=plain,residual", *overrides]
        title = "Sweep of plain and residual nets (no arch= given)"
    run_sweep(overrides, flags, dirs, prefix="sweep", fresh=fresh, command=command,
              title=title, dry_run=dry_run)


def register(app: typer.Typer) -> None:
    app.command("sweep", help=HELP,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(sweep)
