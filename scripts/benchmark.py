#!/usr/bin/env python
"""depthlab against the baselines a researcher would otherwise use, side by side.

    python scripts/benchmark.py                      # the full table (a few minutes on 2 cores)
    python scripts/benchmark.py --quick              # tiny settings: seconds (what the tests run)
    python scripts/benchmark.py --only train gradflow --reps 7
    python scripts/benchmark.py --out /tmp/bench     # default: results/benchmarks/

Every figure is a ratio measured in this one process (the memory row: in two
fresh subprocesses), the two sides interleaved rep by rep (A B, B A, A B, ...),
so that whatever else the machine is doing hits both sides alike; a row reports
the median of the per-rep ratios and their min-max spread. What each row runs,
and against what, is in scripts/README.md; the table goes to
<out>/latest.md and <out>/latest.json with the date, the machine and the command.

Benchmarks (--only names):
  train     depthlab.train.run (gradient flow every step) vs a hand-written loop
  gradflow  GradFlowProbe (arm, hooks, record, gradflow.csv) vs wandb.watch(log="gradients")
  data      depthlab's device-resident CIFAR-10 loader vs torchvision DataLoader + ImageFolder
  parity    forward+backward of depthlab residual-50 / dense-121 vs torchvision's
  memory    peak memory of dense-BC-190 with and without memory_efficient
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("train", "gradflow", "data", "parity", "memory")
MiB = 2**20


# --- settings ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    label: str  # "residual-20"
    arch: str  # plain | residual | dense
    depth: int
    layout: str  # cifar | imagenet
    batch: int  # training images per step
    warm: int  # untimed steps first (also run()'s log interval: see train_rows)
    steps: int  # timed steps, a multiple of warm


@dataclass(frozen=True)
class Settings:
    reps: int
    train: tuple[ModelSpec, ...]  # also the models of the gradflow rows
    gradflow_steps: int  # timed steps per variant per rep
    data_batch: int
    data_batches: int  # timed batches per loader per rep (after the first)
    parity: tuple[tuple[str, str, int], ...]  # (label, depthlab arch, depth) vs torchvision
    parity_size: int  # input side, pixels (large 7x7/2 stem on both)
    parity_batch: int
    parity_steps: int
    memory_depth: int
    memory_batch: int
    memory_parallel: bool  # both memory subprocesses at once (peak RSS is per process)


FULL = Settings(
    reps=5,
    train=(
        # timed windows of about 2 s a side: shorter ones left a +-5% rep-to-rep noise
        ModelSpec("residual-20 (cifar)", "residual", 20, "cifar", batch=32, warm=2, steps=30),
        ModelSpec("residual-50 (imagenet, 32 px)", "residual", 50, "imagenet", batch=4, warm=1,
                  steps=6),
        ModelSpec("dense-BC-100 (cifar)", "dense", 100, "cifar", batch=8, warm=2, steps=8),
    ),
    gradflow_steps=2,
    data_batch=128, data_batches=30,
    parity=(("residual-50 vs resnet50", "residual", 50), ("dense-121 vs densenet121", "dense", 121)),
    parity_size=64, parity_batch=8, parity_steps=2,
    memory_depth=190, memory_batch=64, memory_parallel=True,
)

QUICK = Settings(
    reps=2,
    train=(
        ModelSpec("residual-8 (cifar)", "residual", 8, "cifar", batch=4, warm=1, steps=2),
        ModelSpec("dense-BC-10 (cifar)", "dense", 10, "cifar", batch=4, warm=1, steps=2),
    ),
    gradflow_steps=2,
    data_batch=8, data_batches=3,
    parity=(("residual-18 vs resnet18", "residual", 18), ("dense-121 vs densenet121", "dense", 121)),
    parity_size=32, parity_batch=2, parity_steps=1,
    memory_depth=40, memory_batch=4, memory_parallel=False,
)


# --- one row of the table ---------------------------------------------------------------

@dataclass
class Row:
    key: str  # stable id: "<benchmark>/<what>"
    bench: str  # one of BENCHMARKS
    name: str  # what the table shows
    depthlab: float | None
    baseline: float | None
    unit: str  # of depthlab and baseline: "img/s", "ms/step", "MB"
    ratio: float | None  # median of the per-rep ratios
    spread: tuple[float, float] | None  # min, max of the per-rep ratios
    ratio_unit: str  # "x" or "%"
    target: str  # e.g. ">= 0.97x"
    met: bool | None  # None: skipped
    reps: int
    baseline_is: str = ""  # what the baseline column holds
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def compare(op: str, value: float | None, bound: float) -> bool | None:
    if value is None or not math.isfinite(value):
        return None
    return {">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]


def make_row(key: str, name: str, *, depthlab: list[float], baseline: list[float],
             ratios: list[float], unit: str, target: tuple[str, float], ratio_unit: str = "x",
             baseline_is: str = "", note: str = "", detail: dict[str, Any] | None = None) -> Row:
    """A row from per-rep values: medians of each side, median and min-max of the ratios."""
    op, bound = target
    ratio = statistics.median(ratios)
    shown = f"{100 * bound:g}%" if ratio_unit == "%" else f"{bound:g}x"
    return Row(
        key=key, bench=key.split("/")[0], name=name,
        depthlab=statistics.median(depthlab), baseline=statistics.median(baseline), unit=unit,
        ratio=ratio, spread=(min(ratios), max(ratios)), ratio_unit=ratio_unit,
        target=f"{op} {shown}", met=compare(op, ratio, bound), reps=len(ratios),
        baseline_is=baseline_is, note=note,
        detail={"per_rep": {"depthlab": depthlab, "baseline": baseline, "ratio": ratios},
                **(detail or {})},
    )


def skipped_row(key: str, name: str, why: str, target: str) -> Row:
    return Row(key=key, bench=key.split("/")[0], name=name, depthlab=None, baseline=None, unit="",
               ratio=None, spread=None, ratio_unit="x", target=target, met=None, reps=0,
               note=f"skipped: {why}")


# --- helpers --------------------------------------------------------------------------------

def say(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def interleaved(reps: int, sides: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Run every side once per rep, the order reversed on odd reps (A B, B A, A B, ...),
    so that drift on the machine falls on both sides alike."""
    out: dict[str, list[Any]] = {name: [] for name in sides}
    names = list(sides)
    for rep in range(reps):
        for name in (names if rep % 2 == 0 else names[::-1]):
            out[name].append(sides[name]())
    return out


@contextmanager
def quiet_progress() -> Iterator[None]:
    """depthlab.train draws a live progress bar when stderr is a terminal; the benchmark
    measures the loop as it runs in sweeps, SLURM and CI (no live bar), whatever its own
    terminal, and does not flash dozens of bars."""
    from rich.console import Console

    import depthlab.progress as progress

    saved = progress.console
    progress.console = Console(stderr=True, force_terminal=False)
    try:
        yield
    finally:
        progress.console = saved


def compose(overrides: list[str]) -> dict[str, Any]:
    """The resolved config `depthlab train <overrides>` would run, as the dict run() takes."""
    from omegaconf import OmegaConf

    from depthlab.config import check_config, compose_config

    cfg = compose_config(overrides)
    check_config(cfg)
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return container


def train_overrides(spec: ModelSpec) -> list[str]:
    total = spec.warm + spec.steps
    return [
        f"arch={spec.arch}", f"depth={spec.depth}", f"arch.layout={spec.layout}",
        "data=synthetic", "data.image_size=32", f"data.train_size={total * spec.batch}",
        f"data.test_size={spec.batch}", "data.augment=false",
        "optim=sgd", "logger=none", "trainer.device=cpu",
        f"trainer.batch_size={spec.batch}", f"trainer.eval_batch_size={spec.batch}",
        f"trainer.iterations={total}", f"trainer.log_every={spec.warm}",
        "gradflow.every=1", "gradflow.activations=true",
    ]


def hand_optimizer(model: torch.nn.Module, o: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"],
                           weight_decay=o["weight_decay"])


def hand_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor) -> torch.Tensor:
    """The minimal PyTorch training step every tutorial writes."""
    out = model(x)
    loss = F.cross_entropy(out, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def synthetic_batches(cfg: dict[str, Any]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], Any]:
    """The exact batches run(cfg) trains on in its epoch 1, already made and in memory."""
    from depthlab.data import build_data

    t = cfg["trainer"]
    data_cfg = {k: v for k, v in cfg["data"].items() if k != "layout"}
    data = build_data(data_cfg, batch_size=t["batch_size"], eval_batch_size=t["eval_batch_size"],
                      device="cpu", seed=int(cfg["seed"]))
    data.train.set_epoch(1)
    return [(x.clone(), y.clone()) for x, y in data.train], data


def fresh_model(cfg: dict[str, Any], data: Any) -> torch.nn.Module:
    from depthlab.engine.setup import make_model

    torch.manual_seed(int(cfg["seed"]))
    model = make_model(cfg, data.num_classes, data.image_size)
    model.train()
    return model


# --- 1. training step -----------------------------------------------------------------------

def read_windows(run_dir: Path, batch: int) -> tuple[int, float]:
    """Images and seconds of run()'s logged training windows after the first (the first
    holds step 0's one-off costs); evaluation and checkpointing fall outside every window."""
    import csv

    with open(run_dir / "metrics_steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    window = int(rows[0]["step"])
    images = seconds = 0.0
    for row in rows[1:]:
        n = window * batch
        images += n
        seconds += n / float(row["images_per_sec"])
    return int(images), seconds


def train_rows(s: Settings) -> list[Row]:
    from depthlab import train

    rows = []
    for spec in s.train:
        assert spec.steps % spec.warm == 0, "steps must be a multiple of warm (run()'s log interval)"
        cfg = compose(train_overrides(spec))
        batches, data = synthetic_batches(cfg)
        o = cfg["optim"]
        say(f"train: {spec.label}, batch {spec.batch}, {spec.warm} + {spec.steps} steps x "
            f"{s.reps} reps")

        def depthlab_side() -> float:
            run_dir = Path(tempfile.mkdtemp(prefix="depthlab-bench-"))
            try:
                summary = train.run(cfg, run_dir, group="benchmark")
                if summary["status"] != "completed":
                    raise RuntimeError(f"benchmark run ended {summary['status']}")
                images, seconds = read_windows(run_dir, spec.batch)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
            return images / seconds

        def hand_side() -> float:
            model = fresh_model(cfg, data)
            optimizer = hand_optimizer(model, o)
            for x, y in batches[:spec.warm]:
                hand_step(model, optimizer, x, y)
            start = time.perf_counter()
            for x, y in batches[spec.warm:]:
                hand_step(model, optimizer, x, y)
            seconds = time.perf_counter() - start
            return spec.steps * spec.batch / seconds

        with quiet_progress():
            got = interleaved(s.reps, {"depthlab": depthlab_side, "hand": hand_side})
        ratios = [a / b for a, b in zip(got["depthlab"], got["hand"])]
        key = f"train/{spec.arch}-{spec.depth}-{spec.layout}"
        rows.append(make_row(
            key, f"training step: {spec.label}, batch {spec.batch}",
            depthlab=got["depthlab"], baseline=got["hand"], ratios=ratios, unit="img/s",
            target=(">=", 0.97), baseline_is="hand-written PyTorch loop",
            detail={"batch": spec.batch, "warm_steps": spec.warm, "timed_steps": spec.steps,
                    "overrides": train_overrides(spec)},
        ))
        say(f"  depthlab/hand = {rows[-1].ratio:.3f} (spread {rows[-1].spread[0]:.3f}-"
            f"{rows[-1].spread[1]:.3f})")
    return rows


# --- 2. gradient-flow cost --------------------------------------------------------------------

@contextmanager
def offline_wandb(root: Path) -> Iterator[Any]:
    """A W&B run in offline mode whose every file (settings, cache, run) stays under root."""
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(root),
           "WANDB_CONFIG_DIR": str(root / "config"), "WANDB_CACHE_DIR": str(root / "cache"),
           "WANDB_DATA_DIR": str(root / "data"), "WANDB_ARTIFACT_DIR": str(root / "artifacts")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import wandb

        run = wandb.init(project="depthlab-benchmark", mode="offline", dir=str(root),
                         settings=wandb.Settings(console="off", silent=True))
        try:
            yield wandb
        finally:
            run.finish()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def timed_probe_class():
    """GradFlowProbe whose block hooks (the forward hooks: output std; the tensor hooks in
    backward: ||dL/dh_b||) add up the seconds they take (on the CPU every op is
    synchronous, so wall time inside the hook is its cost)."""
    from depthlab.gradflow import GradFlowProbe

    class TimedProbe(GradFlowProbe):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.hook_seconds = 0.0
            self.label = nullcontext  # record_function under --profile only: it costs µs per call
            super().__init__(*args, **kwargs)

        def _hook(self, i: int):
            inner = super()._hook(i)

            def hook(module, inputs, output):
                start = time.perf_counter()
                with self.label("gradflow.hooks"):
                    inner(module, inputs, output)
                self.hook_seconds += time.perf_counter() - start
            return hook

        def _grad_hook(self, i: int):
            # the backward signal ||dL/dh_b||: a tensor hook that runs inside backward()
            inner = super()._grad_hook(i)

            def hook(grad):
                start = time.perf_counter()
                with self.label("gradflow.hooks"):
                    inner(grad)
                self.hook_seconds += time.perf_counter() - start
            return hook

    return TimedProbe


def gradflow_rows(s: Settings, profile_dir: Path | None = None) -> list[Row]:
    from depthlab.models import describe
    from depthlab.tracking import RunInfo
    from depthlab.tracking.local import LocalSink

    TimedProbe = timed_probe_class()
    rows: list[Row] = []
    root = Path(tempfile.mkdtemp(prefix="depthlab-bench-wandb-"))
    try:
        with offline_wandb(root / "wandb") as wandb:
            for spec in s.train:
                cfg = compose(train_overrides(spec))
                batches, data = synthetic_batches(cfg)
                o = cfg["optim"]
                steps = s.gradflow_steps
                say(f"gradflow: {spec.label}, batch {spec.batch}, {steps} steps x 3 variants x "
                    f"{s.reps} reps (W&B offline)")
                models = {v: fresh_model(cfg, data) for v in ("base", "probe", "watch")}
                optimizers = {v: hand_optimizer(m, o) for v, m in models.items()}
                desc = describe(models["probe"], flops=False)
                probe = TimedProbe(models["probe"], desc["layers"], desc["blocks"], activations=True)
                sink = LocalSink(root / f"run-{spec.arch}-{spec.depth}")
                sink.start(RunInfo(name="bench", group="benchmark", run_dir=sink.run_dir,
                                   config={}, description={}, layers=desc["layers"],
                                   blocks=desc["blocks"]))
                wandb.watch(models["watch"], log="gradients", log_freq=1)
                counter = {"step": 0}
                probe_seconds = {"record": 0.0, "write": 0.0}

                def loop(variant: str, n: int) -> float:
                    """Seconds per step of n steps of the hand loop + wandb.log(loss) per step,
                    plus the probe or wandb.watch's hooks for those variants."""
                    model, optimizer = models[variant], optimizers[variant]
                    start = time.perf_counter()
                    for i in range(n):
                        x, y = batches[i % len(batches)]
                        step = counter["step"]  # the probe's record number
                        if variant == "probe":
                            probe.arm()
                        out = model(x)
                        loss = F.cross_entropy(out, y)
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        if variant == "probe":
                            t0 = time.perf_counter()
                            with probe.label("gradflow.record"):
                                record = probe.record(step)
                            t1 = time.perf_counter()
                            with probe.label("gradflow.write"):
                                sink.log_gradflow(1, record)
                            probe_seconds["record"] += t1 - t0
                            probe_seconds["write"] += time.perf_counter() - t1
                        optimizer.step()
                        wandb.log({"loss": loss.item()})  # W&B's own step: one per commit
                        counter["step"] += 1
                    return (time.perf_counter() - start) / n

                for variant in models:  # warm-up: first steps allocate grads, momentum, oneDNN
                    loop(variant, 1)
                direct: list[dict[str, float]] = []

                def probe_side() -> float:
                    probe.hook_seconds = 0.0
                    probe_seconds.update(record=0.0, write=0.0)
                    step = loop("probe", steps)
                    direct.append({"hooks": probe.hook_seconds / steps,
                                   "record": probe_seconds["record"] / steps,
                                   "write": probe_seconds["write"] / steps})
                    return step

                got = interleaved(s.reps, {"base": lambda: loop("base", steps),
                                           "probe": probe_side,
                                           "watch": lambda: loop("watch", steps)})
                if profile_dir is not None:  # after the timed reps, labels on
                    probe.label = torch.profiler.record_function
                    write_profile(profile_dir, spec, lambda: loop("probe", steps))
                wandb.unwatch(models["watch"])
                probe.close()
                sink.finish({})
                ms = 1000.0
                probe_ms = [ms * sum(d.values()) for d in direct]
                base_ms = [ms * t for t in got["base"]]
                watch_ms = [ms * (w - b) for w, b in zip(got["watch"], got["base"])]
                probe_diff_ms = [ms * (p - b) for p, b in zip(got["probe"], got["base"])]
                parts = {k: statistics.median(ms * d[k] for d in direct) for k in direct[0]}
                label = f"{spec.label}, batch {spec.batch}"
                common = {"batch": spec.batch, "timed_steps": steps,
                          "probe_parts_ms": parts,
                          "probe_by_step_difference_ms": probe_diff_ms,
                          "step_ms": {"base": base_ms,
                                      "probe": [ms * t for t in got["probe"]],
                                      "watch": [ms * t for t in got["watch"]]},
                          "layers": len(desc["layers"]), "blocks": len(desc["blocks"])}
                key = f"{spec.arch}-{spec.depth}-{spec.layout}"
                rows.append(make_row(
                    f"gradflow/vs-watch/{key}", f"gradient flow vs wandb.watch: {label}",
                    depthlab=probe_ms, baseline=watch_ms,
                    ratios=[w / p for w, p in zip(watch_ms, probe_ms)], unit="ms/step",
                    target=(">=", 5.0), baseline_is="wandb.watch(log='gradients', log_freq=1) overhead",
                    detail=common,
                ))
                rows.append(make_row(
                    f"gradflow/share/{key}", f"gradient flow share of a step: {label}",
                    depthlab=probe_ms, baseline=base_ms,
                    ratios=[p / b for p, b in zip(probe_ms, base_ms)], unit="ms/step",
                    target=("<", 0.02), ratio_unit="%", baseline_is="training step",
                    detail=common,
                ))
                say(f"  probe {statistics.median(probe_ms):.2f} ms ({100 * rows[-1].ratio:.2f}% of "
                    f"a step), wandb.watch {statistics.median(watch_ms):.1f} ms: "
                    f"{rows[-2].ratio:.1f}x")
                models.clear()  # free this model's memory before the next
                optimizers.clear()
                gc.collect()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def write_profile(out: Path, spec: ModelSpec, steps: Callable[[], float]) -> None:
    """torch.profiler over training steps with the probe: which ops the probe's cost is made of
    (its parts are labelled gradflow.hooks / gradflow.record / gradflow.write)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"profile-{spec.arch}-{spec.depth}-{spec.layout}.txt"
    path.write_text(f"# torch.profiler: training steps of {spec.label}, batch {spec.batch}, "
                    f"with GradFlowProbe recording every step\n"
                    f"# gradflow.* rows: the probe's parts, with their child ops\n{table}\n")
    say(f"  profile: {path}")


# --- 3. data feeding ---------------------------------------------------------------------------

def jpeg_root(data_root: Path) -> Path | None:
    """The train/<class>/*.jpg folder of depthlab's JPEG copy of CIFAR-10 under data_root."""
    for path in (data_root / "cifar10-jpeg", data_root):
        train = path / "train"
        if train.is_dir() and any(train.glob("*/*.jp*g")):
            return path
    return None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def data_rows(s: Settings, data_root: Path, cache_dir: Path) -> list[Row]:
    key, name = "data/cifar10", f"data feeding: CIFAR-10 train, batch {s.data_batch}, crop + flip"
    target = ">= 5x"
    folder = jpeg_root(data_root)
    if folder is None:
        why = (f"no CIFAR-10 JPEG folders under {data_root} (want cifar10-jpeg/train/<class>/*.jpg;"
               f" run scripts/unpack_cifar.sh or pass --data-root)")
        say(f"data: {why}")
        return [skipped_row(key, name, why, target)]
    import torchvision
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    from depthlab.data import build_data
    from depthlab.data.cifar10 import MEAN, STD

    workers = cpu_count()
    say(f"data: {folder}, {s.data_batches} batches of {s.data_batch} x {s.reps} reps; "
        f"torchvision with {workers} workers")
    # depthlab reads the same JPEGs (decoded once into its uint8 cache, not timed here)
    data = build_data({"name": "cifar10", "root": str(folder), "download": False,
                       "cache_dir": str(cache_dir)},
                      batch_size=s.data_batch, eval_batch_size=s.data_batch, device="cpu", seed=0)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(MEAN, STD)])
    dataset = torchvision.datasets.ImageFolder(str(folder / "train"), transform=transform)
    n = s.data_batches
    epoch = {"e": 0}

    def timed(batches: Iterator[Any]) -> float:
        """Images/s from the end of the first batch (worker start-up excluded) to the nth."""
        next(batches)
        start = time.perf_counter()
        for _ in range(n):
            x, _ = next(batches)
        return n * len(x) / (time.perf_counter() - start)

    def depthlab_side() -> float:
        epoch["e"] += 1
        data.train.set_epoch(epoch["e"])
        return timed(iter(data.train))

    def torchvision_side() -> float:
        loader = DataLoader(dataset, batch_size=s.data_batch, shuffle=True, num_workers=workers,
                            drop_last=True)
        it = iter(loader)
        try:
            return timed(it)
        finally:
            del it  # shuts the workers down before the other side runs

    got = interleaved(s.reps, {"depthlab": depthlab_side, "torchvision": torchvision_side})
    ratios = [a / b for a, b in zip(got["depthlab"], got["torchvision"])]
    row = make_row(key, name, depthlab=got["depthlab"], baseline=got["torchvision"], ratios=ratios,
                   unit="img/s", target=(">=", 5.0),
                   baseline_is=f"torchvision DataLoader + ImageFolder, {workers} workers",
                   detail={"folder": str(folder), "workers": workers, "batch": s.data_batch,
                           "timed_batches": n, "torchvision": torchvision.__version__})
    say(f"  depthlab/torchvision = {row.ratio:.1f}x")
    return [row]


# --- 4. model parity ------------------------------------------------------------------------------

def parity_rows(s: Settings) -> list[Row]:
    import torchvision

    from depthlab.models import build_model, describe

    rows = []
    size, batch = s.parity_size, s.parity_batch
    for label, arch, depth in s.parity:
        ours = build_model(arch, depth, layout="imagenet", num_classes=1000, image_size=size,
                           stem="large")
        if arch == "dense":
            theirs = getattr(torchvision.models, f"densenet{depth}")()
        else:
            theirs = getattr(torchvision.models, f"resnet{depth}")()
        params = (sum(p.numel() for p in ours.parameters()),
                  sum(p.numel() for p in theirs.parameters()))
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, size, size, generator=g)
        y = torch.randint(0, 1000, (batch,), generator=g)
        say(f"parity: {label}, batch {batch}, {size}x{size}, {s.parity_steps} steps x {s.reps} reps"
            f" (params {params[0]:,} vs {params[1]:,})")

        def side(model: torch.nn.Module) -> Callable[[], float]:
            model.train()

            def once() -> float:
                start = time.perf_counter()
                for _ in range(s.parity_steps):
                    F.cross_entropy(model(x), y).backward()
                    model.zero_grad(set_to_none=True)
                return s.parity_steps * batch / (time.perf_counter() - start)
            return once

        a, b = side(ours), side(theirs)
        a(); b()  # warm-up
        got = interleaved(s.reps, {"depthlab": a, "torchvision": b})
        ratios = [p / q for p, q in zip(got["depthlab"], got["torchvision"])]
        tv_name = f"densenet{depth}" if arch == "dense" else f"resnet{depth}"
        rows.append(make_row(
            f"parity/{arch}-{depth}", f"model parity: {label}, batch {batch}, {size}x{size}",
            depthlab=got["depthlab"], baseline=got["torchvision"], ratios=ratios, unit="img/s",
            target=(">=", 0.98), baseline_is=f"torchvision.models.{tv_name}",
            detail={"params": {"depthlab": params[0], "torchvision": params[1]},
                    "flops": describe(ours)["flops"], "batch": batch, "image_size": size,
                    "timed_steps": s.parity_steps},
        ))
        say(f"  depthlab/torchvision = {rows[-1].ratio:.3f}")
        del ours, theirs
        gc.collect()
    return rows


# --- 5. dense memory --------------------------------------------------------------------------------

def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_child(memory_efficient: bool, depth: int, batch: int) -> dict[str, Any]:
    """In a fresh process: peak resident memory added by one forward+backward of
    dense-BC-<depth> (cifar) at `batch`, over the memory held once model and batch exist."""
    import resource

    from depthlab.models import build_model

    model = build_model("dense", depth, layout="cifar", memory_efficient=memory_efficient)
    model.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    gc.collect()
    try:  # reset the peak to the current RSS, so that building the model does not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before_kib = _status_kib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    F.cross_entropy(model(x), y).backward()
    seconds = time.perf_counter() - start
    peak_kib = _status_kib("VmHWM") if reset else None
    if peak_kib is not None:
        method = "VmHWM after resetting it (/proc/self/clear_refs), minus VmRSS before the step"
    else:  # ru_maxrss is the peak since the process began: an upper bound
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        method = "ru_maxrss minus VmRSS before the step"
    return {"peak_growth_mb": (peak_kib - before_kib) / 1024, "rss_before_mb": before_kib / 1024,
            "seconds": seconds, "method": method}


def memory_rows(s: Settings, threads: int) -> list[Row]:
    depth, batch = s.memory_depth, s.memory_batch
    say(f"memory: dense-BC-{depth} (cifar), batch {batch}, one forward+backward per fresh "
        f"subprocess ({'both at once' if s.memory_parallel else 'one after the other'})")

    def start(efficient: bool) -> subprocess.Popen:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child",
               "efficient" if efficient else "plain", "--memory-depth", str(depth),
               "--memory-batch", str(batch), "--threads", str(threads)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(proc: subprocess.Popen) -> dict[str, Any]:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"memory subprocess failed ({proc.returncode}): {err.strip()[-500:]}")
        return json.loads(out.strip().splitlines()[-1])

    if s.memory_parallel:
        procs = [start(True), start(False)]
        eff, plain = (finish(p) for p in procs)
    else:
        eff = finish(start(True))
        plain = finish(start(False))
    ratio = eff["peak_growth_mb"] / plain["peak_growth_mb"]
    row = make_row(
        f"memory/dense-{depth}", f"dense memory: dense-BC-{depth} (cifar, k=12), batch {batch}, "
        f"memory_efficient", depthlab=[eff["peak_growth_mb"]], baseline=[plain["peak_growth_mb"]],
        ratios=[ratio], unit="MB", target=("<=", 0.5),
        baseline_is="the same net without memory_efficient",
        note="one fresh subprocess per variant; peak RSS growth of one forward+backward",
        detail={"efficient": eff, "plain": plain, "batch": batch, "depth": depth,
                "parallel": s.memory_parallel},
    )
    say(f"  memory_efficient {eff['peak_growth_mb']:,.0f} MB vs {plain['peak_growth_mb']:,.0f} MB"
        f" = {ratio:.2f}x")
    return [row]


# --- machine, output ---------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


def machine_info(threads: int) -> dict[str, Any]:
    import torchvision

    try:
        import wandb
        wandb_version = wandb.__version__
    except ImportError:
        wandb_version = None
    return {
        "cpu": cpu_model(), "cores": cpu_count(), "torch_threads": threads,
        "torch": torch.__version__, "torchvision": torchvision.__version__, "wandb": wandb_version,
        "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}",
        "cuda": torch.cuda.is_available(), "hostname": platform.node(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "img/s":
        return f"{v:,.0f} img/s" if v >= 100 else f"{v:.1f} img/s"
    if unit == "ms/step":
        return f"{v:.2f} ms/step" if v < 100 else f"{v:,.0f} ms/step"
    if unit == "MB":
        return f"{v:,.0f} MB"
    return f"{v:g} {unit}"


def fmt_ratio(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "%":
        return f"{100 * v:.2f}%"
    return f"{v:.1f}x" if abs(v) >= 10 else f"{v:.3f}x" if abs(v) < 2 else f"{v:.2f}x"


def fmt_met(met: bool | None) -> str:
    return {True: "yes", False: "no", None: "skipped"}[met]


COLUMNS = ["benchmark", "depthlab", "baseline", "ratio (median)", "spread (min-max)", "target",
           "met", "reps"]


def table_cells(row: Row, with_baseline_is: bool = True) -> list[str]:
    spread = "-" if row.spread is None else (
        f"{fmt_ratio(row.spread[0], row.ratio_unit)} - {fmt_ratio(row.spread[1], row.ratio_unit)}")
    baseline = fmt_value(row.baseline, row.unit)
    if with_baseline_is and row.baseline_is and row.baseline is not None:
        baseline = f"{baseline} ({row.baseline_is})"
    return [row.name, fmt_value(row.depthlab, row.unit), baseline,
            fmt_ratio(row.ratio, row.ratio_unit), spread, row.target, fmt_met(row.met),
            str(row.reps)]


def markdown(result: dict[str, Any], rows: list[Row]) -> str:
    from depthlab.analysis import markdown_table

    m = result["machine"]
    lines = [
        "# depthlab benchmark",
        "",
        f"- date: {result['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
        f"({m['torch_threads']} intra-op thread{'s' if m['torch_threads'] != 1 else ''}), "
        f"torchvision {m['torchvision']}, wandb {m['wandb']}, Python {m['python']}, {m['os']}"
        + (", CUDA available" if m["cuda"] else ", CPU only"),
        "- load average (1, 5, 15 min) at start: "
        + (", ".join(f"{x:.2f}" for x in m["load_average_start"]) if m["load_average_start"] else "-")
        + "; at end: "
        + (", ".join(f"{x:.2f}" for x in result["load_average_end"]) if result["load_average_end"] else "-"),
        f"- command: `{result['command']}`" + (f" (git {result['git']})" if result.get("git") else ""),
        f"- wall time: {result['seconds']:.0f} s",
        "",
        "Each ratio is measured side by side in one process, the two sides interleaved rep by rep;"
        " `ratio` is the median of the per-rep ratios, `spread` their min-max. What each row runs:"
        " scripts/README.md.",
        "",
        markdown_table(COLUMNS, [table_cells(row) for row in rows]),
    ]
    notes = [f"- {row.name}: {row.note}" for row in rows if row.note]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a pipe or a log file: room for the whole row
        console = Console(width=180)
    table = Table(title="depthlab benchmark", show_lines=False)
    for c in COLUMNS:
        table.add_column(c, overflow="fold")
    for row in rows:
        cells = table_cells(row, with_baseline_is=False)
        style = {True: "green", False: "red", None: "yellow"}[row.met]
        cells[6] = f"[{style}]{cells[6]}[/{style}]"
        table.add_row(*cells)
    console.print(table)
    for row in rows:
        if row.note:
            console.print(f"{row.name}: {row.note}", markup=False)


def command_line(argv: list[str]) -> str:
    script = Path(__file__).resolve()
    try:
        shown = str(script.relative_to(Path.cwd()))
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *argv])


# --- main -----------------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/benchmark.py",
        description="depthlab vs baselines, side by side, as ratios (see scripts/README.md).")
    p.add_argument("--quick", action="store_true",
                   help="tiny models, batches and reps: seconds, for tests (numbers meaningless)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks",
                   help="folder for latest.md and latest.json (default: results/benchmarks)")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME",
                   help=f"run only these benchmarks: {', '.join(BENCHMARKS)}")
    p.add_argument("--reps", type=int, default=None,
                   help="interleaved repetitions per comparison (default 5; --quick 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads, the same for both sides (default 1: on a shared "
                        "2-core machine one thread keeps the ratios steady; 0 = torch's default)")
    p.add_argument("--data-root", type=Path,
                   default=Path(os.environ.get("DEPTHLAB_DATA", "~/.cache/depthlab/data")).expanduser(),
                   help="where CIFAR-10's JPEG folders are (cifar10-jpeg/train/<class>/*.jpg); "
                        "default $DEPTHLAB_DATA or ~/.cache/depthlab/data")
    p.add_argument("--cache-dir", type=Path, default=Path("~/.cache/depthlab/cache").expanduser(),
                   help="depthlab's decoded-data cache (data.cache_dir; default ~/.cache/depthlab/cache)")
    p.add_argument("--profile", action="store_true",
                   help="also write <out>/profile-<model>.txt: torch.profiler's op table of the "
                        "gradient-flow steps (what the probe's share is made of)")
    # internal: one memory measurement in a fresh process
    p.add_argument("--memory-child", choices=("plain", "efficient"), help=argparse.SUPPRESS)
    p.add_argument("--memory-depth", type=int, default=190, help=argparse.SUPPRESS)
    p.add_argument("--memory-batch", type=int, default=64, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be at least 1")
    if args.threads < 0:
        p.error("--threads must be 0 (torch's default) or more")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args.memory_child:
        result = memory_child(args.memory_child == "efficient", args.memory_depth, args.memory_batch)
        print(json.dumps(result))
        return 0

    warnings.filterwarnings("ignore", module="wandb")
    base = QUICK if args.quick else FULL
    s = replace(base, reps=args.reps or base.reps)
    chosen = args.only or list(BENCHMARKS)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(argv), "git": git_commit(), "quick": args.quick,
        "machine": machine_info(threads), "settings": asdict(s), "benchmarks": chosen,
    }
    started = time.perf_counter()
    rows: list[Row] = []
    runners: dict[str, Callable[[], list[Row]]] = {
        "train": lambda: train_rows(s),
        "gradflow": lambda: gradflow_rows(s, args.out if args.profile else None),
        "data": lambda: data_rows(s, args.data_root.expanduser(), args.cache_dir.expanduser()),
        "parity": lambda: parity_rows(s),
        "memory": lambda: memory_rows(s, threads),
    }
    for name in BENCHMARKS:
        if name in chosen:
            rows += runners[name]()
    result["seconds"] = time.perf_counter() - started
    result["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["rows"] = [asdict(r) for r in rows]

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "latest.md").write_text(markdown(result, rows))
    print_table(rows)
    say(f"wrote {args.out / 'latest.md'} and {args.out / 'latest.json'} "
        f"({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
