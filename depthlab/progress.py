"""Training progress: a rich progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from depthlab.console import console

log = logging.getLogger("depthlab")


class TrainProgress:
    def __init__(self, name: str, total_steps: int, start_step: int = 0) -> None:
        self.name = name
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._task = None
        self.total_steps, self.start_step = total_steps, start_step

    def __enter__(self) -> "TrainProgress":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.name, total=self.total_steps,
                                                 completed=self.start_step, stats="")
        return self

    def step(self, step: int, epoch: int, epochs: int, loss: float, error: float,
             images_per_sec: float) -> None:
        if self._progress is not None:
            stats = (f"epoch {epoch}/{epochs}  loss {loss:.3f}  err {100 * error:.1f}%  "
                     f"{images_per_sec:,.0f} img/s")
            self._progress.update(self._task, completed=step, stats=stats)

    def epoch(self, line: str) -> None:
        log.info("%s %s", self.name, line)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
