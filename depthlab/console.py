"""One rich console for the whole program, so progress bars, log lines and
tables share a screen instead of fighting over it."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)  # progress and logs on stderr; tables on stdout via `out`
out = Console()


class ConsoleHandler(RichHandler):
    """The log handler Hydra's job logging uses (conf/hydra/job_logging/depthlab.yaml):
    rich columns on a terminal, one unwrapped line per record otherwise (logs, SLURM)."""

    def __init__(self, level: int = logging.NOTSET, **kwargs) -> None:
        super().__init__(level=level, console=console, show_path=False, markup=False,
                         rich_tracebacks=False, **kwargs)

    def emit(self, record: logging.LogRecord) -> None:
        if console.is_terminal:
            return super().emit(record)
        try:
            level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
            console.print(level + self.format(record), soft_wrap=True, markup=False,
                          highlight=False)
        except Exception:
            self.handleError(record)
