#!/usr/bin/env python
"""The benchmark's GPU rows: depthlab on one CUDA device, side by side with a hand-written
loop at the same precision and memory format, as ratios (the house rule: no absolute
speed targets, every figure against a baseline measured in the same run).

    python scripts/gpu_benchmark.py --out results/benchmarks     # on a GPU: gpu.md + gpu.json
    python scripts/gpu_benchmark.py --cpu --out /tmp/b           # tiny, on the CPU: the rows that
                                                                 # need CUDA say so and are skipped

Rows (scripts/README.md has the details; the measuring is depthlab/bench/gpu.py's):
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

gpu.json and gpu.md are rewritten after every row (`"complete": false` until the last), so a
run cut by gpu_check.py's timeout still leaves what it measured. gpu.json also holds, per net, `step_ms` (eager and graphed, read from the train and graphs
rows) and `fast_path` (graphs where they were faster), which scripts/gpu_check.py reads
to size the Fig. 6 runs and to choose trainer.cuda_graphs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from depthlab.bench import gpu, results, rows
from depthlab.bench.gpu import GpuSettings
from depthlab.bench.timing import say, sync

ROOT = Path(__file__).resolve().parent.parent


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
    s = gpu.CPU if args.cpu else gpu.GPU
    s = replace(s, reps=args.reps or s.reps)
    if args.cpu:  # one thread: on a small shared CPU, OpenMP threads spin against other jobs
        torch.set_num_threads(1)

    def written(result: dict, got: list) -> None:  # each row as it is measured: a cut run keeps them
        results.write(args.out, "gpu", result, results.gpu_page(result, got))

    result, got = gpu.run(
        s, set(args.only) | ({"ddp"} if args.ddp else set()), cuda=cuda, worker=_together_worker,
        data_root=args.data_root.expanduser(), cache_dir=args.cache_dir.expanduser(),
        command=results.command_line(Path(__file__), argv), git=results.git_commit(ROOT),
        cpu_mode=args.cpu, written=written)
    json_path, md_path = args.out / "gpu.json", args.out / "gpu.md"
    rows.print_table(got)
    say(f"wrote {md_path} and {json_path} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
