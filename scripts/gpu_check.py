#!/usr/bin/env python
"""All of depthlab's GPU work in one command, inside one wall-time budget (issue #16).

    bash scripts/gpu_check.sh --pack "$OUT"          # on a GPU machine: about 9 minutes
    python scripts/gpu_check.py --cpu --out /tmp/gc  # CPU mode: the same steps, tiny, for CI

In order, everything under --out, before one deadline (--budget) that every phase's
subprocess timeouts are clipped to; as each phase ends, summary.md (so far) is written and,
with --pack, everything is packed again; the last summary and pack come in a `finally`:
  1. env.json: GPU, driver, torch/CUDA/cuDNN versions, host, git commit (from .gpu/git-commit,
     written by scripts/gpu_bundle.sh, where the copied tree has no .git)
  2. data: CIFAR-10's JPEG copy, found or unpacked (from .gpu/, shared/data/ or ../shared/data/,
     its sha256 checked), decoded once into depthlab's cache
  3. the CUDA tests: the graph tests (graph == eager), whose result gates the fast path, then
     the others; all before Fig. 6, never beside it
  4. the benchmark's GPU rows (scripts/gpu_benchmark.py, each row written as it is measured):
     results/benchmarks/gpu.md/.json
  5. Fig. 6: plain and residual nets of depth 20 and 56, all four at once on the one GPU,
     experiment=resnet_cifar_paper trainer=gpu; the full 64k iterations if the benchmark's
     step times say they fit the time left, else the iterations that fit (milestones
     stay at 50% and 75%, fractions of the run); SIGTERM at the deadline
  6. results/gpu-fig6/: depthlab report of the four runs, with the paper's numbers and the
     choice of length written at the top (residual-56 vs -20 judged on completed runs only);
     summary.md: what ran, how long, what came out
  --pack DIR: DIR/gpu_check.tar.gz (results/, logs/, the runs without checkpoints,
  summary.md, facts.json, env.json), DIR/summary.md and DIR/gpu_check.log: what the device
  tool brings back.

CPU mode runs the same steps on a tiny archive of random JPEGs in CIFAR-10's layout (found,
unpacked, decoded as on a GPU, into --out), the same test selections (what needs CUDA skips,
so the gate stays closed), the same sizing, and tiny CPU runs.

The phases are depthlab/bench/check.py's (Fig. 6's length and report: depthlab/bench/fig6.py);
this is their command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from depthlab.bench.check import Options, run_check

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="scripts/gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/depthlab-gpu-check"),
                   help="where everything goes (default /tmp/depthlab-gpu-check)")
    p.add_argument("--pack", type=Path, default=None,
                   help="also write DIR/gpu_check.tar.gz, DIR/summary.md, DIR/gpu_check.log")
    p.add_argument("--cpu", action="store_true",
                   help="CPU mode: a tiny made-up CIFAR-10 archive, a few steps; what needs CUDA is "
                        "skipped, saying so")
    p.add_argument("--budget", type=float, default=None,
                   help="wall seconds for the whole check (default 520 on a GPU, 240 in CPU mode)")
    p.add_argument("--no-ddp", action="store_true", help="leave out the DDP-of-one-process row")
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get(
        "DEPTHLAB_DATA", "~/.cache/depthlab/data")).expanduser())
    p.add_argument("--cache-dir", type=Path, default=Path("~/.cache/depthlab/cache").expanduser())
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.cpu:
        print("gpu_check: no CUDA device here; run with --cpu for the CPU mode", file=sys.stderr)
        return 2
    return run_check(Options(root=ROOT, out=args.out, pack=args.pack, cpu=args.cpu,
                             budget=args.budget, ddp=not args.no_ddp, data_root=args.data_root,
                             cache_dir=args.cache_dir, argv=argv))


if __name__ == "__main__":
    sys.exit(main())
