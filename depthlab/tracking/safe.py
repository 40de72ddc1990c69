"""A sink that never stops a run: its first exception becomes one warning.

    sink = SafeSink(WandbSink(cfg), "W&B")

The training loop wraps every optional sink (W&B) in `SafeSink`. The first
exception from any of the five calls (no network, a full disk, a bug in a
tracking library) is logged as ONE warning line through the "depthlab" logger,
naming the sink, the call and the error; from then on the sink is a no-op for
the rest of this run. If the wrapped sink has an `abort()` method it is called
once, quietly, so that it can close what it opened. The local run directory
is written by its own sink and is unaffected.

KeyboardInterrupt and SystemExit are not caught: Ctrl-C still stops a run.
"""

from __future__ import annotations

import logging
from typing import Any

from . import RunInfo

log = logging.getLogger("depthlab")

MAX_MESSAGE = 300  # characters of the error kept in the warning line


def one_line(err: BaseException, limit: int = MAX_MESSAGE) -> str:
    """`TypeName: message` on one line, cut to `limit` characters."""
    text = " ".join(str(err).split())
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SafeSink:
    """Forwards the sink calls to `sink` until one raises; then warns once and goes quiet."""

    def __init__(self, sink: Any, name: str | None = None) -> None:
        self.sink = sink
        self.name = name or type(sink).__name__
        self.error: str | None = None  # the error that turned this sink off, one line

    @property
    def disabled(self) -> bool:
        return self.error is not None

    def start(self, run: RunInfo) -> None:
        self._call("start", run)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._call("log_step", step, metrics)

    def log_gradflow(self, epoch: int, record: Any) -> None:
        self._call("log_gradflow", epoch, record)

    def log_epoch(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self._call("log_epoch", epoch, step, metrics)

    def finish(self, summary: dict[str, Any]) -> None:
        self._call("finish", summary)

    def _call(self, method: str, *args: Any) -> None:
        if self.error is not None:
            return
        try:
            getattr(self.sink, method)(*args)
        except Exception as err:  # noqa: BLE001 - the point of this class
            self.error = one_line(err)
            log.warning("%s logging off for the rest of this run: %s() failed: %s "
                        "(local run files are unaffected)", self.name, method, self.error)
            log.debug("%s %s() traceback", self.name, method, exc_info=True)
            self._abort()

    def _abort(self) -> None:
        abort = getattr(self.sink, "abort", None)
        if not callable(abort):
            return
        try:
            abort()
        except Exception:  # noqa: BLE001 - already warned once; stay quiet
            log.debug("%s abort() failed too", self.name, exc_info=True)
