"""Numeric precision and memory format of a run: autocast, fp16's scaler, and what `auto` means.

    make_precision("bf16", device)       # Precision: name, autocast() context, GradScaler (fp16 only)
    choose_fast_path(device, timer)      # FastPath for trainer.precision=auto / channels_last=auto

fp32 (contiguous, eager) is the reference every other setting is compared with. `auto` picks
the fast path by device: on CUDA what `trainer=gpu` means (bf16 autocast + channels_last); on a
CPU bf16 + channels_last only where the processor has native bf16 (AVX512_BF16 or AMX, see
depthlab.machine) AND a short timing of the net's training step says it is faster than fp32;
fp32 otherwise (emulated bf16 is slower, so a fixed rule would be wrong on one machine or the
other). The weights, their gradients and every gradient-flow statistic stay fp32 under autocast.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch

from depthlab import machine
from depthlab.engine.errors import PrecisionError

# The one autocast dtype map (fp32 runs without autocast).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
# bf16 is chosen on a CPU only when its timed step is at least this much faster than fp32's:
# a margin over timing noise (a few %), so a re-plan of the same sweep makes the same choice.
# Measured gains on CPUs with native bf16 are 1.8-2.1x (issue #25), on emulated bf16 below 1.
MIN_SPEEDUP = 1.15


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16
    autocast: Callable[[], ContextManager[Any]]
    scaler: torch.amp.GradScaler | None  # fp16 only


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 autocast runs on the CPU and on CUDA; fp16 needs CUDA (its GradScaler).
    The rule of config.check_config, applied again once `auto` is resolved."""
    if precision == "fp16" and device.type != "cuda":
        raise PrecisionError(f"trainer.precision=fp16 needs a CUDA device, and this run is on "
                             f"{device}; use bf16 or fp32 on the CPU")


def make_precision(name: str, device: torch.device) -> Precision:
    check_precision(name, device)
    dtype = AUTOCAST_DTYPES.get(name)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
    return Precision(name, autocast, scaler)


@dataclass(frozen=True)
class FastPath:
    """What trainer.precision / trainer.channels_last resolve to, and why (for the plan,
    summary.json and the report)."""
    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    reason: str
    speedup: float | None = None  # timed bf16 + channels_last over fp32, where it was timed

    def overrides(self) -> list[str]:
        return [f"trainer.precision={self.precision}",
                f"trainer.channels_last={str(self.channels_last).lower()}"]


def is_auto(trainer: dict[str, Any]) -> bool:
    return trainer.get("precision") == "auto" or trainer.get("channels_last") == "auto"


# timer(precision, channels_last) -> seconds of one training step of the net(s) in question
Timer = Callable[[str, bool], float]


def choose_fast_path(trainer: dict[str, Any], device: torch.device, timer: Timer | None,
                     bf16_instructions: tuple[str, ...] | None = None) -> FastPath:
    """Resolve `auto` in trainer.precision and trainer.channels_last; a value typed out
    (fp32, true, ...) is always honoured. `timer` is called only on a CPU with native bf16,
    once per setting; `bf16_instructions` defaults to this processor's (tests fake it)."""
    precision, layout = trainer.get("precision", "fp32"), trainer.get("channels_last", False)
    if precision != "auto" and layout != "auto":
        return FastPath(precision, bool(layout), "as configured")
    if device.type == "cuda":  # trainer=gpu's choice
        return FastPath("bf16" if precision == "auto" else precision,
                        True if layout == "auto" else bool(layout), "auto on CUDA: as trainer=gpu")
    native = machine.cpu_bf16() if bf16_instructions is None else bf16_instructions
    # the fast path and the reference it must beat, each setting typed out kept as typed
    fast = ("bf16" if precision == "auto" else precision, True if layout == "auto" else bool(layout))
    reference = ("fp32" if precision == "auto" else precision, False if layout == "auto" else bool(layout))
    if precision == "auto" and not native:  # emulated bf16 is slower than fp32: nothing to time
        return FastPath(*reference, "auto: this CPU has no native bf16 (AVX512_BF16 or AMX), so fp32")
    if timer is None:
        return FastPath(*reference, "auto: not timed, so the reference")
    speedup = timer(*reference) / max(timer(*fast), 1e-12)
    what = f"{fast[0]}{' + channels_last' if fast[1] else ''}"
    basis = f"native {', '.join(native)}; " if native and fast[0] == "bf16" else ""
    if speedup >= MIN_SPEEDUP:
        return FastPath(*fast, f"auto: {basis}{what} timed {speedup:.2f}x faster than "
                        f"{reference[0]}", speedup)
    return FastPath(*reference, f"auto: {basis}{what} timed only {speedup:.2f}x {reference[0]}'s "
                    f"speed (below {MIN_SPEEDUP}x), so {reference[0]}", speedup)
