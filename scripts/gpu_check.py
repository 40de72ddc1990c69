#!/usr/bin/env python
"""All of depthlab's GPU work in one command, inside one wall-time budget (issue #16).

    bash scripts/gpu_check.sh --pack "$OUT"          # on a GPU machine: about 9 minutes
    python scripts/gpu_check.py --cpu --out /tmp/gc  # CPU mode: tiny, synthetic, for CI

In order, everything under --out:
  1. env.json: GPU, driver, torch/CUDA/cuDNN versions, host, git commit
  2. data: CIFAR-10's JPEG copy, found or unpacked (from .gpu/, shared/data/ or
     ../shared/data/), decoded once into depthlab's cache; CPU mode: synthetic only
  3. the CUDA-graph tests (graph == eager), whose result gates the fast path
  4. the benchmark's GPU rows (scripts/gpu_benchmark.py): results/benchmarks/gpu.md/.json
  5. Fig. 6: plain and residual nets of depth 20 and 56, all four at once on the one GPU,
     experiment=resnet_cifar_paper trainer=gpu; the full 64k iterations if the benchmark's
     step times say they fit the budget left, else the iterations that fit (milestones
     stay at 50% and 75%, fractions of the run); the other CUDA tests run beside it
  6. results/gpu-fig6/: depthlab report of the four runs, with the paper's numbers and the
     choice of length written at the top; summary.md: what ran, how long, what came out
  --pack DIR: DIR/gpu_check.tar.gz (results/, logs/, the runs without checkpoints,
  summary.md, env.json), DIR/summary.md and DIR/gpu_check.log: what the device tool brings back.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAPER_TEST_ERROR = {20: 8.75, 56: 6.97}  # He et al. 2015, Table 6: ResNet-20 / ResNet-56, %
FULL_ITERATIONS = 64000  # the paper's schedule (conf/experiment/resnet_cifar_paper.yaml)
ARCHIVE = "cifar10-jpeg.tar.gz"
# the CUDA tests: the graph tests first (they gate the fast path), the rest beside Fig. 6
GRAPH_TESTS = ["tests/engine/test_cuda_graphs.py", "-m", "not slow"]
OTHER_CUDA_TESTS = ["tests/cli/test_accelerated.py", "tests/data/test_data_device_loader.py",
                    "tests/engine/test_cuda_graphs.py::test_a_run_with_cuda_graphs_writes_eager_gradient_flow",
                    "-k", "cuda or every_device"]


@dataclass
class Mode:
    """What differs between the GPU run and the CPU mode CI runs."""

    cpu: bool
    budget_s: float  # the whole command's wall time
    reserve_s: float  # kept for the report and the pack after training
    full_iterations: int  # the recipe's length (CPU mode: a few steps)
    fig6: list[str] = field(default_factory=list)  # overrides beyond the recipe


def mode(cpu: bool, budget: float | None) -> Mode:
    if cpu:
        return Mode(cpu=True, budget_s=budget or 240, reserve_s=30, full_iterations=6, fig6=[
            "data=synthetic", "data.train_size=96", "data.test_size=64", "trainer.device=cpu",
            "trainer.precision=fp32", "trainer.channels_last=false", "trainer.batch_size=16",
            "trainer.eval_batch_size=64", "trainer.threads=1", "trainer.log_every=2",
            "trainer.eval_every=1", "gradflow.every=2", "hydra.launcher.n_jobs=2"])
    return Mode(cpu=False, budget_s=budget or 520, reserve_s=45, full_iterations=FULL_ITERATIONS,
                fig6=["trainer.log_every=100", "gradflow.every=100", "trainer.threads=4",
                      "hydra.launcher.n_jobs=4"])


class Log:
    """Lines to stdout and to <out>/gpu_check.log, each with the seconds since the start."""

    def __init__(self, path: Path) -> None:
        self.start = time.monotonic()
        self.file = path.open("a")

    def __call__(self, message: str) -> None:
        line = f"[gpu_check {self.elapsed():5.0f} s] {message}"
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def python() -> list[str]:
    return [sys.executable]


def env(data_root: Path | None) -> dict[str, str]:
    e = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_MODE="disabled", WANDB_SILENT="true")
    if data_root is not None:
        e["DEPTHLAB_DATA"] = str(data_root)
    return e


def run_logged(cmd: list[str], log_path: Path, timeout: float, environ: dict[str, str]) -> int:
    """Run cmd with its output in log_path; 124 when it ran past timeout (killed)."""
    with log_path.open("w") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=environ,
                                start_new_session=True)
        try:
            return proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            stop(proc)
            f.write(f"\n[gpu_check] killed after {timeout:.0f} s\n")
            return 124


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the process group (runs checkpoint and mark themselves interrupted), then
    SIGKILL if it is still there after `grace` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# --- 1. the machine ----------------------------------------------------------------------------

def environment() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "scripts"))
    import benchmark as B
    import gpu_benchmark as G
    import torch

    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **G.gpu_info(), "python": platform.python_version(), "host": platform.node(),
            "cpu": B.cpu_model(), "cores": B.cpu_count(),
            # the device tool's copy of the tree has no .git: DEPTHLAB_GIT=<commit> names it
            "git": B.git_commit() or os.environ.get("DEPTHLAB_GIT"),
            "torchvision": __import__("torchvision").__version__,
            "torch_threads": torch.get_num_threads()}
    return info


# --- 2. data -----------------------------------------------------------------------------------

def find_data(data_root: Path, log: Log, out: Path) -> Path | None:
    """The folder holding cifar10-jpeg/, unpacking the project's archive there if need be."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import benchmark as B

    if B.jpeg_root(data_root) is not None:
        log(f"data: CIFAR-10 JPEG copy already in {data_root}")
        return data_root
    for archive in (ROOT / ".gpu" / ARCHIVE, ROOT / "shared" / "data" / ARCHIVE,
                    ROOT.parent / "shared" / "data" / ARCHIVE):
        if archive.is_file():
            rc = run_logged(["bash", str(ROOT / "scripts" / "unpack_cifar.sh"), str(archive),
                             str(data_root)], out / "logs" / "unpack.log", 300, env(None))
            if rc == 0 and B.jpeg_root(data_root) is not None:
                log(f"data: unpacked {archive} into {data_root}")
                return data_root
            log(f"data: unpacking {archive} failed (logs/unpack.log)")
    log(f"data: NO CIFAR-10 (looked in {data_root}, .gpu/, shared/data/, ../shared/data/): "
        f"Fig. 6 cannot run; copy {ARCHIVE} into .gpu/ (scripts/gpu_bundle.sh)")
    return None


def decode_once(data_root: Path, cache_dir: Path, log: Log) -> None:
    """Decode the JPEGs into depthlab's uint8 cache here, once, so that the four runs
    started together load the cache instead of decoding 60,000 images each."""
    from depthlab.data import build_data

    start = time.monotonic()
    build_data({"name": "cifar10", "root": str(data_root), "download": False,
                "cache_dir": str(cache_dir)}, batch_size=128, eval_batch_size=500, device="cpu", seed=0)
    log(f"data: decoded into {cache_dir} ({time.monotonic() - start:.0f} s)")


# --- 3. tests ----------------------------------------------------------------------------------

def test_counts(xml_path: Path) -> dict[str, int]:
    """passed / failed / skipped from a junit file (pytest --junitxml)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return {"passed": 0, "failed": 0, "skipped": 0, "errors": 1}
    suites = [root] if root.tag == "testsuite" else list(root)
    n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    return {"passed": n["tests"] - n["failures"] - n["errors"] - n["skipped"],
            "failed": n["failures"], "skipped": n["skipped"], "errors": n["errors"]}


def passed_tests(xml_path: Path) -> set[str]:
    """Names of the tests that passed in a junit file (no failure, error or skip inside)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return set()
    return {case.get("name", "") for case in root.iter("testcase")
            if not any(child.tag in ("failure", "error", "skipped") for child in case)}


# the GPU tests that must pass before Fig. 6 may use the fast path
GRAPH_GATE = {"test_graph_replays_give_eager_gradient_flow_step_by_step[fp32-False]",
              "test_graph_replays_give_eager_gradient_flow_step_by_step[bf16-True]",
              "test_a_batch_of_another_shape_runs_eagerly_and_the_graph_goes_on"}


def pytest_cmd(selection: list[str], xml: Path) -> list[str]:
    return python() + ["-m", "pytest", *selection, "-q", "-p", "no:cacheprovider", "-rs",
                       f"--junitxml={xml}"]


# --- 5. Fig. 6 ---------------------------------------------------------------------------------

def plan_iterations(step_ms: dict[str, float], seconds: float, full: int,
                    together_ms: float | None = None) -> tuple[int, str]:
    """The iterations that fit `seconds` when plain and residual nets of depth 20 and 56 train
    at once on one GPU. An iteration of the four costs what the benchmark measured with the
    four at once (`together_ms`, the slowest net's step), else the sum of their step times
    alone (a conservative bound: the GPU runs one process's kernels at a time, and processes
    bound by launches on the CPU overlap); plus 15% for evaluation, checkpoints, logging."""
    if together_ms:
        base, how = together_ms, "measured with the four at once"
    else:
        base, how = 2 * (step_ms["20"] + step_ms["56"]), "the sum of the four step times alone"
    per_iteration = 1.15 * base / 1000
    fits = int(max(0.0, seconds) / per_iteration)
    if fits >= full:
        return full, (f"the full {full:,} iterations fit: {per_iteration * 1000:.1f} ms per "
                      f"iteration of the four nets ({how}, + 15%), {full * per_iteration:.0f} s "
                      f"of {seconds:.0f} s")
    n = max(fits // 100 * 100, min(full, 100))
    return n, (f"{n:,} of the paper's {full:,} iterations ({100 * n / full:.0f}%): "
               f"{per_iteration * 1000:.1f} ms per iteration of the four nets ({how}, + 15%) "
               f"leaves room for {fits:,} in the {seconds:.0f} s left; the lr drops at 50% and "
               f"75% of the run as in the paper (fractions)")


def fig6_overrides(m: Mode, iterations: int, graphs: bool, runs_dir: Path,
                   data_root: Path | None) -> list[str]:
    o = ["experiment=resnet_cifar_paper", "trainer=gpu", "depth=20,56", "logger=none",
         f"trainer.iterations={iterations}", f"trainer.cuda_graphs={str(graphs).lower()}",
         f"paths.runs_dir={runs_dir}", "sweep.name=gpu-fig6", "hydra/launcher=joblib", *m.fig6]
    if data_root is not None and not m.cpu:
        o.append(f"data.root={data_root}")
    return o


def read_runs(sweep: Path) -> dict[str, dict[str, Any]]:
    runs = {}
    for path in sorted(sweep.glob("*/summary.json")):
        try:
            runs[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return runs


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def fig6_section(runs: dict[str, dict[str, Any]], facts: dict[str, Any]) -> str:
    """The GPU facts and the paper's numbers, for the top of report.md and summary.md."""
    from depthlab.analysis import markdown_table

    rows = []
    for arch in ("plain", "residual"):
        for depth in (20, 56):
            s = runs.get(f"{arch}-{depth}-s0", {})
            paper = f"{PAPER_TEST_ERROR[depth]:.2f}" if arch == "residual" else "(Fig. 6 curve only)"
            rows.append([f"{arch}-{depth}", s.get("status", "missing"), str(s.get("steps_completed", "-")),
                         pct(s.get("final_train_error")), pct(s.get("final_test_error")), paper,
                         f"{s['wall_seconds'] / 60:.1f}" if s.get("wall_seconds") else "-"])
    r20, r56 = runs.get("residual-20-s0", {}), runs.get("residual-56-s0", {})
    if r20.get("final_train_error") is not None and r56.get("final_train_error") is not None:
        d_train = 100 * (r20["final_train_error"] - r56["final_train_error"])
        d_test = 100 * ((r20.get("final_test_error") or 0) - (r56.get("final_test_error") or 0))
        verdict = (f"residual-56 ends {'lower' if d_train > 0 else 'higher'} than residual-20 in "
                   f"training error by {abs(d_train):.2f} points ({'lower' if d_test > 0 else 'higher'}"
                   f" in test error by {abs(d_test):.2f}); one seed, so there is no seed spread to "
                   f"judge that difference against (seed=0,1 would give one)")
    else:
        verdict = "residual-20 and residual-56 did not both finish: no verdict"
    g = facts["env"]
    device = (f"{g.get('gpu')} (driver {g.get('driver') or '?'}), torch {g.get('torch')}, "
              f"CUDA {g.get('cuda')}, cuDNN {g.get('cudnn')}" if g.get("gpu")
              else f"no GPU (CPU mode: {g.get('cpu')}, torch {g.get('torch')}): tiny synthetic runs, "
                   f"the numbers mean nothing")
    lines = [
        "## On one GPU, beside the paper", "",
        f"- **Device:** {device}",
        f"- **Length:** {facts['length']}",
        f"- **Step:** trainer=gpu (bf16 autocast, channels_last), trainer.cuda_graphs="
        f"{str(facts['graphs']).lower()} ({facts['graphs_why']}); gradient flow every "
        f"{facts['every']} steps",
        f"- **Wall time:** {facts['train_s']:.0f} s for the four runs at once "
        f"(the whole check: {facts['total_s']:.0f} s)",
        f"- **Residual-56 vs residual-20:** {verdict}", "",
        markdown_table(["net", "status", "steps", "train error %", "test error %",
                        "paper test error %", "run wall min"], rows), "",
        "Paper: He et al. 2015, Table 6 (ResNet-20 8.75%, ResNet-56 6.97% test error, 64k "
        "iterations, fp32, per-pixel mean subtraction, 45k/5k split for tuning only).", "",
    ]
    return "\n".join(lines)


def insert_section(report: Path, section: str) -> None:
    """Put `section` right under report.md's title line."""
    text = report.read_text()
    title, _, rest = text.partition("\n")
    report.write_text(f"{title}\n\n{section}{rest}")


# --- 6. output ---------------------------------------------------------------------------------

def pack(out: Path, dest: Path, log: Log) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = dest / "gpu_check.tar.gz"

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name
        if name.endswith((".pt", ".pt.tmp", ".npz")) or "/wandb/" in name or "/.hydra" in name:
            return None
        return info
    with tarfile.open(tar_path, "w:gz") as tar:
        for part in ("results", "logs", "runs", "summary.md", "env.json"):
            if (out / part).exists():
                tar.add(out / part, arcname=part, filter=keep)
    for name in ("summary.md", "gpu_check.log"):
        if (out / name).exists():
            (dest / name).write_bytes((out / name).read_bytes())
    log(f"packed {tar_path} ({tar_path.stat().st_size / 2**20:.1f} MiB), summary.md, gpu_check.log")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/depthlab-gpu-check"),
                   help="where everything goes (default /tmp/depthlab-gpu-check)")
    p.add_argument("--pack", type=Path, default=None,
                   help="also write DIR/gpu_check.tar.gz, DIR/summary.md, DIR/gpu_check.log")
    p.add_argument("--cpu", action="store_true",
                   help="CPU mode: synthetic data, a few steps; what needs CUDA is skipped, saying so")
    p.add_argument("--budget", type=float, default=None,
                   help="wall seconds for the whole check (default 520 on a GPU, 240 in CPU mode)")
    p.add_argument("--no-ddp", action="store_true", help="leave out the DDP-of-one-process row")
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get(
        "DEPTHLAB_DATA", "~/.cache/depthlab/data")).expanduser())
    p.add_argument("--cache-dir", type=Path, default=Path("~/.cache/depthlab/cache").expanduser())
    args = p.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        print("gpu_check: no CUDA device here; run with --cpu for the CPU mode", file=sys.stderr)
        return 2
    m = mode(args.cpu, args.budget)
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    log = Log(out / "gpu_check.log")
    facts: dict[str, Any] = {"phases": {}, "cpu_mode": m.cpu}

    def phase(name: str, began: float) -> None:
        facts["phases"][name] = round(log.elapsed() - began, 1)

    # 1. the machine
    facts["env"] = environment()
    (out / "env.json").write_text(json.dumps(facts["env"], indent=2) + "\n")
    e = facts["env"]
    log(f"device: {e.get('gpu') or 'CPU mode, no GPU'}; torch {e['torch']}, CUDA {e['cuda']}, "
        f"cuDNN {e['cudnn']}, driver {e.get('driver')}; {e['cores']} cores; git {e['git']}; "
        f"budget {m.budget_s:.0f} s")

    # 2. data
    t0 = log.elapsed()
    data_root = None
    if m.cpu:
        log("data: CPU mode uses synthetic images (no CIFAR-10 needed)")
    else:
        data_root = find_data(args.data_root.expanduser().resolve(), log, out)
        if data_root is not None:
            decode_once(data_root, args.cache_dir.expanduser(), log)
    phase("data", t0)

    # 3. the CUDA-graph tests: they gate the fast path
    t0 = log.elapsed()
    tests: dict[str, Any] = {}
    if m.cpu:
        sel = GRAPH_TESTS[:1] + OTHER_CUDA_TESTS
        rc = run_logged(python() + ["-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                    *sel], out / "logs" / "cuda_tests.txt", 120, env(None))
        log("tests: CPU mode: the CUDA tests were collected, not run (they need a GPU): "
            f"logs/cuda_tests.txt (collect exit {rc})")
        tests["graphs"] = tests["others"] = {"skipped": "CPU mode"}
        graphs_ok = False
    else:
        rc = run_logged(pytest_cmd(GRAPH_TESTS, out / "logs" / "tests-graphs.xml"),
                        out / "logs" / "tests-graphs.txt", 150, env(data_root))
        tests["graphs"] = test_counts(out / "logs" / "tests-graphs.xml")
        graphs_ok = rc == 0 and GRAPH_GATE <= passed_tests(out / "logs" / "tests-graphs.xml")
        log(f"tests: CUDA-graph tests {tests['graphs']} (exit {rc}): fast path "
            f"{'allowed' if graphs_ok else 'NOT allowed: Fig. 6 runs eager'}")
    phase("graph tests", t0)

    # 4. the benchmark's GPU rows
    t0 = log.elapsed()
    bench_dir = out / "results" / "benchmarks"
    cmd = python() + [str(ROOT / "scripts" / "gpu_benchmark.py"), "--out", str(bench_dir),
                      "--cache-dir", str(args.cache_dir.expanduser())]
    cmd += ["--data-root", str(data_root)] if data_root else ["--data-root", str(out / "no-data")]
    cmd += ["--cpu"] if m.cpu else []
    # CPU mode leaves out the four-at-once row (four fresh processes: too slow for CI;
    # tests/test_gpu_check.py runs it on its own)
    cmd += ["--only", "nets", "data"] if m.cpu else ["--only", "nets", "together", "data"]
    cmd += [] if args.no_ddp else ["--ddp"]
    rc = run_logged(cmd, out / "logs" / "benchmark.log", 0.45 * m.budget_s, env(data_root))
    bench: dict[str, Any] = {}
    if rc == 0 and (bench_dir / "gpu.json").exists():
        bench = json.loads((bench_dir / "gpu.json").read_text())
        log(f"benchmark: {bench_dir / 'gpu.md'} ({bench['seconds']:.0f} s)")
    else:
        log(f"benchmark: FAILED (exit {rc}; logs/benchmark.log): Fig. 6 is sized from guesses")
    phase("benchmark", t0)
    nets = bench.get("nets", {})
    fast = [nets.get(f"residual-{d}-cifar", {}).get("fast_path") for d in (20, 56)]
    graphs = graphs_ok and fast == ["graphs", "graphs"]
    facts["graphs"] = graphs
    facts["graphs_why"] = (
        "CPU mode: no CUDA" if m.cpu else
        "the graph tests passed and the benchmark measured graphs faster for residual-20 and -56"
        if graphs else f"graph tests {'passed' if graphs_ok else 'failed'}, benchmark's faster "
                       f"path for residual-20/56: {fast}")

    def step_ms(depth: int) -> float:
        got = nets.get(f"residual-{depth}-cifar", {}).get("step_ms", {})
        value = got.get("graphs" if graphs else "eager")
        if value is None and m.cpu:  # CPU mode measures residual-8 only: scale by depth
            value = nets.get("residual-8-cifar", {}).get("step_ms", {}).get("eager")
            value = value * depth / 8 if value else None
        return value or {20: 15.0, 56: 40.0}[depth]  # no benchmark: a pessimistic guess
    steps = {"20": step_ms(20), "56": step_ms(56)}

    # 5. Fig. 6, with the other CUDA tests beside it
    t0 = log.elapsed()
    runs_dir = out / "runs"
    left = m.budget_s - log.elapsed() - m.reserve_s
    # compare's plan (it times each net first), four processes' imports, data to the GPU,
    # captures, and compare's own report at the end
    startup = 10 if m.cpu else 60
    together_ms = bench.get("together", {}).get("graphs" if graphs else "eager", {}).get("iteration_ms")
    iterations, facts["length"] = plan_iterations(steps, left - startup, m.full_iterations,
                                                  together_ms)
    facts["every"] = 2 if m.cpu else 100
    log(f"fig6: {facts['length']}")
    overrides = fig6_overrides(m, iterations, graphs, runs_dir, data_root)
    facts["fig6_command"] = "depthlab compare plain residual " + shlex.join(overrides)
    train_s = 0.0
    if data_root is None and not m.cpu:
        log("fig6: skipped (no CIFAR-10)")
        status = "skipped: no CIFAR-10 on this machine"
    else:
        log(f"fig6: {facts['fig6_command']}")
        fig6_log = (out / "logs" / "fig6.log").open("w")
        proc = subprocess.Popen(python() + ["-m", "depthlab", "compare", "plain", "residual",
                                            *overrides], stdout=fig6_log, stderr=subprocess.STDOUT,
                                cwd=ROOT, env=env(data_root), start_new_session=True)
        if not m.cpu:  # the other CUDA tests, beside the runs (the GPU has room)
            test_rc = run_logged(pytest_cmd(OTHER_CUDA_TESTS, out / "logs" / "tests-cuda.xml"),
                                 out / "logs" / "tests-cuda.txt", 240, env(data_root))
            tests["others"] = test_counts(out / "logs" / "tests-cuda.xml")
            log(f"tests: other CUDA tests {tests['others']} (exit {test_rc})")
        deadline = m.budget_s - m.reserve_s
        try:
            rc = proc.wait(timeout=max(1.0, deadline - log.elapsed()))
            status = "completed" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            log("fig6: out of time: SIGTERM (the runs checkpoint and stop as interrupted)")
            stop(proc, grace=20)
            status = "stopped at the deadline"
        fig6_log.close()
        train_s = log.elapsed() - t0
        log(f"fig6: {status} after {train_s:.0f} s (logs/fig6.log)")
    phase("fig6", t0)
    facts["train_s"] = train_s
    facts["tests"] = tests

    # 6. report, summary, pack
    t0 = log.elapsed()
    runs = read_runs(runs_dir / "gpu-fig6")
    fig6_dir = out / "results" / "gpu-fig6"
    if runs:
        note = ("Plain and residual nets of depth 20 and 56 trained at once on one GPU with the "
                "paper's CIFAR-10 recipe (experiment=resnet_cifar_paper), by scripts/gpu_check.py; "
                "real CIFAR-10 from depthlab's JPEG copy (quality 75), one seed."
                if not m.cpu else "CPU mode of scripts/gpu_check.py: synthetic images, a few steps.")
        rc = run_logged(python() + ["-m", "depthlab", "report", str(runs_dir / "gpu-fig6"),
                                    "--out", str(fig6_dir), "--wandb", "disabled",
                                    "--title", "Fig. 6 on one GPU: plain vs residual at 20 and 56",
                                    "--command", facts["fig6_command"], "--note", note],
                        out / "logs" / "report.log", min(90.0, max(20.0, m.budget_s + 40 - log.elapsed())),
                        env(data_root))
        log(f"report: {fig6_dir / 'report.md'} (exit {rc})")
    facts["total_s"] = log.elapsed()
    section = fig6_section(runs, facts)
    if (fig6_dir / "report.md").exists():
        insert_section(fig6_dir / "report.md", section)
    phase("report", t0)
    summary = [
        "# scripts/gpu_check.py", "",
        f"- date: {e['date']}; git {e['git']}; command: `{shlex.join(['python', 'scripts/gpu_check.py', *(argv if argv is not None else sys.argv[1:])])}`",
        f"- mode: {'CPU (tiny, synthetic; CUDA parts skipped)' if m.cpu else 'GPU'}; budget "
        f"{m.budget_s:.0f} s; wall {log.elapsed():.0f} s; phases (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in facts["phases"].items()),
        f"- CUDA tests: graphs {tests.get('graphs')}; others {tests.get('others')}",
        f"- benchmark: {'results/benchmarks/gpu.md' if bench else 'failed (logs/benchmark.log)'}",
        f"- fig6: {status}; results/gpu-fig6/report.md", "",
        section,
    ]
    if bench:
        summary += ["## Benchmark", "", (bench_dir / "gpu.md").read_text().split("\n", 2)[2]]
    (out / "summary.md").write_text("\n".join(summary) + "\n")
    (out / "facts.json").write_text(json.dumps(facts, indent=2, default=str) + "\n")
    log(f"summary: {out / 'summary.md'}")
    if args.pack is not None:
        pack(out, args.pack.resolve(), log)
    failed = any(isinstance(t, dict) and (t.get("failed") or t.get("errors")) for t in tests.values())
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
