"""One run on several processes: DistributedDataParallel (DDP), as torchvision's
references/classification do it. Rank 0 writes; every rank trains its share of
each global batch and reads the same checkpoint.

Three ways in, one code path once the ranks exist:
- `trainer.devices=N` on one machine: `launch_local` starts N workers through
  PyTorch's elastic launcher (`torch.distributed.run`, the code behind torchrun),
  as `torchrun --standalone --nproc-per-node N` would;
- the user runs depthlab under `torchrun` directly: the ranks come from its
  environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
- a SLURM job of N tasks through hydra-submitit-launcher (hydra/launcher=slurm_ddp):
  `adopt_submitit` exports submitit's view of the job as that same environment.
Backend: NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import shutil
import signal
import sys
import tempfile
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist

log = logging.getLogger("depthlab")

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank of size; local_rank picks its GPU."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run directory, checkpoints and W&B."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_env() -> World:
    """The world torchrun (or the elastic launcher, or adopt_submitit) describes in the
    environment; one process when it describes none."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return World()
    return World(rank=int(os.environ["RANK"]), size=int(os.environ["WORLD_SIZE"]),
                 local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def adopt_submitit() -> None:
    """Inside a SLURM (or submitit_local) job of several tasks: export RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR and MASTER_PORT from submitit's job environment, so that
    each task is one rank of the run. Does nothing outside such a job."""
    if "SUBMITIT_EXECUTOR" not in os.environ or from_env().distributed:
        return
    try:
        import submitit
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:
        return
    try:
        if submitit.JobEnvironment().num_tasks <= 1:
            return
    except RuntimeError:  # not inside a submitit job after all
        return
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join the run's process group for the duration (nothing to do for one process)."""
    if not world.distributed:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), init_method="env://", rank=world.rank,
                            world_size=world.size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def rank_device(device: torch.device, world: World) -> torch.device:
    """Each rank its own GPU (cuda:LOCAL_RANK); every CPU rank the CPU."""
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


def all_sum(values: list[float] | torch.Tensor, world: World, device: torch.device) -> list[float]:
    """Sum numbers over the ranks (float64; one collective for the whole list)."""
    t = torch.as_tensor(values, dtype=torch.float64, device=device)
    if world.distributed:
        dist.all_reduce(t)
    return t.tolist()


def broadcast_buffers(module: torch.nn.Module, world: World) -> None:
    """Rank 0's buffers (batch norm's running statistics) on every rank."""
    if world.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


# --- starting the workers ---------------------------------------------------------

class WorkerFailed(RuntimeError):
    """A worker died without an error of its own to report (killed, out of memory)."""


def _die_with_parent() -> None:
    # A worker must not outlive the launcher (kill -9 of the depthlab process): Linux's
    # parent-death signal; elsewhere the elastic agent's own clean-up is all there is.
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _worker(fn: Callable[..., Any], args: tuple, errors: str) -> Any:
    _die_with_parent()
    try:
        return fn(*args)
    except BaseException as err:  # hand the error itself to the launcher, then fail quietly
        rank = os.environ.get("RANK", "0")
        where = traceback.format_exc()
        try:
            payload = pickle.dumps((err, where))
        except Exception:  # noqa: BLE001 (an unpicklable error still has a message)
            payload = pickle.dumps((RuntimeError(f"{type(err).__name__}: {err}"), where))
        Path(errors, f"rank{rank}.pickle").write_bytes(payload)
        sys.exit(1)  # no traceback on the console: the launcher reports the error once


@contextmanager
def _quiet_elastic() -> Iterator[None]:
    """The elastic agent (and torch.multiprocessing under it) logs each start, signal
    and stop at INFO/WARNING; depthlab says what matters itself."""
    roots = ("torch.distributed.elastic", "torch.multiprocessing")  # the latter: "Terminating process"
    names = [*roots, *(n for n in logging.root.manager.loggerDict if n.startswith(roots))]
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:  # a worker's failure included: launch_local raises it as one error
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def launch_local(nprocs: int, fn: Callable[..., Any], args: tuple,
                 on_signal: Callable[[], Any]) -> Any:
    """Run fn(*args) in `nprocs` worker processes on this machine through PyTorch's
    elastic launcher (what `torchrun --standalone --nproc-per-node nprocs` does) and
    return rank 0's result. A worker's exception is raised here as it was raised there
    (rank 0's first). Ctrl-C / SIGTERM reach the workers, which checkpoint and stop;
    then `on_signal()` is returned (what rank 0 wrote)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nprocs, run_id=f"depthlab-{uuid.uuid4()}",
        rdzv_backend="c10d", rdzv_endpoint="localhost:0",  # --standalone: a free local port
        max_restarts=0, monitor_interval=0.1, start_method="spawn",
    )
    errors = tempfile.mkdtemp(prefix="depthlab-ranks-")
    try:
        with _quiet_elastic():
            results = elastic_launch(config, _worker)(fn, args, errors)
        return results[0]
    except SignalException:
        return on_signal()
    except ChildFailedError as failure:
        raised = sorted(Path(errors).glob("rank*.pickle"))
        if raised:
            err, where = pickle.loads(raised[0].read_bytes())
            err.add_note(f"raised in {raised[0].stem}:\n{where}")  # error.txt shows where
            raise err from None
        first = failure.get_first_failure()[1]
        raise WorkerFailed(f"rank {first.local_rank} of {nprocs} died (exit code "
                           f"{first.exitcode}); run the same command again to resume") from None
    finally:
        shutil.rmtree(errors, ignore_errors=True)


def quiet_other_ranks(world: World) -> None:
    """Ranks other than 0 report errors only, on the console, marked with their rank:
    one train.log, one progress display and one set of warnings per run, rank 0's."""
    if world.main:
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
    logging.getLogger("depthlab").setLevel(logging.ERROR)
    prefix = f"[rank {world.rank}] "
    old = logging.getLogRecordFactory()

    def factory(*a: Any, **k: Any) -> logging.LogRecord:
        record = old(*a, **k)
        if not str(record.msg).startswith(prefix):
            record.msg = prefix + str(record.msg)
        return record

    logging.setLogRecordFactory(factory)
