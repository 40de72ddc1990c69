#!/usr/bin/env python
"""depthlab against the baselines a researcher would otherwise use, side by side.

    python scripts/benchmark.py                      # the full table (about 6 minutes on 2 cores)
    python scripts/benchmark.py --quick              # tiny settings: seconds (what the tests run)
    python scripts/benchmark.py --only train gradflow --reps 7
    python scripts/benchmark.py --out /tmp/bench     # default: results/benchmarks/

Every figure is a ratio measured in this one process (the memory row: in two
fresh subprocesses), the two sides interleaved rep by rep (A B, B A, A B, ...),
so that whatever else the machine is doing hits both sides alike; a row reports
the median of the per-rep ratios and their min-max spread. What each row runs,
and against what, is in scripts/README.md; the table goes to
<out>/latest.md and <out>/latest.json with the date, the machine and the command.
The measuring is depthlab.bench's (depthlab/bench/cpu.py); this is its command line.

Benchmarks (--only names):
  train     depthlab.train.run (gradient flow every step) vs a hand-written loop
  gradflow  GradFlowProbe (arm, hooks, record, gradflow.csv) vs wandb.watch(log="gradients")
  data      depthlab's device-resident CIFAR-10 loader vs torchvision DataLoader + ImageFolder
  parity    forward+backward of depthlab residual-50 / dense-121 vs torchvision's
  memory    peak memory of dense-BC-190 with and without memory_efficient
  speed     bf16 + channels_last vs the hand loop and vs fp32, torch.compile vs eager,
            GFLOP/s against the processor's peak (residual-20/56, dense-BC-100)
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from depthlab import machine
from depthlab.bench import cpu, results, rows, timing

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/benchmark.py",
        description="depthlab vs baselines, side by side, as ratios (see scripts/README.md).")
    p.add_argument("--quick", action="store_true",
                   help="tiny models, batches and reps: seconds, for tests (numbers meaningless)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks",
                   help="folder for latest.md and latest.json (default: results/benchmarks)")
    p.add_argument("--only", nargs="+", choices=cpu.BENCHMARKS, metavar="NAME",
                   help=f"run only these benchmarks: {', '.join(cpu.BENCHMARKS)}")
    p.add_argument("--reps", type=int, default=None,
                   help="interleaved repetitions per comparison (default 5, the speed rows 3; "
                        "--quick 2)")
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
    warnings.filterwarnings("ignore", module="wandb")
    base = cpu.QUICK if args.quick else cpu.FULL
    s = replace(base, reps=args.reps, speed_reps=None) if args.reps else base
    result, got = cpu.run(
        s, args.only or list(cpu.BENCHMARKS), threads=torch.get_num_threads(),
        data_root=args.data_root.expanduser(), cache_dir=args.cache_dir.expanduser(),
        profile_dir=args.out if args.profile else None,
        command=results.command_line(Path(__file__), argv), git=machine.git_commit(),
        quick=args.quick)
    json_path, md_path = results.write(args.out, "latest", result, results.cpu_page(result, got))
    rows.print_table(got)
    timing.say(f"wrote {md_path} and {json_path} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
