"""One run, start to finish (or resumed): data, model, loop, gradient flow, sinks.

`run(cfg, run_dir)` takes the resolved config as a plain dict and knows
nothing of Hydra or Typer. It returns the run's summary (also written to
`summary.json`) with `status` completed | diverged | interrupted.
"""

from __future__ import annotations

import logging
import math
import platform
import signal
import socket
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.checkpoint import load_checkpoint, save_checkpoint
from depthlab.data import build_data
from depthlab.gradflow import GradFlowProbe
from depthlab.models import build_model, describe
from depthlab.optim import learning_rate, make_optimizer, run_length
from depthlab.progress import TrainProgress
from depthlab.rundir import RunSummary, first_last_ratio, summary_head, summary_result
from depthlab.tracking import RunInfo
from depthlab.tracking.local import LocalSink

log = logging.getLogger("depthlab")

ARCH_KEYS_NOT_OPTIONS = {"name", "layout"}


def resolve_device(name: str, what: str = "trainer.device") -> torch.device:
    """cpu, cuda, cuda:N or auto (cuda when present); ValueError naming `what` otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r} for {what}; valid: cpu, cuda, cuda:N, auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what}={name} but no CUDA device is available; use cpu or auto")
    return device


class PrecisionError(ValueError):
    """trainer.precision that the resolved device cannot run; str() is one line."""


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 autocast runs on the CPU and on CUDA; fp16 needs CUDA (its GradScaler).
    The rule of config.check_config, applied again once `auto` is resolved."""
    if precision == "fp16" and device.type != "cuda":
        raise PrecisionError(f"trainer.precision=fp16 needs a CUDA device, and this run is on "
                             f"{device}; use bf16 or fp32 on the CPU")


def make_model(cfg: dict[str, Any], num_classes: int, image_size: int) -> nn.Module:
    arch = cfg["arch"]
    options = {k: v for k, v in arch.items() if k not in ARCH_KEYS_NOT_OPTIONS}
    options["image_size"] = image_size
    return build_model(arch["name"], cfg["depth"], num_classes=num_classes,
                       layout=arch["layout"], **options)


@torch.no_grad()
def evaluate(model: nn.Module, loader, autocast) -> tuple[float, float]:
    """Mean loss and error (fraction) over a loader."""
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
    return (loss_sum / total).item(), 1.0 - (correct / total).item()


class StopRequested:
    """SIGINT/SIGTERM (and SLURM's preemption signal under submitit) set a flag;
    the loop checkpoints and stops at the next step.

    Under submitit, SIGUSR2 belongs to submitit (it requeues the job). We take it
    too, save our checkpoint first, then hand the signal on with `forward()`, so a
    requeued run resumes from the step it reached, not from the last epoch.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @contextmanager
    def installed(self):
        def handler(signum, frame):
            if self.signal is not None and signum == signal.SIGINT:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
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


def machine() -> str:
    return f"{socket.gethostname()} ({platform.machine()}, {platform.system()}, torch {torch.__version__})"


def run(cfg: dict[str, Any], run_dir: Path, *, group: str = "train",
        extra_sinks: list[Any] | None = None) -> RunSummary:
    """Train one network as `cfg` says, writing everything into `run_dir`."""
    run_dir = Path(run_dir)
    t = cfg["trainer"]
    started = time.time()
    device = resolve_device(str(t["device"]))
    check_precision(t.get("precision", "fp32"), device)
    if t.get("threads"):
        torch.set_num_threads(int(t["threads"]))
    seed = int(cfg["seed"])

    data_cfg = {k: v for k, v in cfg["data"].items() if k != "layout"}  # layout is the model's
    data = build_data(data_cfg, batch_size=t["batch_size"], eval_batch_size=t["eval_batch_size"],
                      device=device, seed=seed)
    torch.manual_seed(seed)
    model = make_model(cfg, data.num_classes, data.image_size)
    desc = describe(model)
    model.to(device)
    if t.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    steps_per_epoch = len(data.train)
    if steps_per_epoch == 0:
        raise ValueError(f"the training set ({data.train_size} images) is smaller than one batch "
                         f"({t['batch_size']}); lower trainer.batch_size")
    epochs, total_steps = run_length(t, steps_per_epoch)
    base_lrs = [g["lr"] for g in optimizer.param_groups]

    precision = t.get("precision", "fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    fwd_model = torch.compile(model) if t.get("compile") else model
    # Block hooks inside a compiled graph would break it: no activation stats then.
    gf = cfg["gradflow"]
    probe = GradFlowProbe(model, desc["layers"], desc["blocks"],
                          activations=bool(gf.get("activations", True)) and not t.get("compile"))

    # Resume: the run directory's checkpoint, if any, says where to start.
    state = load_checkpoint(run_dir)
    epoch, batch_in_epoch, step = 1, 0, 0
    acc = {"loss": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}
    best_test, ratio_init, wall_before = float("inf"), None, 0.0
    # What the final summary needs, carried by the checkpoint: a run killed after its
    # last checkpoint but before summary.json resumes with nothing left to train.
    last_epoch_metrics: dict[str, float] = {}
    ratio_end_saved = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        epoch, batch_in_epoch, step = state["epoch"], state["batch_in_epoch"], state["step"]
        acc = dict(state["acc"])
        best_test = state["best_test_error"]
        ratio_init = state.get("grad_ratio_first_last_init")
        wall_before = state.get("wall_seconds", 0.0)
        last_epoch_metrics = dict(state.get("last_epoch_metrics", {}))
        ratio_end_saved = state.get("grad_ratio_first_last")
        log.info("%s: resuming at epoch %d, step %d", cfg["run"]["name"], epoch, step)

    info = RunInfo(
        name=cfg["run"]["name"], group=group, run_dir=run_dir, config=cfg,
        description={k: v for k, v in desc.items() if k not in ("layers", "blocks")},
        layers=desc["layers"], blocks=desc["blocks"],
        resumed_from_step=None if state is None else step,
        extra={"resumed_epoch": epoch - 1 if state is not None else -1},
    )
    local = LocalSink(run_dir)
    sinks = [local, *(extra_sinks or [])]
    for sink in sinks:
        sink.start(info)

    summary = summary_head(
        name=info.name, group=group, arch=desc["arch"], depth=desc["depth"],
        layout=desc["layout"], norm=desc["norm"], shortcut=desc.get("shortcut"),
        preact=desc.get("preact"), zero_init_residual=desc.get("zero_init_residual"),
        seed=seed, data=data.name, num_classes=data.num_classes,
        train_subset=cfg["data"].get("train_subset"),
        train_size=data.train_size, test_size=data.test_size,
        params=desc["params"], flops=desc["flops"], epochs=epochs,
        total_steps=total_steps, device=str(device), machine=machine(),
    )
    summary.update(normalisation=data.normalisation, status="running",
                   started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    local.write_summary(summary)

    last_record = None
    status = "completed"
    stop = StopRequested()
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    window_seen, window_start = 0, time.perf_counter()

    def checkpoint(next_epoch: int, next_batch: int) -> None:
        save_checkpoint(run_dir, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            **({"scaler": scaler.state_dict()} if scaler is not None else {}),
            "epoch": next_epoch, "batch_in_epoch": next_batch, "step": step,
            "acc": {k: float(v) for k, v in acc.items()}, "best_test_error": best_test,
            "grad_ratio_first_last_init": ratio_init, "grad_ratio_first_last": ratio_end(),
            "last_epoch_metrics": dict(last_epoch_metrics),
            "wall_seconds": wall_before + time.time() - started,
        })

    def ratio_end() -> float | None:
        if last_record is None:  # nothing recorded since the resume
            return ratio_end_saved
        return first_last_ratio(desc["layers"], last_record.grad_norm)

    try:
        with stop.installed(), TrainProgress(info.name, total_steps, step) as progress:
            while epoch <= epochs and step < total_steps and status == "completed":
                # resumed mid-epoch: the same epoch's batches from batch_in_epoch on, by index
                data.train.set_epoch(epoch, start_batch=batch_in_epoch)
                epoch_start = time.perf_counter()
                for i, (x, y) in enumerate(data.train, start=batch_in_epoch):
                    if step >= total_steps:
                        break
                    if t.get("channels_last"):
                        x = x.contiguous(memory_format=torch.channels_last)
                    for g, base in zip(optimizer.param_groups, base_lrs):
                        g["lr"] = learning_rate(cfg["schedule"], base, step, total_steps)
                    record_now = step % gf["every"] == 0 or step == total_steps - 1
                    if record_now:
                        probe.arm()
                    with autocast():
                        out = fwd_model(x)
                        loss = F.cross_entropy(out.float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.unscale_(optimizer)  # gradient flow sees true gradients
                    else:
                        loss.backward()
                    if record_now:
                        last_record = probe.record(step)
                        if step == 0:
                            ratio_init = first_last_ratio(desc["layers"], last_record.grad_norm)
                        for sink in sinks:
                            sink.log_gradflow(epoch, last_record)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    loss_sum += loss.detach() * y.numel()
                    correct += (out.detach().argmax(1) == y).sum()
                    window_seen += y.numel()
                    step += 1
                    batch_in_epoch = i + 1
                    if step % t["log_every"] == 0 or step == total_steps:
                        # one host sync per log interval: fold the device sums into the epoch's
                        host_loss, host_correct = loss_sum.item(), correct.item()
                        loss_sum.zero_(); correct.zero_()
                        acc["loss"] += host_loss
                        acc["correct"] += host_correct
                        acc["seen"] += window_seen
                        now = time.perf_counter()
                        ips = window_seen / max(now - window_start, 1e-9)
                        window_loss, window_err = host_loss / window_seen, 1 - host_correct / window_seen
                        window_seen, window_start = 0, now
                        if not math.isfinite(host_loss):
                            status = "diverged"
                            log.warning("%s diverged at step %d (loss %s)", info.name, step, host_loss)
                            break
                        metrics = {"epoch": epoch, "loss": window_loss, "error": window_err,
                                   "lr": optimizer.param_groups[0]["lr"], "images_per_sec": ips}
                        for sink in sinks:
                            sink.log_step(step, metrics)
                        progress.step(step, epoch, epochs, window_loss, window_err, ips)
                    if stop.signal is not None:
                        break
                if status == "diverged":
                    break
                # fold what remains of the window into the epoch totals
                if window_seen:
                    host_loss, host_correct = loss_sum.item(), correct.item()
                    loss_sum.zero_(); correct.zero_()
                    acc["loss"] += host_loss; acc["correct"] += host_correct; acc["seen"] += window_seen
                    window_seen = 0
                    if not math.isfinite(host_loss):
                        status = "diverged"
                        break
                if stop.signal is not None and batch_in_epoch < steps_per_epoch and step < total_steps:
                    acc["seconds"] += time.perf_counter() - epoch_start
                    checkpoint(epoch, batch_in_epoch)
                    status = "interrupted"
                    break
                epoch_seconds = acc["seconds"] + time.perf_counter() - epoch_start
                train_loss = acc["loss"] / max(acc["seen"], 1)
                train_error = 1 - acc["correct"] / max(acc["seen"], 1)
                metrics = {"train_loss": train_loss, "train_error": train_error,
                           "lr": optimizer.param_groups[0]["lr"],
                           "images_per_sec": acc["seen"] / max(epoch_seconds, 1e-9),
                           "epoch_seconds": epoch_seconds}
                last_epoch = epoch == epochs or step >= total_steps
                if epoch % t["eval_every"] == 0 or last_epoch:
                    metrics["test_loss"], metrics["test_error"] = evaluate(fwd_model, data.test, autocast)
                    best_test = min(best_test, metrics["test_error"])
                metrics["wall_seconds"] = wall_before + time.time() - started
                for sink in sinks:
                    sink.log_epoch(epoch, step, metrics)
                last_epoch_metrics = {**last_epoch_metrics, **metrics}
                progress.epoch(
                    f"epoch {epoch}/{epochs}: train loss {train_loss:.4f}, train error "
                    f"{100 * train_error:.2f}%"
                    + (f", test error {100 * metrics['test_error']:.2f}%" if "test_error" in metrics else "")
                    + f", {metrics['images_per_sec']:,.0f} img/s",
                    step,
                )
                epoch += 1
                batch_in_epoch = 0
                acc = {"loss": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}
                checkpoint(epoch, 0)
                if stop.signal is not None and step < total_steps:
                    status = "interrupted"
                    break
    except BaseException as err:
        # close every sink (the W&B run included) before the error goes up
        summary.update(status="failed", error=f"{type(err).__name__}: {err}",
                       steps_completed=step, wall_seconds=wall_before + time.time() - started)
        for sink in sinks:
            try:
                sink.finish(summary)
            except Exception:  # the original error is the one to report
                pass
        raise
    finally:
        probe.close()

    summary.update(summary_result(
        status=status,
        final_train_error=last_epoch_metrics.get("train_error"),
        final_test_error=last_epoch_metrics.get("test_error"),
        best_test_error=best_test if math.isfinite(best_test) else None,
        epochs_completed=epoch - 1,
        steps_completed=step,
        grad_ratio_first_last_init=ratio_init,
        grad_ratio_first_last=ratio_end(),
    ))
    summary.update(
        images_per_sec=last_epoch_metrics.get("images_per_sec"),
        wall_seconds=wall_before + time.time() - started,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    for sink in sinks:
        sink.finish(summary)
    if status == "interrupted":
        log.warning("%s interrupted at step %d; run the same command again to resume",
                    info.name, step)
        stop.forward()
    return summary
