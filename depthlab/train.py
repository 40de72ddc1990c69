"""One run, start to finish (or resumed): the facade over depthlab.engine.

`run(cfg, run_dir)` takes the resolved config as a plain dict and knows
nothing of Hydra or Typer. It returns the run's summary (also written to
`summary.json`) with `status` completed | diverged | interrupted.

With `trainer.devices=N` (N > 1) it starts N processes through PyTorch's elastic
launcher and each runs this same function as one rank of a DistributedDataParallel
run; under torchrun or a SLURM job of several tasks the ranks already exist.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from depthlab import machine
from depthlab.engine import distributed
from depthlab.engine.build import resolve_device
from depthlab.engine.distributed import World
from depthlab.engine.errors import DevicesError
from depthlab.engine.graphs import GraphedStep
from depthlab.engine.loop import Loop, NoProgress
from depthlab.engine.setup import build_setup
from depthlab.engine.state import TrainState, continue_on, resume
from depthlab.progress import TrainProgress
from depthlab.rundir import RunSummary, read_summary, summary_head, summary_result
from depthlab.tracking import RunInfo
from depthlab.tracking.local import LocalSink

log = logging.getLogger("depthlab")

SinkFactory = Callable[[dict[str, Any]], list[Any]]


def run(cfg: dict[str, Any], run_dir: Path, *, group: str = "train",
        extra_sinks: list[Any] | None = None, sink_factory: SinkFactory | None = None) -> RunSummary:
    """Train one network as `cfg` says, writing everything into `run_dir`.
    `sink_factory(cfg)` makes the optional sinks (W&B) in the process that writes
    (rank 0); `extra_sinks` are used as given (one process only)."""
    run_dir = Path(run_dir)
    devices = int(cfg["trainer"].get("devices") or 1)
    world = distributed.from_env()
    if devices < 1:
        raise DevicesError(f"trainer.devices must be a positive number of processes, got {devices}")
    if world.distributed and devices not in (1, world.size):
        raise DevicesError(f"trainer.devices={devices} but the launcher started {world.size} "
                           f"processes; leave trainer.devices at 1 under torchrun or SLURM")
    if devices > 1 and not world.distributed:
        return distributed.launch_local(
            devices, _rank_main, (cfg, str(run_dir), group, sink_factory),
            on_signal=lambda: _summary_after_signal(run_dir))
    device = distributed.rank_device(resolve_device(str(cfg["trainer"]["device"])), world)
    with distributed.process_group(world, device):
        return _train(cfg, run_dir, world, group=group, extra_sinks=extra_sinks or [],
                      sink_factory=sink_factory)


def _earlier_summary(run_dir: Path) -> RunSummary | None:
    """summary.json of this run's earlier sitting (a resume), or None."""
    try:
        return read_summary(run_dir)
    except (FileNotFoundError, ValueError):
        return None


def _summary_after_signal(run_dir: Path) -> RunSummary:
    """What rank 0 wrote once a signal stopped the workers; a signal before any
    summary existed (the workers were still starting) is an interrupt like Ctrl-C."""
    try:
        return read_summary(run_dir)
    except (FileNotFoundError, ValueError):
        raise KeyboardInterrupt from None


def _rank_main(cfg: dict[str, Any], run_dir: str, group: str,
               sink_factory: SinkFactory | None) -> RunSummary:
    """One worker of `launch_local`: its rank is in the environment."""
    from depthlab.console import configure_worker_logging

    world = distributed.from_env()
    configure_worker_logging(Path(run_dir), world.main)
    return run(cfg, Path(run_dir), group=group, sink_factory=sink_factory)


def _train(cfg: dict[str, Any], run_dir: Path, world: World, *, group: str,
           extra_sinks: list[Any], sink_factory: SinkFactory | None) -> RunSummary:
    started = time.time()
    distributed.quiet_other_ranks(world)
    earlier = _earlier_summary(run_dir)
    s = build_setup(cfg, world, earlier=earlier)
    desc, data = s.desc, s.data

    # Resume: the run directory's checkpoint, if any, says where to start (every rank
    # reads the same one before rank 0 may write a new one).
    state = resume(run_dir, s.model, s.optimizer, s.precision.scaler)
    resumed = state is not None
    if state is None:
        state = TrainState()
    # another number of processes than the last sitting's: the same run where it can be
    continue_on(state, world.size, s.model, bool(cfg["arch"].get("sync_bn")),
                int(cfg["trainer"]["batch_size"]), run_dir,
                earlier=int(earlier.get("processes", 1)) if resumed and earlier else None)
    if resumed:
        log.info("%s: resuming at epoch %d, step %d", cfg["run"]["name"], state.epoch, state.step)
    distributed.barrier(world)

    info = RunInfo(
        name=cfg["run"]["name"], group=group, run_dir=run_dir, config=cfg,
        description={k: v for k, v in desc.items() if k not in ("layers", "blocks")},
        layers=desc["layers"], blocks=desc["blocks"],
        resumed_from_step=state.step if resumed else None,
        extra={"resumed_epoch": state.epoch - 1 if resumed else -1},
        resolved={"trainer.precision": s.fast_path.precision,
                  "trainer.channels_last": s.fast_path.channels_last,
                  "trainer.fast_path": s.fast_path.reason, "machine": machine.describe()},
    )
    local = LocalSink(run_dir) if world.main else None
    sinks = [local, *extra_sinks, *(sink_factory(cfg) if sink_factory else [])] if world.main else []
    for sink in sinks:
        sink.start(info)

    host = info.resolved["machine"]
    summary = summary_head(
        name=info.name, group=group, arch=desc["arch"], depth=desc["depth"],
        layout=desc["layout"], norm=desc["norm"], shortcut=desc.get("shortcut"),
        preact=desc.get("preact"), zero_init_residual=desc.get("zero_init_residual"),
        seed=s.seed, data=data.name, num_classes=data.num_classes,
        train_subset=cfg["data"].get("train_subset"),
        train_size=data.train_size, test_size=data.test_size,
        params=desc["params"], flops=desc["flops"], epochs=s.epochs,
        total_steps=s.total_steps, device=str(s.device), machine=machine.line(host),
    )
    # how the numbers were made: the resolved precision and memory format, and the processor
    # (the same seed gives other curves on another CPU; bf16 is native on some, emulated on others)
    summary.update(precision=s.fast_path.precision, channels_last=s.fast_path.channels_last,
                   compile=bool(cfg["trainer"].get("compile")), fast_path=s.fast_path.reason,
                   processor=host["processor"], native_bf16=host["native_bf16"])
    if world.distributed:
        summary["processes"] = world.size
    if len(state.processes) > 1:  # resumed on another number of processes
        summary["process_counts"] = list(state.processes)
    summary.update(normalisation=data.normalisation, status="running",
                   started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if local is not None:
        local.write_summary(summary)

    s.model.train()
    progress = TrainProgress(info.name, s.total_steps, state.step) if world.main else NoProgress()
    loop = Loop(cfg, s, state, run_dir, sinks, progress, started)
    try:
        status = loop.run()
    except BaseException as err:
        # close every sink (the W&B run included) before the error goes up
        summary.update(status="failed", error=f"{type(err).__name__}: {err}",
                       steps_completed=state.step, wall_seconds=loop.wall_seconds())
        for sink in sinks:
            try:
                sink.finish(summary)
            except Exception:  # the original error is the one to report
                pass
        raise
    finally:
        s.probe.close()

    last = state.last_epoch_metrics
    summary.update(summary_result(
        status=status,
        final_train_error=last.get("train_error"),
        final_test_error=last.get("test_error"),
        best_test_error=state.best_test_error if state.best_test_error != float("inf") else None,
        epochs_completed=state.epoch - 1,
        steps_completed=state.step,
        grad_ratio_first_last_init=state.ratio_init,
        grad_ratio_first_last=state.ratio_end,
    ))
    if state.records_skipped:  # fp16 steps whose gradients GradScaler found inf/NaN in
        summary["gradflow_records_skipped"] = state.records_skipped
    summary.update(
        images_per_sec=last.get("images_per_sec"),
        wall_seconds=loop.wall_seconds(),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if isinstance(s.step, GraphedStep):  # trainer.cuda_graphs on: how many steps were replays
        before = (earlier or {}).get("cuda_graph_replays", 0) if resumed else 0
        summary["cuda_graph_replays"] = int(before or 0) + s.step.replays
    for sink in sinks:
        sink.finish(summary)
    if status == "interrupted":
        log.warning("%s interrupted at step %d; run the same command again to resume",
                    info.name, state.step)
        loop.stop.forward()
    return summary
