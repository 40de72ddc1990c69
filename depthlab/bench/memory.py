"""The dense-memory row: peak resident memory of one dense-BC step with and without memory_efficient, each in a fresh process."""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

from depthlab.bench.rows import Row, make_row
from depthlab.bench.timing import say


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


def memory_rows(depth: int, batch: int, threads: int, parallel: bool) -> list[Row]:
    """The row: memory_efficient's peak growth over the plain net's, one subprocess each
    (`python -m depthlab.bench.memory`), both at once when `parallel` (peak RSS is per process)."""
    say(f"memory: dense-BC-{depth} (cifar), batch {batch}, one forward+backward per fresh "
        f"subprocess ({'both at once' if parallel else 'one after the other'})")

    def start(efficient: bool) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "depthlab.bench.memory",
               "efficient" if efficient else "plain", "--depth", str(depth),
               "--batch", str(batch), "--threads", str(threads)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(proc: subprocess.Popen) -> dict[str, Any]:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"memory subprocess failed ({proc.returncode}): {err.strip()[-500:]}")
        return json.loads(out.strip().splitlines()[-1])

    if parallel:
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
                "parallel": parallel},
    )
    say(f"  memory_efficient {eff['peak_growth_mb']:,.0f} MB vs {plain['peak_growth_mb']:,.0f} MB"
        f" = {ratio:.2f}x")
    return [row]


def main(argv: list[str] | None = None) -> int:
    """The child: one measurement, printed as one JSON line."""
    p = argparse.ArgumentParser(prog="python -m depthlab.bench.memory",
                                description="one memory measurement of memory_rows, in this process")
    p.add_argument("variant", choices=("plain", "efficient"))
    p.add_argument("--depth", type=int, default=190)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(memory_child(args.variant == "efficient", args.depth, args.batch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
