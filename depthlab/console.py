"""One rich console for the whole program, so progress bars, log lines and
tables share a screen instead of fighting over it."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from depthlab.rundir import TRAIN_LOG

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


def configure_worker_logging(run_dir: Path, main: bool) -> None:
    """Logging in a worker process of a run on several processes (started by
    PyTorch's elastic launcher, so without Hydra's job logging): rank 0 logs as
    conf/hydra/job_logging/depthlab.yaml says (console + <run dir>/train.log);
    the other ranks only warn (engine.distributed.quiet_other_ranks)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    for name in ("wandb", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(run_dir / TRAIN_LOG)
        file.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
        root.addHandler(file)
