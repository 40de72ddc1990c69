"""How a benchmark times: interleaved reps, windows on a device-synchronising clock, run()'s own windows."""

from __future__ import annotations

import csv
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch


def say(message: str, who: str = "benchmark") -> None:
    """A progress line on stderr (stdout holds the table)."""
    print(f"[{who}] {message}", file=sys.stderr, flush=True)


def interleaved(reps: int, sides: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Run every side once per rep, the order reversed on odd reps (A B, B A, A B, ...),
    so that drift on the machine falls on both sides alike."""
    out: dict[str, list[Any]] = {name: [] for name in sides}
    names = list(sides)
    for rep in range(reps):
        for name in (names if rep % 2 == 0 else names[::-1]):
            out[name].append(sides[name]())
    return out


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (a no-op on the CPU, where every op is synchronous)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Clock:
    """Wall time of device work: every reading waits for the device first, so a window
    between two readings holds the work launched inside it and nothing else.

        clock = Clock(device); start = clock.now(); ...; seconds = clock.now() - start
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    def now(self) -> float:
        sync(self.device)
        return time.perf_counter()

    def time(self, work: Callable[[], Any]) -> float:
        """Seconds of one call of `work`, the device synchronised at both ends."""
        start = self.now()
        work()
        return self.now() - start


def read_windows(run_dir: Path, batch: int, drop_last: bool = False) -> tuple[int, float]:
    """Images and seconds of run()'s logged training windows after the first (the first
    holds step 0's one-off costs), and before the last if `drop_last` (it holds the last
    step, which always records gradient flow); evaluation and checkpointing fall outside
    every window. Each window ends at a host sync (the logged loss), so its time is the
    device's too."""
    with open(run_dir / "metrics_steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    window = int(rows[0]["step"])
    images = seconds = 0.0
    for row in rows[1:-1] if drop_last else rows[1:]:
        n = window * batch
        images += n
        seconds += n / float(row["images_per_sec"])
    return int(images), seconds


def first_window_seconds(run_dir: Path, batch: int) -> float:
    """Seconds of run()'s first logged window (step 0's one-off costs: a compile, say)."""
    with open(run_dir / "metrics_steps.csv", newline="") as f:
        row = next(csv.DictReader(f))
    return int(row["step"]) * batch / float(row["images_per_sec"])


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
