"""SafeSink: a failing sink becomes one warning and a no-op; the run goes on."""

from __future__ import annotations

import logging

import pytest

from depthlab.tracking.safe import SafeSink, one_line


class Recorder:
    """A sink that records its calls and raises in `fail_in`."""

    def __init__(self, fail_in: str | None = None, error: BaseException | None = None) -> None:
        self.calls: list[str] = []
        self.fail_in = fail_in
        self.error = error or RuntimeError("server said no\nsecond line")
        self.aborted = 0

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_in:
            raise self.error

    def start(self, run):
        self._call("start")

    def log_step(self, step, metrics):
        self._call("log_step")

    def log_gradflow(self, epoch, record):
        self._call("log_gradflow")

    def log_epoch(self, epoch, step, metrics):
        self._call("log_epoch")

    def finish(self, summary):
        self._call("finish")

    def abort(self):
        self.aborted += 1


def drive(sink) -> None:
    sink.start(None)
    for step in range(3):
        sink.log_gradflow(1, None)
        sink.log_step(step, {})
    sink.log_epoch(1, 3, {})
    sink.finish({})


def test_a_healthy_sink_gets_every_call_in_order(caplog):
    inner = Recorder()
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        drive(SafeSink(inner))
    assert inner.calls == ["start"] + ["log_gradflow", "log_step"] * 3 + ["log_epoch", "finish"]
    assert not caplog.records and inner.aborted == 0


@pytest.mark.parametrize("fail_in", ["start", "log_gradflow", "log_step", "log_epoch", "finish"])
def test_the_first_error_is_one_warning_then_silence(fail_in, caplog):
    inner = Recorder(fail_in=fail_in)
    sink = SafeSink(inner, "W&B")
    with caplog.at_level(logging.DEBUG, logger="depthlab"):
        drive(sink)  # no exception
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert message.startswith("W&B logging off")
    assert f"{fail_in}() failed: RuntimeError: server said no second line" in message
    assert "\n" not in message
    assert inner.calls[-1] == fail_in and inner.calls.count(fail_in) == 1  # nothing after it
    assert sink.disabled and sink.error == "RuntimeError: server said no second line"
    assert inner.aborted == 1


def test_the_sink_is_named_after_its_class_by_default(caplog):
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        drive(SafeSink(Recorder(fail_in="start")))
    assert caplog.records[0].getMessage().startswith("Recorder logging off")


def test_a_failing_abort_stays_quiet(caplog):
    inner = Recorder(fail_in="log_step")
    inner.abort = lambda: (_ for _ in ()).throw(OSError("disk full"))
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        drive(SafeSink(inner))
    assert len(caplog.records) == 1


def test_ctrl_c_is_not_swallowed():
    sink = SafeSink(Recorder(fail_in="log_step", error=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        drive(sink)


def test_one_line_cuts_long_messages():
    assert one_line(ValueError("a\n  b")) == "ValueError: a b"
    assert one_line(ValueError()) == "ValueError"
    long = one_line(RuntimeError("x" * 1000))
    assert len(long) == 300 and long.endswith("...")
