"""What every command shares: one-line user errors and the shared consoles."""

from __future__ import annotations

from typing import NoReturn

import typer

from depthlab.console import console, out  # noqa: F401 (re-exported for commands)

USAGE_ERROR = 2  # exit code for bad input (as click uses for usage errors)


class UserError(Exception):
    """A mistake the user can fix; str() is one line saying what and what is valid."""


def step_progress(command: str):
    """The progress bar of a command that works through numbered steps (probe, lesion):
    label, bar, done/total, elapsed; gone when it ends, on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"[bold]{command}[/] {{task.description}}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """Print `error: message` as one line on stderr and exit non-zero, no traceback."""
    message = " ".join(str(message).split())  # one line, whatever the source said
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
