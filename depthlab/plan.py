"""What a sweep will do, before it does it: every run's config, the one layout
the sweep uses, the data, the device, the steps, and the estimated wall time.

`make_plan` composes every run (a config per distinct set of config-group
choices, then the runs' scalar overrides applied to a copy: a 24-run sweep costs
a few composes, not 24), decides the layout once for the whole sweep, and checks
each run's config. `estimate` resolves trainer.precision/channels_last=auto once for
the sweep, then times the training step of each distinct net as the run will train
it (precision, memory format, compile, the gradient-flow probe, its share of the
cores; engine/timing.py) and turns the times into per-run and whole-sweep estimates. The CLI prints the plan;
`preflight.py` checks what would make every run fail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from depthlab.config import (
    GROUPS,
    ConfigError,
    LayoutChoice,
    check_config,
    choose_layout,
    compose_config,
    expand_sweep,
    layout_error,
    layout_is_auto,
    parse_overrides,
)

# Seconds per run outside the training steps (process start, data from the cache,
# W&B offline start, checkpoints); measured on the 2-core CPU VM for small CIFAR runs.
RUN_OVERHEAD_S = 4.0


@dataclass
class PlannedRun:
    overrides: list[str]
    cfg: dict[str, Any]  # resolved, without Hydra's own node
    run_dir: Path
    net: tuple  # what makes two runs the same net to time
    steps: int = 0  # optimizer steps of the whole run
    step_seconds: float | None = None
    seconds: float | None = None  # estimated wall time of the run alone

    @property
    def name(self) -> str:
        return self.cfg["run"]["name"]


@dataclass
class Plan:
    sweep_dir: Path
    runs: list[PlannedRun]
    layout: LayoutChoice
    launcher: str
    jobs: int  # runs at once
    processes: int = 1  # per run: trainer.devices, or the tasks of a SLURM/submitit job (DDP)
    tasks: int = 1  # tasks (DDP ranks) of each launcher job: nodes x tasks_per_node (submitit)
    tasks_from: str = ""  # where `tasks` comes from, for messages
    data: dict[str, str] = field(default_factory=dict)  # data config key -> description
    timing_seconds: float = 0.0
    device: str = ""
    seconds: float | None = None  # estimated wall time of the sweep
    threads: int = 1  # torch threads each run gets (its share of the cores)
    fast_path: Any = None  # precision.FastPath where trainer.precision/channels_last=auto was resolved

    @property
    def total_steps(self) -> int:
        return sum(r.steps for r in self.runs)


def _is_group(key: str) -> bool:
    return key.split("/")[0].lstrip("+~") in {*GROUPS, "hydra"} and "." not in key.split("/")[0]


def compose_runs(launches: list[list[str]], dirs: list[Path]) -> list[tuple[list[str], DictConfig]]:
    """(overrides, unresolved config) of every run, in Hydra's order, launch after launch."""
    cache: dict[tuple[str, ...], DictConfig] = {}
    out = []
    for launch in launches:
        for run in expand_sweep(launch):
            groups = tuple(o for o in run if _is_group(o.partition("=")[0]) or o.startswith(("+", "~")))
            scalars = [o for o in run if o not in groups]
            if groups not in cache:
                cache[groups] = compose_config(list(groups), dirs, resolve=False)
            cfg = cache[groups].copy()
            for o in parse_overrides(scalars):
                try:
                    OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
                except Exception:  # an unknown key: let Hydra word the error
                    cfg = compose_config(run, dirs, resolve=False)
                    break
            out.append((run, cfg))
    return out


def make_plan(launches: list[list[str]], dirs: list[Path], *,
              layout: LayoutChoice | None = None) -> Plan:
    """Compose and check every run of the launches; decide the sweep's layout once.

    `layout`: a decision the caller already made (compare does, for its dense depths);
    otherwise, where no run gives arch.layout, `choose_layout` picks one for all runs.
    Raises ConfigError (one line) for the first run that cannot work.
    """
    composed = compose_runs(launches, dirs)
    auto = [layout_is_auto(cfg) for _, cfg in composed]
    if layout is None:
        if any(auto):
            first = composed[0][1]
            layout = choose_layout([(c.arch.name, c.depth) for (_, c), a in zip(composed, auto) if a],
                                   str(first.data.name), _data_layout(first))
        else:
            given = sorted({str(OmegaConf.select(c, "arch.layout")) for _, c in composed})
            layout = LayoutChoice(",".join(given), "arch.layout given", auto=False)
    runs = []
    for (overrides, cfg), is_auto in zip(composed, auto):
        if is_auto:
            cfg.arch.layout = layout.layout
            overrides = [*overrides, f"arch.layout={layout.layout}"]
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # what run_job sees
        try:
            resolved = OmegaConf.to_container(job, resolve=True)
        except Exception as err:
            raise ConfigError(" ".join(str(err).split())) from None
        try:
            check_config(resolved)
        except ConfigError as err:
            raise (layout_error(err, resolved, layout) if is_auto else err) from None
        sweep_dir = Path(resolved["paths"]["runs_dir"]) / resolved["sweep"]["name"]
        runs.append(PlannedRun(overrides, resolved, sweep_dir / resolved["run"]["name"],
                               net=_net_key(resolved)))
    first = composed[0][1]
    launcher, jobs = _launcher(first)
    node = OmegaConf.select(first, "hydra.launcher", default=None)
    tasks, tasks_from = 1, ""
    if launcher in ("slurm", "submitit_local"):  # each task of a job is one rank of the run
        nodes, per_node = int(node.get("nodes") or 1), int(node.get("tasks_per_node") or 1)
        tasks = nodes * per_node
        tasks_from = f"hydra.launcher.nodes={nodes} x tasks_per_node={per_node}"
    processes = max(tasks, int(runs[0].cfg["trainer"].get("devices") or 1))
    plan = Plan(sweep_dir=runs[0].run_dir.parent, runs=runs, layout=layout,
                launcher=launcher, jobs=jobs, processes=processes, tasks=tasks,
                tasks_from=tasks_from)
    adopt_fast_path(plan, _chosen_on_disk(runs))  # a resumed sweep keeps its precision
    return plan


def adopt_fast_path(plan: Plan, chosen) -> None:
    """Write a resolved precision.FastPath into every run whose trainer says auto."""
    from depthlab.engine.precision import is_auto

    if chosen is None:
        return
    for run in plan.runs:
        if is_auto(run.cfg["trainer"]):
            run.cfg["trainer"].update(precision=chosen.precision, channels_last=chosen.channels_last)
            run.net = _net_key(run.cfg)
            plan.fast_path = chosen


def _data_layout(cfg: DictConfig) -> str:
    return str(OmegaConf.select(cfg, "data.layout", default="cifar"))


def _launcher(cfg: DictConfig) -> tuple[str, int]:
    """(launcher name, runs at once on this machine)."""
    node = OmegaConf.select(cfg, "hydra.launcher", default=None)
    target = str(node.get("_target_", "")) if node is not None else ""
    if "joblib" in target.lower():
        n = node.get("n_jobs", -1)
        if n in (None, -1):
            import os
            n = os.cpu_count() or 1
        return "joblib", max(1, int(n))
    if "submitit" in target.lower() or "slurm" in target.lower():
        local = "Local" in target
        par = node.get("array_parallelism", 256)
        return ("submitit_local" if local else "slurm"), max(1, int(par or 1))
    return "basic", 1


def _net_key(cfg: dict[str, Any]) -> tuple:
    t, d = cfg["trainer"], cfg["data"]
    arch = tuple(sorted((k, str(v)) for k, v in cfg["arch"].items()))
    gf = cfg.get("gradflow", {})
    return (arch, cfg["depth"], d.get("name"), d.get("image_size"), t["batch_size"],
            str(t["device"]), t.get("precision"), str(t.get("channels_last")), t.get("threads"),
            bool(t.get("compile")), gf.get("every"), gf.get("activations"))


# --- estimates -----------------------------------------------------------------------

def planned_length(cfg: dict[str, Any], train_size: int) -> tuple[int, int]:
    """(epochs, optimizer steps) of one run of `train_size` images, as train.run counts
    them through optim.run_length (the loaders drop the last partial training batch; the
    preflight made sure there is a whole one)."""
    from depthlab.optim import run_length  # torch: only once the plan is made

    return run_length(cfg["trainer"], train_size // int(cfg["trainer"]["batch_size"]))


def threads_per_run(plan: Plan, cores: int | None = None) -> int:
    """Torch threads each run gets on this machine: trainer.threads, else torch's default
    (one per core); runs at once share the cores, so a run's share is at most cores / jobs
    (two 2-thread runs on 2 cores run about as fast as two 1-thread runs)."""
    import torch

    from depthlab.machine import cpu_count

    cores = cores or cpu_count()
    asked = int(plan.runs[0].cfg["trainer"].get("threads") or torch.get_num_threads() or 1)
    jobs = plan.jobs if plan.launcher in ("basic", "joblib") else 1  # SLURM: other machines
    if plan.processes > 1:  # DDP on the CPU: setup shares the cores among the ranks
        asked = max(1, asked // plan.processes)
    return max(1, min(asked, cores // max(1, min(jobs, len(plan.runs)))))


def _step_timer(threads: int):
    """The real timer (engine.timing.time_step) with the run's thread share; each net and
    setting is timed once (the `auto` choice's timing serves the estimate too)."""
    from depthlab.engine.timing import time_step

    times: dict[tuple, Any] = {}

    def timer(cfg: dict[str, Any], *, image_size: int, num_classes: int,
              precision: str | None = None, channels_last: bool | None = None):
        t = cfg["trainer"]
        as_timed = {**t, "precision": precision or t.get("precision"),
                    "channels_last": bool(t.get("channels_last")) if channels_last is None else channels_last}
        key = (_net_key({**cfg, "trainer": as_timed}), image_size, num_classes)
        if key not in times:
            times[key] = time_step(cfg, image_size=image_size, num_classes=num_classes,
                                   precision=precision, channels_last=channels_last,
                                   threads=threads)
        return times[key]
    return timer


def choose_fast_path(plan: Plan, sizes: dict[str, tuple[int, int, int, int]], timer) -> None:
    """Resolve trainer.precision/channels_last=auto once for the whole sweep, so that the
    nets it compares train the same way: as its runs already on disk were trained (a resumed
    sweep), else by timing its deepest net both ways (precision.choose_fast_path). The
    choice is written into every run's config (and launched as overrides, like the layout)."""
    from depthlab.engine.build import resolve_device
    from depthlab.engine.precision import FastPath, is_auto
    from depthlab.engine.precision import choose_fast_path as choose

    autos = [r for r in plan.runs if is_auto(r.cfg["trainer"])]
    if not autos:
        return
    chosen = plan.fast_path or _chosen_on_disk(autos)
    if chosen is None:
        deepest = max(autos, key=lambda r: int(r.cfg["depth"]))
        _, _, image_size, classes = sizes[data_key(deepest.cfg)]

        def seconds(precision: str, channels_last: bool) -> float:
            return timer(deepest.cfg, image_size=image_size, num_classes=classes,
                         precision=precision, channels_last=channels_last).seconds

        t = deepest.cfg["trainer"]
        chosen = choose(t, resolve_device(str(t["device"])), seconds)
        chosen = FastPath(chosen.precision, chosen.channels_last,
                          f"{chosen.reason} (timed on {deepest.name})", chosen.speedup)
    adopt_fast_path(plan, chosen)


def _chosen_on_disk(runs: list[PlannedRun]):
    """The precision the sweep's runs on disk were trained with (their config.yaml)."""
    import yaml

    from depthlab.rundir import CONFIG

    for run in runs:
        try:
            t = (yaml.safe_load((run.run_dir / CONFIG).read_text()) or {}).get("trainer") or {}
        except (OSError, yaml.YAMLError):
            continue
        if t.get("precision") in ("fp32", "bf16", "fp16") and t.get("channels_last") in (True, False):
            from depthlab.engine.precision import FastPath  # torch: only where a run is on disk

            return FastPath(t["precision"], t["channels_last"],
                            f"auto: as the runs already in {run.run_dir.parent} were trained")
    return None


def estimate(plan: Plan, sizes: dict[str, tuple[int, int, int, int]], timer=None) -> None:
    """Fill in steps and estimated seconds: `sizes` maps a run's data key (see
    `data_key`) to (train images, test images, image size, classes). `timer(cfg, *,
    image_size, num_classes, precision=None, channels_last=None)` -> engine.timing.StepTime
    times one step as the run will train (tests pass a fake; default: the real one, with
    each run's share of the cores). `auto` precision is resolved here first."""
    started = time.perf_counter()
    plan.threads = threads_per_run(plan)
    if timer is None:
        from depthlab.engine.timing import time_step

        first = plan.runs[0]
        try:  # the first step in a process pays one-off set-up: not part of any net's time
            time_step({**first.cfg, "trainer": {**first.cfg["trainer"], "batch_size": 8}},
                      image_size=sizes[data_key(first.cfg)][2],
                      num_classes=sizes[data_key(first.cfg)][3], precision="fp32",
                      channels_last=False, threads=plan.threads)
        except Exception:  # noqa: BLE001 (timed again below, where a failure is handled)
            pass
        timer = _step_timer(plan.threads)
    per_net: dict[tuple, Any] = {}
    choose_fast_path(plan, sizes, timer)
    for run in plan.runs:
        train_size, test_size, image_size, classes = sizes[data_key(run.cfg)]
        epochs, run.steps = planned_length(run.cfg, train_size)
        if run.net not in per_net:
            try:
                per_net[run.net] = timer(run.cfg, image_size=image_size, num_classes=classes)
            except Exception:  # noqa: BLE001 (the run itself will report what is wrong)
                per_net[run.net] = None
        timed = per_net[run.net]
        run.step_seconds = timed.seconds if timed is not None else None
        if run.step_seconds is None:
            run.seconds = None
            continue
        t = run.cfg["trainer"]
        evals = -(-epochs // int(t["eval_every"]))
        # evaluation: a forward pass is about a third of a training step per image
        eval_s = evals * test_size * run.step_seconds / int(t["batch_size"]) / 3
        run.seconds = RUN_OVERHEAD_S + timed.compile_seconds + run.steps * run.step_seconds + eval_s
    known = [r.seconds for r in plan.runs if r.seconds is not None]
    plan.seconds = makespan(known, plan.jobs) if known else None
    plan.timing_seconds = time.perf_counter() - started
    from depthlab.engine.build import resolve_device

    device = resolve_device(str(plan.runs[0].cfg["trainer"]["device"]))
    if device.type == "cuda":
        import torch
        plan.device = f"{device} ({torch.cuda.get_device_name(device)})"
    else:
        from depthlab import machine
        info = machine.describe()
        bf16 = ("native bf16: " + ", ".join(info["bf16_instructions"]) if info["native_bf16"]
                else "no native bf16")
        plan.device = (f"cpu ({info['processor']}, {info['arch']}, {info['cores']} cores, {bf16}; "
                       f"{plural(plan.threads, 'thread')} per run)")


def makespan(seconds: list[float], jobs: int) -> float:
    """Wall time of runs started in order on `jobs` slots (each starts when a slot frees)."""
    slots = [0.0] * max(1, jobs)
    for s in seconds:
        i = slots.index(min(slots))
        slots[i] += s
    return max(slots)


def data_key(cfg: dict[str, Any]) -> str:
    return repr(sorted((k, str(v)) for k, v in cfg["data"].items()))


# --- printing --------------------------------------------------------------------------

def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds / 86400:.1f} days"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _values(runs: list[PlannedRun], get) -> str:
    return ", ".join(str(v) for v in dict.fromkeys(get(r) for r in runs))


def precision_line(plan: Plan) -> str:
    """e.g. "bf16 autocast + channels_last (auto: native avx512_bf16; ... 1.93x faster than fp32)"."""
    t = plan.runs[0].cfg["trainer"]
    words = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + loss scaling",
             "auto": "auto"}
    text = (f"{words.get(str(t.get('precision')), t.get('precision'))} + "
            f"{'channels_last' if t.get('channels_last') is True else 'contiguous'}"
            f"{' + torch.compile' if t.get('compile') else ''}")
    if t.get("channels_last") == "auto":
        text = text.replace("contiguous", "channels_last auto")
    return f"{text} ({plan.fast_path.reason})" if plan.fast_path is not None else text


def format_plan(plan: Plan) -> list[str]:
    runs = plan.runs
    by_arch: dict[str, list[int]] = {}
    for r in runs:
        by_arch.setdefault(r.cfg["arch"]["name"], []).append(r.cfg["depth"])
    groups: dict[str, list[str]] = {}  # depth list -> archs with exactly those depths
    for arch, depths in by_arch.items():
        groups.setdefault(", ".join(str(d) for d in dict.fromkeys(depths)), []).append(arch)
    grid = "; ".join(f"{', '.join(a)} x depth {d}" for d, a in groups.items())
    seeds = _values(runs, lambda r: r.cfg["seed"])
    t = runs[0].cfg["trainer"]
    at_once = {"basic": "one run at a time", "joblib": f"{plan.jobs} runs at once on this machine",
               "submitit_local": f"up to {plan.jobs} runs at once (submitit, local)",
               "slurm": f"up to {plan.jobs} SLURM jobs at once"}[plan.launcher]
    lines = [
        f"  runs      {len(runs)}: {grid}; seed {seeds}",
        f"  layout    {plan.layout.layout} ({plan.layout.reason})",
        *[f"  data      {d}" for d in plan.data.values()],
        f"  device    {plan.device}; launcher {plan.launcher} ({at_once})",
        f"  numerics  {precision_line(plan)}",
    ]
    if plan.processes > 1:
        b = int(t["batch_size"])
        lines.append(f"  processes {plan.processes} per run (DistributedDataParallel): the global batch "
                     f"{b} = {plan.processes} x {b // plan.processes}; estimate timed as one process")
    steps = dict.fromkeys(r.steps for r in runs)
    per_run = (f"{next(iter(steps)):,} per run" if len(steps) == 1
               else f"{min(steps):,} to {max(steps):,} per run")
    lines.append(f"  steps     {per_run}, {plan.total_steps:,} in all (batch {t['batch_size']})")
    far = "" if plan.launcher != "slurm" else " (if the cluster's GPUs match this device)"
    lines.append(f"  estimate  {duration(plan.seconds)} on this device{far}; timed "
                 f"{plural(len({r.net for r in runs}), 'net')} in {plan.timing_seconds:.1f} s")
    width = max(len(r.name) for r in runs)
    for r in runs:
        timing = (f"{1000 * r.step_seconds:>8,.0f} ms/step  ~{duration(r.seconds)}"
                  if r.step_seconds is not None else "could not be timed (the run will say why)")
        lines.append(f"    {r.name:<{width}}  {r.steps:>7,} steps  {timing}")
    return lines
