"""The processor's peak FLOP/s (cores x clock x FLOPs per cycle per core), its assumptions written out, and achieved training GFLOP/s."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from depthlab import machine

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(name: str) -> str | None:
    try:
        with open(CPUINFO) as f:
            for raw in f:
                key, _, value = raw.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def clock_ghz() -> tuple[float | None, str]:
    """The core clock and where it was read: /proc/cpuinfo's 'cpu MHz' (the current or, in a
    VM, the nominal clock; turbo may run higher), else lscpu's 'CPU max MHz'."""
    mhz = _cpuinfo("cpu MHz")
    if mhz:
        return float(mhz) / 1000, "/proc/cpuinfo 'cpu MHz'"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "CPU max MHz" and value.strip():
            return float(value) / 1000, "lscpu 'CPU max MHz'"
    return None, "no clock found"


def flops_per_cycle(flags: frozenset[str], vendor: str,
                    family: int | None) -> tuple[int, int | None, str, str]:
    """(fp32 FLOPs per cycle per core, bf16's or None without native bf16, and the assumption
    behind each). An FMA is 2 FLOPs (multiply + add) per lane."""
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family == 25:  # Zen 4: 512-bit ops run as two 256-bit halves
            fp32, why = 32, "AVX-512 on Zen 4: 2 FMA units x 8 fp32 lanes (256-bit halves) x 2"
        else:
            fp32, why = 64, ("AVX-512: 2 FMA units x 16 fp32 lanes x 2 (Zen 5 and most Xeons; "
                             "a part with one 512-bit FMA unit has half)")
    elif "avx2" in flags and "fma" in flags:
        fp32, why = 32, "AVX2: 2 FMA units x 8 fp32 lanes x 2"
    elif "avx" in flags:
        fp32, why = 16, "AVX without FMA: 1 add + 1 multiply x 8 fp32 lanes"
    else:
        fp32, why = 8, "SSE: 1 add + 1 multiply x 4 fp32 lanes"
    if "amx_bf16" in flags:
        bf16, why_bf16 = 1024, "AMX-BF16 tiles: 1024 bf16 FLOPs per cycle per core (Intel's figure)"
    elif "avx512_bf16" in flags:
        bf16, why_bf16 = 2 * fp32, ("AVX512_BF16 dot products (VDPBF16PS: 2 bf16 multiply-adds "
                                    "per fp32 lane): 2x fp32's")
    else:
        bf16, why_bf16 = None, "no native bf16: bf16 is emulated in fp32, no bf16 peak"
    return fp32, bf16, why, why_bf16


@dataclass(frozen=True)
class Peak:
    cores: int  # cores the measurement used: torch's intra-op threads, at most the cores allowed
    ghz: float | None
    clock_from: str
    fp32_per_cycle: int
    bf16_per_cycle: int | None
    fp32_assumption: str
    bf16_assumption: str

    def per_cycle(self, precision: str) -> int | None:
        return self.bf16_per_cycle if precision == "bf16" else self.fp32_per_cycle

    def gflops(self, precision: str) -> float | None:
        per = self.per_cycle(precision)
        return None if per is None or self.ghz is None else self.cores * self.ghz * per

    def formula(self, precision: str) -> str:
        """e.g. "fp32 peak 1 core x 2.60 GHz x 64 FLOP/cycle = 166 GFLOP/s (AVX-512: ...)"."""
        per, peak = self.per_cycle(precision), self.gflops(precision)
        why = self.bf16_assumption if precision == "bf16" else self.fp32_assumption
        if peak is None:
            return f"no {precision} peak ({'no clock found' if self.ghz is None else why})"
        return (f"{precision} peak {self.cores} core{'s' if self.cores != 1 else ''} x "
                f"{self.ghz:.2f} GHz x {per} FLOP/cycle = {peak:,.0f} GFLOP/s ({why})")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fp32_gflops": self.gflops("fp32"), "bf16_gflops": self.gflops("bf16"),
                "formula": {p: self.formula(p) for p in ("fp32", "bf16")}}


def peak(threads: int) -> Peak:
    """This processor's peak for `threads` intra-op threads (one core each)."""
    flags = machine.cpu_flags()
    family = _cpuinfo("cpu family")
    fp32, bf16, why, why_bf16 = flops_per_cycle(flags, _cpuinfo("vendor_id") or "",
                                                int(family) if family and family.isdigit() else None)
    ghz, where = clock_ghz()
    return Peak(cores=max(1, min(threads, machine.cpu_count())), ghz=ghz, clock_from=where,
                fp32_per_cycle=fp32, bf16_per_cycle=bf16, fp32_assumption=why,
                bf16_assumption=why_bf16)


def training_flops(forward_flops: int) -> int:
    """FLOPs of one training image: 3 x forward (the forward's matmuls, and backward's two:
    the gradient with respect to the input and to the weights); a multiply-add counts 2."""
    return 3 * forward_flops


FLOPS_FORMULA = ("training FLOPs/image = 3 x forward FLOPs (forward + backward's two matmuls; "
                 "depthlab.models.describe, multiply-add = 2); achieved GFLOP/s = img/s x that / 1e9; "
                 "peak = cores x clock x FLOPs per cycle per core")
