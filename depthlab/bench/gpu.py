"""The GPU benchmark (scripts/gpu_benchmark.py): settings, per-net rows (hand loop, CUDA graphs, gradient flow), DDP of one, four nets at once."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from depthlab.bench.nets import compose, run_side, synthetic_batches
from depthlab.bench.reference import hand_side
from depthlab.bench.results import gpu_block, machine_block, now
from depthlab.bench.rows import Row, failed_row, make_row, ratio_row, skipped_row
from depthlab.bench.timing import interleaved, quiet_progress, say


@dataclass(frozen=True)
class GpuSpec:
    label: str
    depth: int
    layout: str
    image_size: int
    batch: int
    warm: int  # untimed steps first; also run()'s log interval (read_windows drops the first)
    steps: int  # timed steps, a multiple of warm


@dataclass(frozen=True)
class GpuSettings:
    device: str
    precision: str  # both sides
    channels_last: bool  # both sides
    reps: int
    nets: tuple[GpuSpec, ...]
    data_batch: int
    data_batches: int


GPU = GpuSettings(
    device="cuda", precision="bf16", channels_last=True, reps=2,
    nets=(
        # windows of 100+ steps: a few hundred ms a side, well above launch jitter
        GpuSpec("residual-20 (cifar)", 20, "cifar", 32, batch=128, warm=20, steps=100),
        GpuSpec("residual-56 (cifar)", 56, "cifar", 32, batch=128, warm=20, steps=80),
        GpuSpec("residual-50 (imagenet, 224 px)", 50, "imagenet", 224, batch=64, warm=5, steps=20),
    ),
    data_batch=128, data_batches=50,
)

CPU = GpuSettings(
    device="cpu", precision="fp32", channels_last=False, reps=1,
    nets=(GpuSpec("residual-8 (cifar)", 8, "cifar", 32, batch=8, warm=1, steps=2),),
    data_batch=8, data_batches=3,
)

EVERY_DEFAULT = 10  # conf/config.yaml's gradflow.every
NEVER = 10**9  # records only step 0 and the last
FIG6_NETS = (("plain", 20), ("residual", 20), ("plain", 56), ("residual", 56))


def run_overrides(s: GpuSettings, spec: GpuSpec, *, graphs: bool, every: int) -> list[str]:
    total = spec.warm + spec.steps
    return [
        "arch=residual", f"depth={spec.depth}", f"arch.layout={spec.layout}",
        "data=synthetic", f"data.image_size={spec.image_size}",
        f"data.train_size={total * spec.batch}", f"data.test_size={spec.batch}",
        "data.augment=false", "optim=sgd", "logger=none",
        f"trainer.device={s.device}", f"trainer.precision={s.precision}",
        f"trainer.channels_last={str(s.channels_last).lower()}",
        f"trainer.cuda_graphs={str(graphs).lower()}",
        f"trainer.batch_size={spec.batch}", f"trainer.eval_batch_size={spec.batch}",
        f"trainer.iterations={total}", f"trainer.log_every={spec.warm}",
        f"gradflow.every={every}", "gradflow.activations=true",
    ]


def gpu_hand_side(s: GpuSettings, cfg: dict[str, Any], spec: GpuSpec,
                  wrap: Callable[[nn.Module], nn.Module] = lambda model: model) -> Callable[[], float]:
    """The hand loop at s's precision and memory format on s's device, over run()'s batches."""
    batches, data = synthetic_batches(cfg)
    return hand_side(cfg, batches, data, spec.warm, device=s.device, precision=s.precision,
                     channels_last=s.channels_last, wrap=wrap)


def net_rows(s: GpuSettings, spec: GpuSpec, cuda: bool) -> tuple[list[Row], dict[str, Any]]:
    """train, graphs and gradflow rows of one net, all sides interleaved in one loop."""
    key = f"residual-{spec.depth}-{spec.layout}"
    small = spec.layout == "cifar"  # the launch-bound nets: the probe's cost matters most there
    variants = {"eager": (False, EVERY_DEFAULT)}
    if small:
        variants.update(eager_every1=(False, 1), eager_never=(False, NEVER))
    if cuda:
        variants.update(graphs=(True, EVERY_DEFAULT))
        if small:
            variants.update(graphs_every1=(True, 1), graphs_never=(True, NEVER))
    cfgs = {v: compose(run_overrides(s, spec, graphs=g, every=e)) for v, (g, e) in variants.items()}
    sides = {v: run_side(c, spec.batch, prefix="depthlab-gpubench-") for v, c in cfgs.items()}
    sides["hand"] = gpu_hand_side(s, cfgs["eager"], spec)
    say(f"{spec.label}: batch {spec.batch}, {spec.warm} + {spec.steps} steps, "
        f"{len(sides)} sides x {s.reps} reps ({s.precision}, "
        f"{'channels_last' if s.channels_last else 'NCHW'}, {s.device})")
    failed: dict[str, str] = {}
    with quiet_progress():
        for name in ("eager", "graphs", "hand"):  # warm-up: cuDNN, allocator, a first capture;
            try:                                   # a path that fails is left out, its rows say why
                if name in sides:
                    sides[name]()
            except Exception as err:  # noqa: BLE001  (any failure of that path, reported)
                why = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
                say(f"  {name} FAILED: {why}")
                for side in [v for v in sides if v.split("_")[0] == name]:
                    failed[side] = why
                    del sides[side]
        got = interleaved(s.reps, sides)
    detail = {"batch": spec.batch, "image_size": spec.image_size, "warm_steps": spec.warm,
              "timed_steps": spec.steps, "precision": s.precision,
              "channels_last": s.channels_last, "img_s": got, "failed": failed,
              "overrides": run_overrides(s, spec, graphs=False, every=EVERY_DEFAULT)}
    label = f"{spec.label}, batch {spec.batch}, {s.precision}" + (", NHWC" if s.channels_last else "")

    def row(key: str, name: str, a: str, b: str, target: tuple[str, float], baseline_is: str) -> Row:
        gone = [side for side in (a, b) if side in failed]
        if gone:
            return skipped_row(key, name, f"{gone[0]} failed: {failed[gone[0]]}",
                               f"{target[0]} {target[1]:g}x")
        return ratio_row(key, name, got, a, b, target=target, baseline_is=baseline_is, detail=detail)

    rows = [row(f"train/{key}", f"training step: {label}", "eager", "hand", (">=", 0.97),
                "hand-written loop, same precision and layout")]
    if cuda:
        rows.append(row(f"graphs/{key}", f"CUDA graph vs eager: {label}", "graphs", "eager",
                        (">=", 1.0), "depthlab eager (trainer.cuda_graphs=false)"))
    else:
        rows.append(skipped_row(f"graphs/{key}", f"CUDA graph vs eager: {label}",
                                "needs a CUDA device (CPU mode)", ">= 1x"))
    for path in ("eager", "graphs"):
        if f"{path}_every1" in variants:
            rows.append(row(f"gradflow/{path}/{key}", f"gradient flow at every step, {path}: {label}",
                            f"{path}_every1", f"{path}_never", (">=", 0.9),
                            f"the same run recording only steps 0 and last ({path})"))
    med = {v: statistics.median(x) for v, x in got.items()}
    ms = {v: 1000 * spec.batch / med[v] if v in med else None for v in ("eager", "graphs", "hand")}
    faster = ms["graphs"] is not None and ms["eager"] is not None and ms["graphs"] < ms["eager"]
    return rows, {"step_ms": ms, "fast_path": "graphs" if faster else "eager", "batch": spec.batch}


def ddp_row(s: GpuSettings) -> Row:
    """The hand loop wrapped in DistributedDataParallel with a process group of one (nccl on
    a GPU, gloo on the CPU) vs the same loop bare: what DDP itself adds to a step when one
    device trains alone (issue #15). depthlab does not wrap a world of one (its runs under
    torchrun with one process train exactly as without it), so this is DDP's price for
    trainer.devices=N per step, measured where it can be without N devices."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    spec = s.nets[0]
    cfg = compose(run_overrides(s, spec, graphs=False, every=EVERY_DEFAULT))
    dev = torch.device(s.device)
    store = Path(tempfile.mkdtemp(prefix="depthlab-ddp-")) / "store"
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method=f"file://{store}",
                            rank=0, world_size=1)
    name = f"DDP of one process vs none: {spec.label}, batch {spec.batch}, hand loop"

    def ddp(model: nn.Module) -> nn.Module:
        return DistributedDataParallel(model, device_ids=[dev.index or 0] if dev.type == "cuda"
                                       else None)

    say(f"ddp: {name}, {spec.warm} + {spec.steps} steps x {s.reps} reps")
    try:
        gpu_hand_side(s, cfg, spec, wrap=ddp)()  # warm-up: DDP's buckets, NCCL's first collective
        got = interleaved(s.reps, {"ddp": gpu_hand_side(s, cfg, spec, wrap=ddp),
                                   "plain": gpu_hand_side(s, cfg, spec)})
    finally:
        dist.destroy_process_group()
    return ratio_row(f"ddp/residual-{spec.depth}-{spec.layout}", name, got, "ddp", "plain",
                     target=(">=", 0.95), baseline_is="the same loop without DDP",
                     detail={"backend": "nccl" if dev.type == "cuda" else "gloo", "world_size": 1})


# --- four nets at once: how Fig. 6's runs share one device ----------------------------------

# worker(arch, depth, s, batch, graphs, seconds, ready, go, results): one of the four processes
Worker = Callable[..., None]


def together(s: GpuSettings, graphs: bool, seconds: float, worker: Worker) -> dict[str, Any]:
    """Steps per second of each of the four Fig. 6 nets trained at once in four processes on
    the one device (each running `worker`): what one iteration of the four costs when they
    share it."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # CUDA in the children
    ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    batch = 128 if s.device == "cuda" else 8
    procs = [ctx.Process(target=worker, args=(a, d, s, batch, graphs, seconds, ready, go, results))
             for a, d in FIG6_NETS]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=180)
        go.set()
        got = [results.get(timeout=seconds + 120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    errors = {name: err for name, _, err in got if err}
    if errors:
        raise RuntimeError("; ".join(f"{k}: {v}" for k, v in errors.items())[:500])
    rates = {name: rate for name, rate, _ in got}
    return {"steps_per_s": rates, "batch": batch, "seconds": seconds,
            "iteration_ms": 1000 / min(rates.values())}  # the slowest net sets the pace


def together_rows(s: GpuSettings, cuda: bool, nets: dict[str, Any],
                  worker: Worker) -> tuple[list[Row], dict[str, Any]]:
    """Per path (eager, graphs): the four nets at once, against the same nets one at a time
    (the sum of their step times alone, from the train rows: what a device that runs one
    process's work at a time would give)."""
    seconds = 4.0 if cuda else 1.0
    rows, out = [], {}
    for path in ("eager", "graphs") if cuda else ("eager",):
        name = f"four Fig. 6 nets at once, {path}: plain/residual-20/56 (cifar), {s.precision}"
        alone = [nets.get(f"residual-{d}-cifar", {}).get("step_ms", {}).get(path) for d in (20, 56)]
        if cuda and None in alone:
            rows.append(skipped_row(f"together/{path}", name, f"no {path} step times alone", "-"))
            continue
        say(f"together: {name}, 4 processes, {seconds:g} s")
        try:
            got = together(s, graphs=path == "graphs", seconds=seconds, worker=worker)
        except Exception as err:  # noqa: BLE001
            rows.append(skipped_row(f"together/{path}", name,
                                    f"failed: {' '.join(str(err).split())[:300]}", "-"))
            continue
        out[path] = got
        if None in alone:  # CPU mode: residual-8 only was timed alone
            continue
        summed = 2 * sum(alone)  # plain nets cost what residual ones of the same depth do
        rows.append(make_row(f"together/{path}", name, depthlab=[got["iteration_ms"]],
                             baseline=[summed], ratios=[got["iteration_ms"] / summed],
                             unit="ms/step", target=("<=", 1.0),
                             baseline_is="sum of the four step times alone", detail=got))
        say(f"  {got['iteration_ms']:.2f} ms per iteration of the four vs {summed:.2f} ms summed")
    return rows, out


# --- the whole table ---------------------------------------------------------------------------

# written(result, rows): called with the table so far after every row (gpu_benchmark.py writes
# gpu.json and gpu.md there, so that a benchmark cut by its timeout still leaves its rows)
Written = Callable[[dict[str, Any], list[Row]], None]


def run(s: GpuSettings, chosen: set[str], *, cuda: bool, worker: Worker, data_root: Path,
        cache_dir: Path, command: str = "", git: str | None = None,
        cpu_mode: bool = False, written: Written | None = None) -> tuple[dict[str, Any], list[Row]]:
    """The chosen parts (nets, data, together, ddp) in that order: gpu.json's result and its rows
    (result["complete"] false until the last). One net's or one row's failure is a skipped row
    saying why, never the end of the table."""
    from depthlab.bench.feeding import data_row

    if cuda:
        torch.backends.cudnn.benchmark = False  # what depthlab runs with: heuristics, no autotuning
    result: dict[str, Any] = {
        "date": now(), "command": command, "git": git, "cpu_mode": cpu_mode,
        "machine": machine_block(torch.get_num_threads()), "gpu": gpu_block(),
        "settings": asdict(s), "nets": {},
    }
    started = time.perf_counter()
    rows: list[Row] = []

    def failed(key: str, name: str, err: Exception) -> Row:
        row = failed_row(key, name, err)
        say(f"{name}: {row.note[len('skipped: '):]}")
        return row

    def measured(complete: bool = False) -> None:
        result.update(seconds=time.perf_counter() - started, rows=[asdict(r) for r in rows],
                      complete=complete)
        if written is not None:
            written(result, rows)

    if "nets" in chosen:
        for spec in s.nets:
            key = f"residual-{spec.depth}-{spec.layout}"
            try:
                got, net = net_rows(s, spec, cuda)
            except Exception as err:  # noqa: BLE001  (one net's failure must not cost the others)
                rows.append(failed(f"train/{key}", f"training step: {spec.label}", err))
            else:
                rows += got
                result["nets"][key] = net
            measured()
            if cuda:
                torch.cuda.empty_cache()
    if "data" in chosen:
        dev = torch.device(s.device)
        try:
            rows.append(data_row("data/cifar10-device", f"data feeding on {dev}: CIFAR-10 train, "
                                 f"batch {s.data_batch}, crop + flip", batch=s.data_batch,
                                 batches=s.data_batches, reps=s.reps, data_root=data_root,
                                 cache_dir=cache_dir, device=dev))
        except Exception as err:  # noqa: BLE001
            rows.append(failed("data/cifar10-device", "data feeding", err))
        measured()
    if "together" in chosen:
        got, result["together"] = together_rows(s, cuda, result["nets"], worker)
        rows += got
        measured()
    if "ddp" in chosen:
        try:
            rows.append(ddp_row(s))
        except Exception as err:  # noqa: BLE001
            rows.append(failed("ddp/residual-20-cifar", "DDP of one process", err))
    measured(complete=True)
    return result, rows
