#!/usr/bin/env python
"""The benchmark's GPU rows: depthlab on one CUDA device, side by side with a hand-written
loop at the same precision and memory format, as ratios (the house rule: no absolute
speed targets, every figure against a baseline measured in the same run).

    python scripts/gpu_benchmark.py --out results/benchmarks     # on a GPU: gpu.md + gpu.json
    python scripts/gpu_benchmark.py --cpu --out /tmp/b           # tiny, on the CPU: the rows that
                                                                 # need CUDA say so and are skipped

Rows (scripts/README.md has the details):
  train     depthlab.train.run, eager (the reference), vs a hand-written loop: residual-20/56
            (cifar, batch 128) and residual-50 (imagenet layout, 224 px, batch 64); bf16 autocast
            and channels_last on both sides (trainer=gpu)
  graphs    run() with trainer.cuda_graphs=true vs the same run eager: the fast path's gain
  gradflow  run() recording gradient flow at every step vs recording only at step 0 and
            the last: what the probe costs at gradflow.every=1, eager and graphed
  data      depthlab's device-resident CIFAR-10 loader on the GPU vs torchvision's
            DataLoader + ImageFolder (all cores) copying batches to the GPU
  together  the four Fig. 6 nets (plain/residual-20/56) trained at once in four processes on
            the one device, eager and graphed: ms per iteration of the four, against the sum
            of their step times alone (what gpu_check.py sizes Fig. 6 from)
  ddp       the hand loop wrapped in DistributedDataParallel with a process group of one vs
            the same loop bare: what DDP adds to a step (issue #15), --ddp only

gpu.json also holds, per net, `step_ms` (eager and graphed, read from the train and graphs
rows) and `fast_path` (graphs where they were faster), which scripts/gpu_check.py reads
to size the Fig. 6 runs and to choose trainer.cuda_graphs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as B  # noqa: E402  (the CPU benchmark: rows, ratios, formatting)

ROOT = B.ROOT


@dataclass(frozen=True)
class GpuSpec:
    label: str
    depth: int
    layout: str
    image_size: int
    batch: int
    warm: int  # untimed steps first; also run()'s log interval (B.read_windows drops the first)
    steps: int  # timed steps, a multiple of warm


@dataclass(frozen=True)
class GpuSettings:
    device: str
    precision: str  # both sides
    channels_last: bool  # both sides
    reps: int
    nets: tuple[GpuSpec, ...]
    data_batch: int
    data_batches: int


GPU = GpuSettings(
    device="cuda", precision="bf16", channels_last=True, reps=2,
    nets=(
        # windows of 100+ steps: a few hundred ms a side, well above launch jitter
        GpuSpec("residual-20 (cifar)", 20, "cifar", 32, batch=128, warm=20, steps=100),
        GpuSpec("residual-56 (cifar)", 56, "cifar", 32, batch=128, warm=20, steps=80),
        GpuSpec("residual-50 (imagenet, 224 px)", 50, "imagenet", 224, batch=64, warm=5, steps=20),
    ),
    data_batch=128, data_batches=50,
)

CPU = GpuSettings(
    device="cpu", precision="fp32", channels_last=False, reps=1,
    nets=(GpuSpec("residual-8 (cifar)", 8, "cifar", 32, batch=8, warm=1, steps=2),),
    data_batch=8, data_batches=3,
)


def run_overrides(s: GpuSettings, spec: GpuSpec, *, graphs: bool, every: int) -> list[str]:
    total = spec.warm + spec.steps
    return [
        "arch=residual", f"depth={spec.depth}", f"arch.layout={spec.layout}",
        "data=synthetic", f"data.image_size={spec.image_size}",
        f"data.train_size={total * spec.batch}", f"data.test_size={spec.batch}",
        "data.augment=false", "optim=sgd", "logger=none",
        f"trainer.device={s.device}", f"trainer.precision={s.precision}",
        f"trainer.channels_last={str(s.channels_last).lower()}",
        f"trainer.cuda_graphs={str(graphs).lower()}",
        f"trainer.batch_size={spec.batch}", f"trainer.eval_batch_size={spec.batch}",
        f"trainer.iterations={total}", f"trainer.log_every={spec.warm}",
        f"gradflow.every={every}", "gradflow.activations=true",
    ]


EVERY_DEFAULT = 10  # conf/config.yaml's gradflow.every
NEVER = 10**9  # records only step 0 and the last


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def depthlab_side(cfg: dict[str, Any], spec: GpuSpec) -> Callable[[], float]:
    from depthlab import train

    def once() -> float:
        run_dir = Path(tempfile.mkdtemp(prefix="depthlab-gpubench-"))
        try:
            summary = train.run(cfg, run_dir, group="benchmark")
            if summary["status"] != "completed":
                raise RuntimeError(f"benchmark run ended {summary['status']}")
            images, seconds = B.read_windows(run_dir, spec.batch)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            gc.collect()  # the run's model, probe hooks and captured graph (its memory pool)
        return images / seconds
    return once


def hand_side(s: GpuSettings, cfg: dict[str, Any], spec: GpuSpec,
              wrap: Callable[[nn.Module], nn.Module] = lambda model: model,
              ) -> Callable[[], float]:
    """The tutorial loop at the same precision (autocast) and memory format, over the
    batches run() trains on, already on the device; `wrap` puts the fresh model in what
    trains it (DistributedDataParallel for ddp_row)."""
    batches, data = B.synthetic_batches(cfg)
    dev = torch.device(s.device)
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    batches = [(x.to(dev).contiguous(memory_format=fmt), y.to(dev)) for x, y in batches]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(s.precision)

    def once() -> float:
        model = B.fresh_model(cfg, data).to(dev, memory_format=fmt)
        opt = B.hand_optimizer(model, cfg["optim"])
        net = wrap(model)
        start = 0.0
        for i, (x, y) in enumerate(batches):
            if i == spec.warm:
                sync(s.device)
                start = time.perf_counter()
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                out = net(x)
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(s.device)
        return spec.steps * spec.batch / (time.perf_counter() - start)
    return once


def ratio_row(key: str, name: str, got: dict[str, list[float]], a: str, b: str, *,
              target: tuple[str, float], baseline_is: str, detail: dict[str, Any]) -> B.Row:
    ratios = [x / y for x, y in zip(got[a], got[b])]
    return B.make_row(key, name, depthlab=got[a], baseline=got[b], ratios=ratios, unit="img/s",
                      target=target, baseline_is=baseline_is, detail=detail)


def net_rows(s: GpuSettings, spec: GpuSpec, cuda: bool) -> tuple[list[B.Row], dict[str, Any]]:
    """train, graphs and gradflow rows of one net, all sides interleaved in one loop."""
    key = f"residual-{spec.depth}-{spec.layout}"
    small = spec.layout == "cifar"  # the launch-bound nets: the probe's cost matters most there
    variants = {"eager": (False, EVERY_DEFAULT)}
    if small:
        variants.update(eager_every1=(False, 1), eager_never=(False, NEVER))
    if cuda:
        variants.update(graphs=(True, EVERY_DEFAULT))
        if small:
            variants.update(graphs_every1=(True, 1), graphs_never=(True, NEVER))
    cfgs = {v: B.compose(run_overrides(s, spec, graphs=g, every=e)) for v, (g, e) in variants.items()}
    sides = {v: depthlab_side(c, spec) for v, c in cfgs.items()}
    sides["hand"] = hand_side(s, cfgs["eager"], spec)
    B.say(f"{spec.label}: batch {spec.batch}, {spec.warm} + {spec.steps} steps, "
          f"{len(sides)} sides x {s.reps} reps ({s.precision}, "
          f"{'channels_last' if s.channels_last else 'NCHW'}, {s.device})")
    failed: dict[str, str] = {}
    with B.quiet_progress():
        for name in ("eager", "graphs", "hand"):  # warm-up: cuDNN, allocator, a first capture;
            try:                                   # a path that fails is left out, its rows say why
                if name in sides:
                    sides[name]()
            except Exception as err:  # noqa: BLE001  (any failure of that path, reported)
                why = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
                B.say(f"  {name} FAILED: {why}")
                for side in [v for v in sides if v.split("_")[0] == name]:
                    failed[side] = why
                    del sides[side]
        got = B.interleaved(s.reps, sides)
    detail = {"batch": spec.batch, "image_size": spec.image_size, "warm_steps": spec.warm,
              "timed_steps": spec.steps, "precision": s.precision,
              "channels_last": s.channels_last, "img_s": got, "failed": failed,
              "overrides": run_overrides(s, spec, graphs=False, every=EVERY_DEFAULT)}
    label = f"{spec.label}, batch {spec.batch}, {s.precision}" + (", NHWC" if s.channels_last else "")

    def row(key: str, name: str, a: str, b: str, target: tuple[str, float], baseline_is: str) -> B.Row:
        gone = [side for side in (a, b) if side in failed]
        if gone:
            return B.skipped_row(key, name, f"{gone[0]} failed: {failed[gone[0]]}",
                                 f"{target[0]} {target[1]:g}x")
        return ratio_row(key, name, got, a, b, target=target, baseline_is=baseline_is, detail=detail)

    rows = [row(f"train/{key}", f"training step: {label}", "eager", "hand", (">=", 0.97),
                "hand-written loop, same precision and layout")]
    if cuda:
        rows.append(row(f"graphs/{key}", f"CUDA graph vs eager: {label}", "graphs", "eager",
                        (">=", 1.0), "depthlab eager (trainer.cuda_graphs=false)"))
    else:
        rows.append(B.skipped_row(f"graphs/{key}", f"CUDA graph vs eager: {label}",
                                  "needs a CUDA device (CPU mode)", ">= 1x"))
    for path in ("eager", "graphs"):
        if f"{path}_every1" in variants:
            rows.append(row(f"gradflow/{path}/{key}", f"gradient flow at every step, {path}: {label}",
                            f"{path}_every1", f"{path}_never", (">=", 0.9),
                            f"the same run recording only steps 0 and last ({path})"))
    med = {v: statistics.median(x) for v, x in got.items()}
    ms = {v: 1000 * spec.batch / med[v] if v in med else None for v in ("eager", "graphs", "hand")}
    step_ms = ms
    faster = ms["graphs"] is not None and ms["eager"] is not None and ms["graphs"] < ms["eager"]
    return rows, {"step_ms": step_ms, "fast_path": "graphs" if faster else "eager",
                  "batch": spec.batch}


def data_row(s: GpuSettings, data_root: Path, cache_dir: Path) -> B.Row:
    """depthlab's loader on the device against torchvision's, whose batches are copied there."""
    key, name = "data/cifar10-device", (f"data feeding on {s.device}: CIFAR-10 train, batch "
                                        f"{s.data_batch}, crop + flip")
    folder = B.jpeg_root(data_root)
    if folder is None:
        why = f"no CIFAR-10 JPEG folders under {data_root} (scripts/unpack_cifar.sh)"
        B.say(f"data: {why}")
        return B.skipped_row(key, name, why, ">= 5x")
    import torchvision
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    from depthlab.data import build_data
    from depthlab.data.cifar10 import MEAN, STD

    dev = torch.device(s.device)
    workers = B.cpu_count()
    data = build_data({"name": "cifar10", "root": str(folder), "download": False,
                       "cache_dir": str(cache_dir)}, batch_size=s.data_batch,
                      eval_batch_size=s.data_batch, device=dev, seed=0)
    dataset = torchvision.datasets.ImageFolder(str(folder / "train"), transform=T.Compose([
        T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]))
    n, epoch = s.data_batches, {"e": 0}

    def timed(batches) -> float:
        next(batches)
        sync(s.device)
        start = time.perf_counter()
        for _ in range(n):
            x, _ = next(batches)
        sync(s.device)
        return n * len(x) / (time.perf_counter() - start)

    def ours() -> float:
        epoch["e"] += 1
        data.train.set_epoch(epoch["e"])
        return timed(iter(data.train))

    def theirs() -> float:
        loader = DataLoader(dataset, batch_size=s.data_batch, shuffle=True, num_workers=workers,
                            drop_last=True, pin_memory=dev.type == "cuda")
        it = iter(loader)

        def moved():
            for x, y in it:
                yield x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        try:
            return timed(moved())
        finally:
            del it

    B.say(f"data: {folder}, {n} batches of {s.data_batch} x {s.reps} reps on {dev}; "
          f"torchvision with {workers} workers")
    got = B.interleaved(s.reps, {"depthlab": ours, "torchvision": theirs})
    return ratio_row(key, name, got, "depthlab", "torchvision", target=(">=", 5.0),
                     baseline_is=f"torchvision DataLoader + ImageFolder, {workers} workers, "
                                 f"copied to {dev}", detail={"folder": str(folder), "workers": workers})


def ddp_row(s: GpuSettings) -> B.Row:
    """The hand loop wrapped in DistributedDataParallel with a process group of one (nccl on
    a GPU, gloo on the CPU) vs the same loop bare: what DDP itself adds to a step when one
    device trains alone (issue #15). depthlab does not wrap a world of one (its runs under
    torchrun with one process train exactly as without it), so this is DDP's price for
    trainer.devices=N per step, measured where it can be without N devices."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    spec = s.nets[0]
    cfg = B.compose(run_overrides(s, spec, graphs=False, every=EVERY_DEFAULT))
    dev = torch.device(s.device)
    store = Path(tempfile.mkdtemp(prefix="depthlab-ddp-")) / "store"
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method=f"file://{store}",
                            rank=0, world_size=1)
    name = f"DDP of one process vs none: {spec.label}, batch {spec.batch}, hand loop"

    def ddp(model: nn.Module) -> nn.Module:
        return DistributedDataParallel(model, device_ids=[dev.index or 0] if dev.type == "cuda"
                                       else None)

    B.say(f"ddp: {name}, {spec.warm} + {spec.steps} steps x {s.reps} reps")
    try:
        hand_side(s, cfg, spec, wrap=ddp)()  # warm-up: DDP's buckets, NCCL's first collective
        got = B.interleaved(s.reps, {"ddp": hand_side(s, cfg, spec, wrap=ddp),
                                     "plain": hand_side(s, cfg, spec)})
    finally:
        dist.destroy_process_group()
    return ratio_row(f"ddp/residual-{spec.depth}-{spec.layout}", name, got, "ddp", "plain",
                     target=(">=", 0.95), baseline_is="the same loop without DDP",
                     detail={"backend": "nccl" if dev.type == "cuda" else "gloo", "world_size": 1})


# --- four nets at once: how Fig. 6's runs share one device ----------------------------------

FIG6_NETS = (("plain", 20), ("residual", 20), ("plain", 56), ("residual", 56))


def _together_worker(arch: str, depth: int, s: GpuSettings, batch: int, graphs: bool,
                     seconds: float, ready, go, results) -> None:
    """One of the four processes: depthlab's own training step (eager or graphed, gradient
    flow recorded every 100th step as in the Fig. 6 runs) on random batches, for `seconds`
    once all four are ready."""
    import torch

    from depthlab.engine.graphs import GraphedStep
    from depthlab.engine.setup import make_precision
    from depthlab.engine.step import train_step
    from depthlab.gradflow import GradFlowProbe
    from depthlab.models import build_model, describe

    try:
        dev = torch.device(s.device)
        if dev.type == "cpu":
            torch.set_num_threads(1)
        fmt = torch.channels_last if s.channels_last else torch.contiguous_format
        torch.manual_seed(0)
        model = build_model(arch, depth, num_classes=10, layout="cifar").to(dev, memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        desc = describe(model, flops=False)
        probe = GradFlowProbe(model, desc["layers"], desc["blocks"])
        precision = make_precision(s.precision, dev)
        net = GraphedStep(model, precision, probe) if graphs else model
        xs = [torch.randn(batch, 3, 32, 32, device=dev).contiguous(memory_format=fmt) for _ in range(4)]
        ys = [torch.randint(10, (batch,), device=dev) for _ in range(4)]

        def step(i: int) -> None:
            train_step(net, opt, xs[i % 4], ys[i % 4], precision, probe if i % 100 == 0 else None, i)

        for i in range(10):  # warm-up (and the capture)
            step(i)
        sync(s.device)
        ready.put(None)
        go.wait()
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            step(n)
            n += 1
            if n % 20 == 0:  # keep the queue of launched work short, as run()'s log syncs do
                sync(s.device)
        sync(s.device)
        results.put((f"{arch}-{depth}", n / (time.perf_counter() - start), None))
    except Exception as err:  # noqa: BLE001  (reported by the parent)
        ready.put(None)
        results.put((f"{arch}-{depth}", None, f"{type(err).__name__}: {err}"))


def together(s: GpuSettings, graphs: bool, seconds: float) -> dict[str, Any]:
    """Steps per second of each of the four Fig. 6 nets trained at once in four processes on
    the one device: what one iteration of the four costs when they share it."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # CUDA in the children
    ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    batch = 128 if s.device == "cuda" else 8
    procs = [ctx.Process(target=_together_worker, args=(a, d, s, batch, graphs, seconds, ready, go, results))
             for a, d in FIG6_NETS]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=180)
        go.set()
        got = [results.get(timeout=seconds + 120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    errors = {name: err for name, _, err in got if err}
    if errors:
        raise RuntimeError("; ".join(f"{k}: {v}" for k, v in errors.items())[:500])
    rates = {name: rate for name, rate, _ in got}
    return {"steps_per_s": rates, "batch": batch, "seconds": seconds,
            "iteration_ms": 1000 / min(rates.values())}  # the slowest net sets the pace


def together_rows(s: GpuSettings, cuda: bool, nets: dict[str, Any]) -> tuple[list[B.Row], dict[str, Any]]:
    """Per path (eager, graphs): the four nets at once, against the same nets one at a time
    (the sum of their step times alone, from the train rows: what a device that runs one
    process's work at a time would give)."""
    seconds = 4.0 if cuda else 1.0
    rows, out = [], {}
    for path in ("eager", "graphs") if cuda else ("eager",):
        name = f"four Fig. 6 nets at once, {path}: plain/residual-20/56 (cifar), {s.precision}"
        alone = [nets.get(f"residual-{d}-cifar", {}).get("step_ms", {}).get(path) for d in (20, 56)]
        if cuda and None in alone:
            rows.append(B.skipped_row(f"together/{path}", name, f"no {path} step times alone", "-"))
            continue
        B.say(f"together: {name}, 4 processes, {seconds:g} s")
        try:
            got = together(s, graphs=path == "graphs", seconds=seconds)
        except Exception as err:  # noqa: BLE001
            rows.append(B.skipped_row(f"together/{path}", name,
                                      f"failed: {' '.join(str(err).split())[:300]}", "-"))
            continue
        out[path] = got
        if None in alone:  # CPU mode: residual-8 only was timed alone
            continue
        summed = 2 * sum(alone)  # plain nets cost what residual ones of the same depth do
        rows.append(B.make_row(f"together/{path}", name, depthlab=[got["iteration_ms"]],
                               baseline=[summed], ratios=[got["iteration_ms"] / summed],
                               unit="ms/step", target=("<=", 1.0),
                               baseline_is="sum of the four step times alone",
                               detail=got))
        B.say(f"  {got['iteration_ms']:.2f} ms per iteration of the four vs {summed:.2f} ms summed")
    return rows, out


def gpu_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cuda_available": torch.cuda.is_available(),
                            "torch": torch.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count)
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def ms_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(result: dict[str, Any], rows: list[B.Row]) -> str:
    from depthlab.analysis import markdown_table

    m, g = result["machine"], result["gpu"]
    device = (f"{g['gpu']} ({g['gpu_memory_gib']} GiB, compute capability {g['capability']}, "
              f"driver {g.get('driver') or '?'}), CUDA {g['cuda']}, cuDNN {g['cudnn']}"
              if g.get("gpu") else "no GPU: CPU mode, tiny settings, the numbers mean nothing")
    lines = [
        "# depthlab benchmark: the GPU rows", "",
        f"- date: {result['date']}",
        f"- device: {device}",
        f"- host: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, torchvision {m['torchvision']}, "
        f"Python {m['python']}, {m['os']}",
        f"- command: `{result['command']}`" + (f" (git {result['git']})" if result.get("git") else ""),
        f"- wall time: {result['seconds']:.0f} s", "",
        "Each ratio is measured side by side in one process, the "
        "sides interleaved rep by rep; `ratio` is the median of the per-rep ratios, `spread` their "
        "min-max. What each row runs: scripts/README.md.", "",
        markdown_table(B.COLUMNS, [B.table_cells(r) for r in rows]), "",
        "Step times (ms, medians) and the faster path per net, as scripts/gpu_check.py reads them:", "",
        markdown_table(["net", "batch", "hand loop", "depthlab eager", "depthlab CUDA graph", "faster"],
                       [[k, str(v["batch"]), *(ms_cell(v["step_ms"][p]) for p in ("hand", "eager", "graphs")),
                         v["fast_path"]] for k, v in result["nets"].items()]),
    ]
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="scripts/gpu_benchmark.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="tiny settings on the CPU (CI): CUDA rows skipped")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks",
                   help="folder for gpu.md and gpu.json (default: results/benchmarks)")
    p.add_argument("--only", nargs="+", choices=("nets", "together", "data", "ddp"),
                   default=["nets", "together", "data"],
                   help="nets (train, graphs, gradflow rows), together (the four Fig. 6 nets at once), "
                        "data, ddp (default: nets together data)")
    p.add_argument("--ddp", action="store_true", help="also the DDP-of-one-process row")
    p.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 2; --cpu 1)")
    p.add_argument("--data-root", type=Path,
                   default=Path(os.environ.get("DEPTHLAB_DATA", "~/.cache/depthlab/data")).expanduser())
    p.add_argument("--cache-dir", type=Path, default=Path("~/.cache/depthlab/cache").expanduser())
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        p.error("no CUDA device: pass --cpu for the tiny CPU mode")
    s = CPU if args.cpu else GPU
    s = replace(s, reps=args.reps or s.reps)
    chosen = set(args.only) | ({"ddp"} if args.ddp else set())
    if args.cpu:  # one thread: on a small shared CPU, OpenMP threads spin against other jobs
        torch.set_num_threads(1)
    if cuda:
        torch.backends.cudnn.benchmark = False  # what depthlab runs with: heuristics, no autotuning
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": B.command_line(argv).replace("benchmark.py", "gpu_benchmark.py"),
        "git": B.git_commit(), "cpu_mode": args.cpu, "machine": B.machine_info(torch.get_num_threads()),
        "gpu": gpu_info(), "settings": asdict(s), "nets": {},
    }
    started = time.perf_counter()
    rows: list[B.Row] = []
    def failed_row(key: str, name: str, err: Exception) -> B.Row:
        why = f"failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}"
        B.say(f"{name}: {why}")
        return B.skipped_row(key, name, why, "-")

    if "nets" in chosen:
        for spec in s.nets:
            key = f"residual-{spec.depth}-{spec.layout}"
            try:
                got, net = net_rows(s, spec, cuda)
            except Exception as err:  # noqa: BLE001  (one net's failure must not cost the others)
                rows.append(failed_row(f"train/{key}", f"training step: {spec.label}", err))
                continue
            rows += got
            result["nets"][key] = net
            torch.cuda.empty_cache() if cuda else None
    if "data" in chosen:
        try:
            rows.append(data_row(s, args.data_root.expanduser(), args.cache_dir.expanduser()))
        except Exception as err:  # noqa: BLE001
            rows.append(failed_row("data/cifar10-device", "data feeding", err))
    if "together" in chosen:
        got, result["together"] = together_rows(s, cuda, result["nets"])
        rows += got
    if "ddp" in chosen:
        try:
            rows.append(ddp_row(s))
        except Exception as err:  # noqa: BLE001
            rows.append(failed_row("ddp/residual-20-cifar", "DDP of one process", err))
    result["seconds"] = time.perf_counter() - started
    result["rows"] = [asdict(r) for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "gpu.md").write_text(markdown(result, rows))
    B.print_table(rows)
    B.say(f"wrote {args.out / 'gpu.md'} and {args.out / 'gpu.json'} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
