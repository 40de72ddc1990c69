"""What a benchmark's result files hold: the machine (from depthlab.machine), the command, the markdown pages."""

from __future__ import annotations

import json
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from depthlab import machine
from depthlab.bench.rows import Row, markdown_rows, notes


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def machine_block(threads: int, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON's "machine": the keys result files have always had (cpu, cores, torch_threads,
    torch, torchvision, wandb, python, os, cuda (bool), hostname, load_average_start), built
    from depthlab.machine.describe(), and that description itself under "describe"."""
    import torch

    info = info or machine.describe()
    return {
        "cpu": info["processor"], "cores": info["cores"], "torch_threads": threads,
        "torch": info["torch"], "torchvision": _version("torchvision"), "wandb": _version("wandb"),
        "python": info["python"], "os": info["os"], "cuda": torch.cuda.is_available(),
        "hostname": info["host"], "load_average_start": load_average(),
        "native_bf16": info["native_bf16"], "bf16_instructions": info["bf16_instructions"],
        "line": machine.line(info), "describe": info,
    }


def gpu_block(info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON's "gpu" (gpu.json, env.json): the first CUDA device of describe() under the
    keys gpu.md and gpu_check read (gpu, gpu_memory_gib, capability, multiprocessors, driver),
    with torch's CUDA and cuDNN versions; "gpus" lists every device."""
    info = info or machine.describe()
    gpus = info.get("gpus") or []
    block: dict[str, Any] = {"cuda_available": bool(gpus), "torch": info["torch"],
                             "cuda": info["cuda"], "cudnn": info["cudnn"], "gpus": gpus}
    if gpus:
        g = gpus[0]
        block.update(gpu=g["name"], gpu_memory_gib=g["memory_gib"], capability=g["capability"],
                     multiprocessors=g["multiprocessors"], driver=g.get("driver"))
    return block


def command_line(script: Path, argv: list[str]) -> str:
    """`python <script> <argv>`, the script's path relative to the working directory."""
    script = script.resolve()
    try:
        shown = str(script.relative_to(Path.cwd()))
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *argv])


# written by scripts/gpu_bundle.sh where the checkout is: the GPU machine's copy has no .git
COMMIT_FILE = Path(".gpu") / "git-commit"


def git_commit(root: Path) -> str | None:
    """The commit of the tree at `root`: git's (depthlab.machine.git_commit) in a checkout, else
    DEPTHLAB_GIT, else what scripts/gpu_bundle.sh recorded in .gpu/git-commit before the tree
    was copied."""
    if (root / ".git").exists():
        return machine.git_commit(root)
    try:
        recorded = (root / COMMIT_FILE).read_text().strip()
    except OSError:
        recorded = ""
    return os.environ.get("DEPTHLAB_GIT") or recorded or None


def write_text(path: Path, text: str) -> None:
    """Whole or not at all: a process killed mid-write leaves the previous file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write(out: Path, stem: str, result: dict[str, Any], page: str) -> tuple[Path, Path]:
    """<out>/<stem>.json and <out>/<stem>.md (rewritten after every row by the GPU benchmark)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / f"{stem}.json", out / f"{stem}.md"
    write_text(paths[0], json.dumps(result, indent=2) + "\n")
    write_text(paths[1], page)
    return paths


def _loads(values: list[float] | None) -> str:
    return ", ".join(f"{x:.2f}" for x in values) if values else "-"


HOW = ("Each ratio is measured side by side in one process, the two sides interleaved rep by rep;"
       " `ratio` is the median of the per-rep ratios, `spread` their min-max. What each row runs:"
       " scripts/README.md.")


def cpu_page(result: dict[str, Any], rows: list[Row]) -> str:
    """results/benchmarks/latest.md: the date, machine, load, command and wall time, the table, the notes."""
    m = result["machine"]
    lines = [
        "# depthlab benchmark",
        "",
        f"- date: {result['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
        f"({m['torch_threads']} intra-op thread{'s' if m['torch_threads'] != 1 else ''}), "
        f"torchvision {m['torchvision']}, wandb {m['wandb']}, Python {m['python']}, {m['os']}"
        + (", CUDA available" if m["cuda"] else ", CPU only")
        + (f", native bf16 ({', '.join(m['bf16_instructions'])})" if m.get("native_bf16")
           else ", no native bf16" if "native_bf16" in m else ""),
        "- load average (1, 5, 15 min) at start: " + _loads(m["load_average_start"])
        + "; at end: " + _loads(result["load_average_end"]),
        f"- command: `{result['command']}`" + (f" (git {result['git']})" if result.get("git") else ""),
        f"- wall time: {result['seconds']:.0f} s",
        "",
        HOW,
        "",
        markdown_rows(rows),
    ]
    if notes(rows):
        lines += ["", *notes(rows)]
    return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def gpu_page(result: dict[str, Any], rows: list[Row]) -> str:
    """results/benchmarks/gpu.md: the device and host, the table, the step times per net, the notes."""
    from depthlab.analysis import markdown_table

    m, g = result["machine"], result["gpu"]
    device = (f"{g['gpu']} ({g['gpu_memory_gib']} GiB, compute capability {g['capability']}, "
              f"driver {g.get('driver') or '?'}), CUDA {g['cuda']}, cuDNN {g['cudnn']}"
              if g.get("gpu") else "no GPU: CPU mode, tiny settings, the numbers mean nothing")
    lines = [
        "# depthlab benchmark: the GPU rows", "",
        f"- date: {result['date']}",
        f"- device: {device}",
        f"- host: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, torchvision {m['torchvision']}, "
        f"Python {m['python']}, {m['os']}",
        f"- command: `{result['command']}`" + (f" (git {result['git']})" if result.get("git") else ""),
        f"- wall time: {result['seconds']:.0f} s"
        + ("" if result.get("complete", True) else
           " so far: rows are written as they are measured, and this run has not finished them (cut?)"),
        "",
        HOW.replace("the two sides", "the sides"), "",
        markdown_rows(rows), "",
        "Step times (ms, medians) and the faster path per net, as scripts/gpu_check.py reads them:", "",
        markdown_table(["net", "batch", "hand loop", "depthlab eager", "depthlab CUDA graph", "faster"],
                       [[k, str(v["batch"]), *(_ms(v["step_ms"][p]) for p in ("hand", "eager", "graphs")),
                         v["fast_path"]] for k, v in result["nets"].items()]),
    ]
    return "\n".join(lines + ([""] + notes(rows) if notes(rows) else [])) + "\n"
