"""One rich console for the whole program, so progress bars, log lines and
tables share a screen instead of fighting over it."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)  # progress and logs on stderr; tables on stdout via `out`
out = Console()


class ConsoleHandler(RichHandler):
    """The log handler Hydra's job logging uses (conf/hydra/job_logging/depthlab.yaml)."""

    def __init__(self, level: int = logging.NOTSET, **kwargs) -> None:
        super().__init__(level=level, console=console, show_path=False, markup=False,
                         rich_tracebacks=False, **kwargs)
