"""The CPU speed rows: bf16 + channels_last and torch.compile against fp32 eager and the hand loop, with GFLOP/s against the peak."""

from __future__ import annotations

import gc
import statistics
from pathlib import Path
from typing import Any, Callable

import torch

from depthlab import machine
from depthlab.bench.nets import ModelSpec, compose, fresh_model, run_side, synthetic_batches, train_overrides
from depthlab.bench.peak import FLOPS_FORMULA, Peak, peak, training_flops
from depthlab.bench.reference import hand_optimizer, hand_side, hand_step
from depthlab.bench.rows import Row, ratio_row, skipped_row
from depthlab.bench.timing import interleaved, quiet_progress, say
from depthlab.engine.precision import AUTOCAST_DTYPES
from depthlab.models import describe

# gradient flow recorded at step 0 and the last step only: both outside the timed windows
# (the first window is dropped, and so is the last: see speed_rows); its cost is the gradflow rows'
EVERY = 10**9
FAST = ("trainer.precision=bf16", "trainer.channels_last=true")
VARIANTS = {"fp32": (), "bf16": FAST, "compile": ("trainer.compile=true",)}
TARGETS = {"bf16-vs-hand": (">=", 0.97), "bf16-vs-fp32": (">=", 1.6), "compile-vs-eager": (">=", 1.0)}
NO_BF16 = ("this processor has no native bf16 (no AVX512_BF16 or AMX-BF16 in /proc/cpuinfo): "
           "bf16 would be emulated in fp32, so the row would measure the emulation")


# --- what a step's time is made of ----------------------------------------------------------

def classify(op: str) -> str:
    name = op.lower()
    if "conv" in name:
        return "convolution"
    if "batch_norm" in name or "batchnorm" in name:
        return "batch norm"
    return "other"


def op_shares(cfg: dict[str, Any], batches: list[tuple[torch.Tensor, torch.Tensor]], data: Any,
              precision: str, channels_last: bool, compiled: bool = False,
              steps: int = 2) -> dict[str, Any]:
    """torch.profiler over `steps` hand-loop steps (after one untimed, which compiles when
    `compiled`): the share of CPU time (self time of every op) in convolutions (+ their
    backward), batch norm, and the rest (ReLU, adds, casts, concatenation, SGD, autograd
    and dispatch; under compile the fused kernels), and the seconds of each."""
    from torch.profiler import ProfilerActivity, profile

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = fresh_model(cfg, data).to(memory_format=fmt)
    optimizer = hand_optimizer(model, cfg["optim"])
    net = torch.compile(model) if compiled else model
    dtype = AUTOCAST_DTYPES.get(precision)
    xs = [(x.contiguous(memory_format=fmt), y) for x, y in batches[:steps + 1]]
    hand_step(net, optimizer, *xs[0], dtype)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x, y in xs[1:]:
            hand_step(net, optimizer, x, y, dtype)
    seconds = {"convolution": 0.0, "batch norm": 0.0, "other": 0.0}
    for event in prof.key_averages():
        seconds[classify(event.key)] += event.self_cpu_time_total / 1e6
    total = sum(seconds.values()) or 1.0
    return {**{k: v / total for k, v in seconds.items()}, "seconds": seconds,
            "images": sum(len(y) for _, y in xs[1:])}


def limits(shares: dict[str, Any], flops: int, peak_gflops: float | None,
           what: str = "hand-loop profile") -> str:
    """What limits a step, from its profile: the convolutions' share and their own GFLOP/s
    (all counted FLOPs are theirs, and the last linear layer's), or the memory-bound rest."""
    conv, bn, other = shares["convolution"], shares["batch norm"], shares["other"]
    conv_gflops = flops * shares["images"] / max(shares["seconds"]["convolution"], 1e-12) / 1e9
    of_peak = f" = {100 * conv_gflops / peak_gflops:.0f}% of peak" if peak_gflops else ""
    rest = (f"batch norm {100 * bn:.0f}%, ReLU/adds/casts/concatenation/SGD {100 * other:.0f}%"
            if bn else f"the fused batch norm/elementwise kernels, SGD and the rest {100 * other:.0f}%")
    return (f"{verdict(conv)} ({what}: convolutions {100 * conv:.0f}% of CPU time, at "
            f"{conv_gflops:,.0f} GFLOP/s{of_peak} by themselves; {rest})")


def verdict(conv_share: float) -> str:
    if conv_share >= 0.6:
        return ("limited by the convolutions: small ones (16-64 channels, 32 px and below) keep "
                "oneDNN well under peak")
    return "limited by memory-bound batch norm and elementwise ops more than by the convolutions"


def inductor_cache() -> str:
    """How many compiled kernels inductor's on-disk cache held before this benchmark: a
    compile that finds its kernels there takes seconds, a cold one minutes."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        folder = Path(cache_dir())
    except Exception:  # noqa: BLE001  (a torch without that module: say so, measure anyway)
        return "inductor's on-disk cache: not found"
    kernels = sum(1 for _ in folder.rglob("*.so")) if folder.is_dir() else 0
    return (f"inductor's on-disk cache ({folder}) held {kernels} compiled kernels before this "
            f"benchmark" + (": this compile was cold" if not kernels else
                            " (kernels found there are not compiled again: a cold compile is longer)"))


# --- the rows ---------------------------------------------------------------------------------

def _guarded(name: str, side: Callable[[], float], failed: dict[str, str]) -> Callable[[], float]:
    """A side that, once it has raised, is left out (its rows say why) and returns nan."""
    def once() -> float:
        if name in failed:
            return float("nan")
        try:
            return side()
        except Exception as err:  # noqa: BLE001  (any failure of that path, reported in its rows)
            failed[name] = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
            say(f"  {name} FAILED: {failed[name]}")
            return float("nan")
    return once


def speed_rows(specs: tuple[ModelSpec, ...], reps: int, threads: int) -> list[Row]:
    """Per net, side by side in one loop: depthlab bf16 + channels_last against the hand loop
    at the same precision and memory format and against depthlab fp32 eager, and
    torch.compile (fp32) against fp32 eager; GFLOP/s of every side against the peak.
    Each run() trains warm + steps + warm steps, logged every warm: the first window (step
    0's one-off costs, a compile) and the last (the last step, which records gradient flow)
    are dropped, so the timed steps are spec.steps, the hand loop's too."""
    native = machine.cpu_bf16()
    top = peak(threads)
    cache = inductor_cache()
    rows: list[Row] = []
    for spec in specs:
        assert spec.steps % spec.warm == 0, "steps must be a multiple of warm (run()'s log interval)"
        overrides = {v: train_overrides(spec, *extra, every=EVERY, tail=spec.warm)
                     for v, extra in VARIANTS.items()}
        cfgs = {v: compose(o) for v, o in overrides.items()}
        batches, data = synthetic_batches(cfgs["fp32"])
        flops = training_flops(describe(fresh_model(cfgs["fp32"], data))["flops"])
        logs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        sides = {v: run_side(cfgs[v], spec.batch, logs[v], drop_last=True)
                 for v in VARIANTS if v != "bf16" or native}
        if native:
            sides["hand_bf16"] = hand_side(cfgs["bf16"], batches, data, spec.warm, steps=spec.steps,
                                           precision="bf16", channels_last=True)
        failed: dict[str, str] = {}
        say(f"speed: {spec.label}, batch {spec.batch}, {spec.warm} + {spec.steps} steps, "
            f"{len(sides)} sides ({', '.join(sides)}) x {reps} reps")
        with quiet_progress():
            got = interleaved(reps, {v: _guarded(v, f, failed) for v, f in sides.items()})
        shares = {"fp32": op_shares(cfgs["fp32"], batches, data, "fp32", False)}
        if native:
            shares["bf16"] = op_shares(cfgs["bf16"], batches, data, "bf16", True)
        if "compile" not in failed:
            try:
                shares["compile"] = op_shares(cfgs["fp32"], batches, data, "fp32", False, compiled=True)
            except Exception as err:  # noqa: BLE001  (the row keeps its timing; its note says so)
                say(f"  compiled profile FAILED: {type(err).__name__}: {err}"[:300])
        rows += _net_rows(spec, got, failed, logs, flops, top, shares, native, overrides, cache)
        gc.collect()
    return rows


def _net_rows(spec: ModelSpec, got: dict[str, list[float]], failed: dict[str, str],
              logs: dict[str, list[dict[str, float]]], flops: int, top: Peak,
              shares: dict[str, dict[str, Any]], native: tuple[str, ...],
              overrides: dict[str, list[str]], cache: str) -> list[Row]:
    label = f"{spec.label}, batch {spec.batch}"
    precision_of = {"fp32": "fp32", "compile": "fp32", "bf16": "bf16", "hand_bf16": "bf16"}

    def gflops(side: str) -> float | None:
        ok = side in got and side not in failed
        return statistics.median(got[side]) * flops / 1e9 if ok else None

    def achieved(side: str) -> str:
        g, p = gflops(side), precision_of[side]
        peak_g = top.gflops(p)
        if g is None:
            return f"{side} -"
        return f"{side} {g:,.1f}" + (f" ({100 * g / peak_g:.1f}% of the {p} peak)" if peak_g else "")

    detail = {"batch": spec.batch, "warm_steps": spec.warm, "timed_steps": spec.steps,
              "gradflow_every": EVERY, "img_s": got, "failed": failed,
              "flops": {"forward_per_image": flops // 3, "training_per_image": flops,
                        "formula": FLOPS_FORMULA, "achieved_gflops": {s: gflops(s) for s in got},
                        "peak": top.as_dict()},
              "op_shares": shares, "overrides": overrides}

    def row(kind: str, name: str, a: str, b: str, baseline_is: str, note: str, **extra: Any) -> Row:
        key, target = f"speed/{kind}/{spec.key}", TARGETS[kind]
        gone = [side for side in (a, b) if side in failed]
        if gone:
            return skipped_row(key, name, f"{gone[0]} failed: {failed[gone[0]]}",
                               f"{target[0]} {target[1]:g}x")
        peaks = sorted({precision_of[a], precision_of[b]})
        flops_note = (f"GFLOP/s: {achieved(a)}, {achieved(b)}; "
                      + "; ".join(top.formula(p) for p in peaks)
                      + f"; clock from {top.clock_from}; {flops // 3 / 1e6:,.1f} MFLOP forward per "
                        f"image, x 3 for training (forward + backward's two matmuls)")
        return ratio_row(key, name, got, a, b, target=target, baseline_is=baseline_is,
                         note=f"{note}; {flops_note}", detail={**detail, **extra})

    rows = []
    names = {"bf16-vs-hand": f"bf16 + channels_last, depthlab vs hand loop: {label}",
             "bf16-vs-fp32": f"bf16 + channels_last vs fp32: {label}"}
    if native:
        lim16 = limits(shares["bf16"], flops, top.gflops("bf16"), "bf16 + channels_last hand-loop profile")
        rows.append(row("bf16-vs-hand", names["bf16-vs-hand"], "bf16", "hand_bf16",
                        "hand-written loop, bf16 autocast + channels_last", lim16))
        conv16, conv32 = shares["bf16"]["convolution"], shares["fp32"]["convolution"]
        rows.append(row("bf16-vs-fp32", names["bf16-vs-fp32"], "bf16", "fp32", "depthlab fp32 eager",
                        f"bf16 speeds up the convolutions (oneDNN, {', '.join(native)}) more than "
                        f"batch norm and elementwise ops: the non-convolution share of CPU time "
                        f"goes from {100 * (1 - conv32):.0f}% (fp32) to {100 * (1 - conv16):.0f}% "
                        f"(bf16); {verdict(conv16)}"))
    else:
        rows += [skipped_row(f"speed/{k}/{spec.key}", n, NO_BF16, f"{TARGETS[k][0]} {TARGETS[k][1]:g}x")
                 for k, n in names.items()]
    compile_s = [max(0.0, c["first_window_s"] - e["first_window_s"])
                 for c, e in zip(logs["compile"], logs["fp32"])]
    first_run = {v: logs[v][0]["run_s"] if logs[v] else None for v in ("compile", "fp32")}
    note = "compile: " + (
        f"its first window took {compile_s[0]:.1f} s longer than eager's in the first run"
        + (f", {statistics.median(compile_s[1:]):.1f} s in the later ones (the compiled code is "
           f"reused in-process)" if len(compile_s) > 1 else "")
        + (f"; the first run() took {first_run['compile']:.1f} s vs eager's {first_run['fp32']:.1f} s "
           f"(evaluation's graph compiled too)" if first_run["compile"] and first_run["fp32"] else "")
        + f"; {cache}" if compile_s else "no compile time")
    conv32 = shares["fp32"]["convolution"]
    if "compile" in shares:
        note += (f"; the convolutions stay oneDNN calls, batch norm + ReLU + adds are fused "
                 f"(fp32 eager: convolutions {100 * conv32:.0f}% of CPU time); "
                 + limits(shares["compile"], flops, top.gflops("fp32"), "compiled hand-loop profile"))
    else:
        note += "; " + limits(shares["fp32"], flops, top.gflops("fp32"), "fp32 eager hand-loop profile")
    rows.append(row("compile-vs-eager", f"torch.compile vs eager, fp32: {label}", "compile", "fp32",
                    "depthlab fp32 eager", note, compile_seconds=compile_s, first_run_seconds=first_run))
    for r in rows:
        if r.ratio is not None:
            say(f"  {r.key}: {r.ratio:.3f}x (spread {r.spread[0]:.3f}-{r.spread[1]:.3f})")
    return rows
