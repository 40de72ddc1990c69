"""Training progress: a rich progress bar on a terminal, plain log lines otherwise;
inside a sweep, a sweep-level line too (run k of N, elapsed, time left).

The sweep's clock (start time and the plan's per-run estimates) travels in an
environment variable, so runs in other processes (joblib, submitit local) read
the same one; `launch` says which run of the sweep a job is (`enter_sweep_run`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from depthlab.console import console

log = logging.getLogger("depthlab")

CLOCK_ENV = "DEPTHLAB_SWEEP_CLOCK"


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class SweepClock:
    estimates: list[float]  # the plan's seconds for each run, in launch order
    jobs: int = 1  # runs at once
    total: float = 0.0  # the plan's wall time of the whole sweep (runs at once counted)
    started: float = field(default_factory=time.time)
    offset: int = 0  # runs of earlier launches (compare launches dense nets separately)

    @contextmanager
    def exported(self):
        old = os.environ.get(CLOCK_ENV)
        os.environ[CLOCK_ENV] = json.dumps(self.__dict__)
        try:
            yield self
        finally:
            if old is None:
                os.environ.pop(CLOCK_ENV, None)
            else:
                os.environ[CLOCK_ENV] = old

    def next_launch(self, runs: int) -> None:
        self.offset += runs
        os.environ[CLOCK_ENV] = json.dumps(self.__dict__)

    @classmethod
    def from_env(cls) -> "SweepClock | None":
        try:
            return cls(**json.loads(os.environ[CLOCK_ENV]))
        except (KeyError, ValueError, TypeError):
            return None

    def status(self, index: int, done: float, run_seconds: float) -> tuple[str, float]:
        """('run k of N, elapsed, ~left', fraction of the sweep done) for run `index`
        (0-based, launch order) when `done` of it has taken `run_seconds`. The plan's
        estimates are scaled by how this run is doing against its own estimate."""
        n = len(self.estimates)
        index = min(index, n - 1)
        estimate = self.estimates[index] or 1.0
        scale = run_seconds / (done * estimate) if done > 0.05 and run_seconds > 1 else 1.0
        elapsed = time.time() - self.started
        own = estimate * (1 - done) * scale
        # the plan's sweep time scaled by this run's pace: runs at once agree on it
        left = max(own, (self.total or sum(self.estimates) / max(1, self.jobs)) * scale - elapsed)
        total = sum(self.estimates) or 1.0
        fraction = (sum(self.estimates[:index]) + done * estimate) / total
        text = f"run {index + 1} of {n}, {clock(elapsed)} elapsed, ~{clock(left)} left"
        return text, fraction


_SWEEP_RUN: int | None = None  # index of the sweep run this process trains now


def enter_sweep_run(job_num: int) -> None:
    """Called by launch for each job of a multirun (Hydra's job number in its launch)."""
    global _SWEEP_RUN
    _SWEEP_RUN = job_num


class TrainProgress:
    def __init__(self, name: str, total_steps: int, start_step: int = 0) -> None:
        self.name = name
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._task = self._sweep_task = None
        self.total_steps, self.start_step = total_steps, start_step
        self.clock = SweepClock.from_env() if _SWEEP_RUN is not None else None
        self.index = (_SWEEP_RUN or 0) + (self.clock.offset if self.clock else 0)
        self._started = time.perf_counter()

    def _sweep_status(self, step: int) -> tuple[str, float]:
        todo = max(1, self.total_steps - self.start_step)
        done = (step - self.start_step) / todo
        return self.clock.status(self.index, done, time.perf_counter() - self._started)

    def _run_times(self, step: int) -> str:
        seconds = time.perf_counter() - self._started
        done = step - self.start_step
        if done <= 0:
            return clock(seconds)
        return f"{clock(seconds)} elapsed, ~{clock(seconds / done * (self.total_steps - step))} left"

    def __enter__(self) -> "TrainProgress":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TextColumn("{task.fields[times]}"),
                console=console, transient=False,
            )
            self._progress.start()
            if self.clock is not None:
                text, fraction = self._sweep_status(self.start_step)
                self._sweep_task = self._progress.add_task(
                    "sweep", total=len(self.clock.estimates),
                    completed=fraction * len(self.clock.estimates), stats="", times=text)
            self._task = self._progress.add_task(self.name, total=self.total_steps,
                                                 completed=self.start_step, stats="", times="")
        elif self.clock is not None:
            log.info("sweep: %s", self._sweep_status(self.start_step)[0])
        return self

    def step(self, step: int, epoch: int, epochs: int, loss: float, error: float,
             images_per_sec: float) -> None:
        if self._progress is not None:
            stats = (f"epoch {epoch}/{epochs}  loss {loss:.3f}  err {100 * error:.1f}%  "
                     f"{images_per_sec:,.0f} img/s")
            self._progress.update(self._task, completed=step, stats=stats,
                                  times=self._run_times(step))
            if self._sweep_task is not None:
                text, fraction = self._sweep_status(step)
                self._progress.update(self._sweep_task, times=text,
                                      completed=fraction * len(self.clock.estimates))

    def epoch(self, line: str, step: int) -> None:
        log.info("%s %s", self.name, line)
        if self.clock is not None and self._progress is None:
            log.info("sweep: %s", self._sweep_status(step)[0])

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
