#!/usr/bin/env python
"""Time the README's main job and keep what it printed: results/quick/.

    python scripts/main_job.py                 # the README's command, as typed (trainer.precision=auto)
    python scripts/main_job.py --also-fp32     # and once more in fp32 (the reference), for the plan check

Runs `depthlab compare plain residual experiment=quick depth=8,32` in this checkout (into
runs/, a fresh sweep directory each time: --fresh), measures its wall time from the outside,
reads the plan's estimate from what it printed, and writes results/quick/timing.json (wall
time, training time = first run start to last run end, the plan's estimate and its ratio to
the training time, the machine, the date, the commit) and, through `depthlab report`, results/quick/report.md and summary.csv (with --also-fp32,
results/quick/fp32/ too).
The README's main-job paragraph quotes these files (tests/test_readme_numbers.py checks it).
Measure on an idle machine, with CIFAR-10 already on disk, in a fresh clone (what a newcomer
has): the numbers are the README's.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from depthlab import machine

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["depthlab", "compare", "plain", "residual", "experiment=quick", "depth=8,32"]
# the depthlab of this interpreter's environment (a venv need not be on PATH)
EXE = Path(sys.executable).parent / "depthlab"
FP32 = ["trainer.precision=fp32", "trainer.channels_last=false"]
UNITS = {"h": 3600, "min": 60, "s": 1}


def seconds_of(text: str) -> float:
    """'1 min 48 s' / '2 h 03 min' / '45 s' -> seconds."""
    return float(sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+) (h|min|s)\b", text)))


def run(args: list[str], sweep: str) -> dict:
    cmd = [str(EXE) if EXE.exists() else "depthlab", *args[1:], f"sweep.name={sweep}", "--fresh"]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    out = done.stdout + done.stderr
    if done.returncode != 0:
        sys.exit(f"main_job: {shlex.join(cmd)} exited {done.returncode}:\n{out[-3000:]}")
    estimate = re.search(r"estimate\s+(.+?) on this device", out)
    numerics = re.search(r"numerics\s+(.+)", out)
    est = seconds_of(estimate.group(1)) if estimate else None
    span = training_span(ROOT / "runs" / sweep)
    return {"command": shlex.join(args), "sweep_dir": f"runs/{sweep}", "wall_seconds": round(wall, 1),
            "training_seconds": span, "estimate_seconds": est,
            "estimate_over_training": round(est / span, 3) if est and span else None,
            "numerics": numerics.group(1).strip() if numerics else None}


def training_span(sweep: Path) -> float | None:
    """Seconds from the first run's start to the last run's end (the runs' summary.json):
    what the plan estimates (the runs, two at a time), without the plan and the report."""
    times = []
    for path in sweep.glob("*/summary.json"):
        s = json.loads(path.read_text())
        if s.get("started_at") and s.get("finished_at"):
            times.append((datetime.fromisoformat(s["started_at"]), datetime.fromisoformat(s["finished_at"])))
    if not times:
        return None
    return (max(b for _, b in times) - min(a for a, _ in times)).total_seconds()


def report(sweep: str, out: Path, title: str, command: list[str]) -> None:
    subprocess.run([str(EXE) if EXE.exists() else "depthlab", "report", sweep, "--out", str(out),
                    "--title", title, "--command", shlex.join(command)], cwd=ROOT, check=True,
                   capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/main_job.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--also-fp32", action="store_true", help="time it in fp32 too (the plan's check)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "quick")
    a = p.parse_args(argv)
    timings = {"as_typed": run(COMMAND, "quick")}
    if a.also_fp32:
        timings["fp32"] = run([*COMMAND, *FP32], "quick-fp32")
    a.out.mkdir(parents=True, exist_ok=True)
    report("runs/quick", a.out, "The README's main job: plain vs residual at depths 8 and 32 "
           "(experiment=quick)", COMMAND)
    if a.also_fp32:
        report("runs/quick-fp32", a.out / "fp32", "The README's main job in fp32 (the reference): "
               "plain vs residual at depths 8 and 32", [*COMMAND, *FP32])
    record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine.line(), "git": machine.git_commit(ROOT),
              "measured_by": "python scripts/main_job.py" + (" --also-fp32" if a.also_fp32 else ""),
              "note": "wall time of the whole command from outside (plan, training, report, W&B "
                      "offline), CIFAR-10 already on disk and decoded into the cache",
              **timings}
    path = a.out / "timing.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    for name, t in timings.items():
        print(f"{name}: {t['wall_seconds']:.0f} s wall, {t['training_seconds']:.0f} s of training; "
              f"the plan said {t['estimate_seconds']:.0f} s ({t['estimate_over_training']:.2f}x); "
              f"{t['numerics']}")
    print(f"wrote {path} and {a.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
