"""The epochs of one run: steps, metric windows folded into epoch totals,
evaluation, checkpoints, and the ways a run stops (completed, diverged,
interrupted by a signal)."""

from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.engine.distributed import World, all_sum, broadcast_buffers
from depthlab.engine.setup import Setup
from depthlab.engine.state import TrainState, new_totals
from depthlab.engine.step import set_learning_rate
from depthlab.rundir import first_last_ratio

log = logging.getLogger("depthlab")


@torch.no_grad()
def evaluate(model: nn.Module, loader, autocast: Callable[[], ContextManager[Any]],
             world: World = World(), device: torch.device | None = None) -> tuple[float, float]:
    """Mean loss and error (fraction) over a loader; across ranks, over every rank's
    part of the set (the parts are disjoint and cover it)."""
    was_training = model.training
    model.eval()
    loss_sum = correct = torch.zeros((), dtype=torch.float64)
    total = 0
    for x, y in loader:
        with autocast():
            out = model(x)
        loss_sum = loss_sum + F.cross_entropy(out.float(), y, reduction="sum").double().cpu()
        correct = correct + (out.argmax(1) == y).sum().cpu()
        total += y.numel()
    model.train(was_training)
    if world.distributed:
        sums = all_sum([loss_sum.item(), correct.item(), total], world, device)
        loss_sum, correct = torch.tensor(sums[0], dtype=torch.float64), torch.tensor(sums[1], dtype=torch.float64)
        total = int(sums[2])
    return (loss_sum / total).item(), 1.0 - (correct / total).item()


class StopRequested:
    """SIGINT/SIGTERM (and SLURM's preemption signal under submitit) set a flag;
    the loop checkpoints and stops at the next step (across ranks: at the next log
    interval, where the ranks agree).

    Under submitit, SIGUSR2 belongs to submitit (it requeues the job). We take it
    too, save our checkpoint first, then hand the signal on with `forward()`, so a
    requeued run resumes from the step it reached, not from the last epoch.
    A second Ctrl-C stops a one-process run at once; a rank ignores it (the elastic
    launcher passes the terminal's Ctrl-C on again, and the checkpoint must be written).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)

    def __init__(self, second_interrupt_stops: bool = True) -> None:
        self.signal: int | None = None
        self.second_interrupt_stops = second_interrupt_stops
        self._previous: dict[int, Any] = {}

    @contextmanager
    def installed(self):
        def handler(signum, frame):
            if self.signal is not None:
                if signum == signal.SIGINT and self.second_interrupt_stops:
                    raise KeyboardInterrupt  # a second Ctrl-C: stop now
                return
            self.signal = signum
            log.warning("received %s: saving a checkpoint and stopping",
                        signal.Signals(signum).name)
        try:
            for s in self.SIGNALS:
                if s == signal.SIGUSR2 and not callable(signal.getsignal(s)):
                    continue  # nobody (no submitit) listens for it: leave the default
                self._previous[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread (e.g. a joblib worker thread)
            pass
        try:
            yield self
        finally:
            for s, h in self._previous.items():
                signal.signal(s, h)

    def forward(self) -> None:
        """Give the signal to whoever handled it before us (submitit's requeue)."""
        previous = self._previous.get(self.signal)
        if self.signal == signal.SIGUSR2 and callable(previous):
            previous(self.signal, None)


class Window:
    """Training loss and correct predictions summed on the device between host syncs:
    one sync (and, across ranks, one all-reduce) per log interval, not per step."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device)
        self.seen = 0
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        self.loss += loss * n
        self.correct += correct
        self.seen += n

    def fold(self, totals: dict[str, float], world: World, device: torch.device,
             stop: bool) -> tuple[float, float, int, bool]:
        """Add the window into the epoch's totals (summed over the ranks) and start a new
        one. Returns the window's (loss sum, correct, images) over all ranks, and whether
        any rank was asked to stop."""
        host_loss, host_correct, seen = self.loss.item(), self.correct.item(), self.seen
        if world.distributed:  # one collective: the sums and the ranks' stop flags
            host_loss, host_correct, seen, flags = all_sum(
                [host_loss, host_correct, seen, float(stop)], world, device)
            seen, stop = int(seen), flags > 0
        self.loss.zero_()
        self.correct.zero_()
        self.seen = 0
        totals["loss"] += host_loss
        totals["correct"] += host_correct
        totals["seen"] += seen
        return host_loss, host_correct, seen, stop


class NoProgress:
    """The progress display of ranks other than 0: none."""

    def __enter__(self) -> "NoProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def step(self, *args: Any) -> None: ...
    def epoch(self, *args: Any) -> None: ...


class Loop:
    """Train `setup` from `state` to the end of the run (or a stop), telling `sinks`.
    `run()` returns the status: completed | diverged | interrupted (then, once the
    summary is written, `stop.forward()` hands a preemption signal on)."""

    def __init__(self, cfg: dict[str, Any], setup: Setup, state: TrainState, run_dir: Path,
                 sinks: list[Any], progress: Any, started: float) -> None:
        self.cfg, self.s, self.state, self.run_dir = cfg, setup, state, run_dir
        self.sinks, self.progress, self.started = sinks, progress, started
        self.t = cfg["trainer"]
        self.every = cfg["gradflow"]["every"]
        self.stop = StopRequested(second_interrupt_stops=not setup.world.distributed)
        self.stop_agreed = False  # across ranks: decided where the ranks fold their windows
        # the weights are still the initial ones: every step is recorded until one is a
        # measurement (fp16 skips the steps it found inf/NaN in, weights unchanged)
        self.at_init = state.step == 0
        self.name = cfg["run"]["name"]

    # -- helpers --------------------------------------------------------------------

    def wall_seconds(self) -> float:
        return self.state.wall_before + time.time() - self.started

    def checkpoint(self) -> None:
        if self.s.world.main:
            self.state.save(self.run_dir, self.s.model, self.s.optimizer,
                            self.s.precision.scaler, self.wall_seconds())

    def stopping(self) -> bool:
        if self.s.world.distributed:
            return self.stop_agreed
        return self.stop.signal is not None

    def fold(self, window: Window) -> tuple[float, float, int]:
        loss, correct, seen, stop = window.fold(self.state.totals, self.s.world, self.s.device,
                                                self.stop.signal is not None)
        self.stop_agreed = self.stop_agreed or stop
        return loss, correct, seen

    # -- the run --------------------------------------------------------------------

    def run(self) -> str:
        with self.stop.installed(), self.progress:
            status = "completed"
            while (self.state.epoch <= self.s.epochs and self.state.step < self.s.total_steps
                   and status == "completed"):
                status = self.epoch()
        return status

    def epoch(self) -> str:
        """Train what remains of the current epoch; evaluate and checkpoint at its end."""
        s, st, t = self.s, self.state, self.t
        # resumed mid-epoch: the same epoch's batches from batch_in_epoch on, by index
        s.data.train.set_epoch(st.epoch, start_batch=st.batch_in_epoch)
        epoch_start = time.perf_counter()
        window = Window(s.device)
        for i, (x, y) in enumerate(s.data.train, start=st.batch_in_epoch):
            if st.step >= s.total_steps:
                break
            if s.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            set_learning_rate(s.optimizer, s.base_lrs, self.cfg["schedule"], st.step, s.total_steps)
            record_now = (st.step % self.every == 0 or st.step == s.total_steps - 1
                          or self.at_init)
            loss, correct, record = s.step(s.optimizer, x, y, s.precision,
                                           s.probe if record_now else None, st.step)
            if record is not None and record.overflow:
                st.records_skipped += 1  # inf/NaN gradients: not a measurement
            elif record is not None:
                st.ratio_end = first_last_ratio(s.desc["layers"], record.grad_norm)
                if self.at_init:
                    st.ratio_init = st.ratio_end
                self.at_init = False
                for sink in self.sinks:
                    sink.log_gradflow(st.epoch, record)
            window.add(loss, correct, y.numel())
            st.step += 1
            st.batch_in_epoch = i + 1
            if st.step % t["log_every"] == 0 or st.step == s.total_steps:
                if not self.log_window(window):
                    return "diverged"
            if self.stopping():
                break
        # fold what remains of the window into the epoch totals
        loss, _, _ = self.fold(window)
        if not math.isfinite(loss):
            return "diverged"
        if self.stopping() and st.batch_in_epoch < s.steps_per_epoch and st.step < s.total_steps:
            st.totals["seconds"] += time.perf_counter() - epoch_start
            self.checkpoint()
            return "interrupted"
        self.end_epoch(epoch_start)
        if self.stopping() and st.step < s.total_steps:
            return "interrupted"
        return "completed"

    def log_window(self, window: Window) -> bool:
        """Fold the log interval's window into the epoch's totals and report it; False
        when the loss is no longer finite (the run diverged)."""
        s, st = self.s, self.state
        host_loss, host_correct, seen = self.fold(window)
        now = time.perf_counter()
        ips = seen / max(now - window.start, 1e-9)
        window.start = now
        if not math.isfinite(host_loss):
            log.warning("%s diverged at step %d (loss %s)", self.name, st.step, host_loss)
            return False
        window_loss, window_err = host_loss / seen, 1 - host_correct / seen
        metrics = {"epoch": st.epoch, "loss": window_loss, "error": window_err,
                   "lr": s.optimizer.param_groups[0]["lr"], "images_per_sec": ips}
        for sink in self.sinks:
            sink.log_step(st.step, metrics)
        self.progress.step(st.step, st.epoch, s.epochs, window_loss, window_err, ips)
        return True

    def end_epoch(self, epoch_start: float) -> None:
        s, st, t = self.s, self.state, self.t
        epoch_seconds = st.totals["seconds"] + time.perf_counter() - epoch_start
        seen = max(st.totals["seen"], 1)
        train_loss = st.totals["loss"] / seen
        train_error = 1 - st.totals["correct"] / seen
        metrics = {"train_loss": train_loss, "train_error": train_error,
                   "lr": s.optimizer.param_groups[0]["lr"],
                   "images_per_sec": st.totals["seen"] / max(epoch_seconds, 1e-9),
                   "epoch_seconds": epoch_seconds}
        last_epoch = st.epoch == s.epochs or st.step >= s.total_steps
        if st.epoch % t["eval_every"] == 0 or last_epoch:
            # every rank evaluates the checkpoint's model: rank 0's batch-norm statistics
            # (the others updated theirs on their own slices since DDP last broadcast them)
            broadcast_buffers(s.model, s.world)
            metrics["test_loss"], metrics["test_error"] = evaluate(
                s.eval_net, s.data.test, s.precision.autocast, s.world, s.device)
            st.best_test_error = min(st.best_test_error, metrics["test_error"])
        metrics["wall_seconds"] = self.wall_seconds()
        for sink in self.sinks:
            sink.log_epoch(st.epoch, st.step, metrics)
        st.last_epoch_metrics = {**st.last_epoch_metrics, **metrics}
        self.progress.epoch(
            f"epoch {st.epoch}/{s.epochs}: train loss {train_loss:.4f}, train error "
            f"{100 * train_error:.2f}%"
            + (f", test error {100 * metrics['test_error']:.2f}%" if "test_error" in metrics else "")
            + f", {metrics['images_per_sec']:,.0f} img/s",
            st.step,
        )
        st.epoch += 1
        st.batch_in_epoch = 0
        st.totals = new_totals()
        self.checkpoint()
