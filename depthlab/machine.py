"""What machine a number was measured on: one description for runs, plans, reports and benchmarks.

The same seed gives different curves on an AMD EPYC and on an Intel Xeon (oneDNN picks other
kernels), and bf16 is native on some x86 processors (AVX512_BF16, AMX) and emulated on others,
so every record says which processor it ran on and whether it has native bf16.

    describe()        # dict: host, processor, cores, native_bf16, torch/python versions, CUDA devices
    line()            # one line for run summaries and report headers
    cpu_bf16()        # the processor's bf16 instructions, e.g. ("avx512_bf16",) or ()
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

# /proc/cpuinfo flags that mean bf16 arithmetic in hardware (x86): AVX512_BF16 (dot products,
# conversions; AMD Zen 4+, Intel Cooper Lake+) and AMX-BF16 (tile matrix multiply; Sapphire
# Rapids+). oneDNN uses either for bf16 convolutions; without them bf16 is emulated in fp32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str, cpuinfo: Path = CPUINFO) -> str | None:
    try:
        with open(cpuinfo) as f:
            for raw in f:
                key, _, value = raw.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The processor's name (/proc/cpuinfo's model name), else what platform knows."""
    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or platform.machine()


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    return frozenset((_cpuinfo_field("flags", cpuinfo) or "").split())


def cpu_bf16(cpuinfo: Path = CPUINFO) -> tuple[str, ...]:
    """The processor's native bf16 instructions (empty: bf16 would be emulated)."""
    flags = cpu_flags(cpuinfo)
    return tuple(f for f in BF16_FLAGS if f in flags)


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's short commit (+dirty), or DEPTHLAB_GIT where the tree has no .git
    (the GPU machine's copy of the work tree)."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    if sha:
        return sha + ("+dirty" if dirty else "")
    return os.environ.get("DEPTHLAB_GIT") or None


def cuda_devices() -> list[dict[str, Any]]:
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append({"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                    "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count})
    return out


def describe() -> dict[str, Any]:
    """Everything a result file records about the machine (cheap: no subprocess, no timing)."""
    import torch

    bf16 = cpu_bf16()
    info: dict[str, Any] = {
        "host": socket.gethostname(), "arch": platform.machine(), "os": f"{platform.system()} {platform.release()}",
        "processor": cpu_model(), "cores": cpu_count(), "native_bf16": bool(bf16),
        "bf16_instructions": list(bf16), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "gpus": cuda_devices(),
    }
    return info


def line(info: dict[str, Any] | None = None) -> str:
    """e.g. "vm: AMD EPYC (x86_64, 2 cores, native bf16: avx512_bf16), Linux, torch 2.14.1"."""
    info = info or describe()
    bf16 = ("native bf16: " + ", ".join(info["bf16_instructions"]) if info["native_bf16"]
            else "no native bf16")
    gpus = "".join(f"; GPU {g['name']}" for g in info.get("gpus") or [])
    return (f"{info['host']}: {info['processor']} ({info['arch']}, {info['cores']} cores, {bf16}), "
            f"{info['os'].split()[0]}, torch {info['torch']}{gpus}")
