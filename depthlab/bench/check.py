"""The GPU check (scripts/gpu_check.py): its phases within one wall-time budget, the test gate, the machine, the pack."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlab import machine
from depthlab.bench.feeding import jpeg_root
from depthlab.bench.fig6 import fig6_overrides, fig6_section, insert_section, mode, plan_iterations, read_runs
from depthlab.bench.results import gpu_block, now

ARCHIVE = "cifar10-jpeg.tar.gz"
# the CUDA tests: the graph tests first (they gate the fast path), the rest beside Fig. 6
GRAPH_TESTS = ["tests/engine/test_cuda_graphs.py", "-m", "not slow"]
OTHER_CUDA_TESTS = ["tests/cli/test_accelerated.py", "tests/data/test_data_device_loader.py",
                    "tests/engine/test_cuda_graphs.py::test_a_run_with_cuda_graphs_writes_eager_gradient_flow",
                    "-k", "cuda or every_device"]
# the GPU tests that must pass before Fig. 6 may use the fast path
GRAPH_GATE = {"test_graph_replays_give_eager_gradient_flow_step_by_step[fp32-False]",
              "test_graph_replays_give_eager_gradient_flow_step_by_step[bf16-True]",
              "test_a_batch_of_another_shape_runs_eagerly_and_the_graph_goes_on"}


@dataclass
class Options:
    root: Path  # the checkout: scripts/, tests/, .gpu/ are found there
    out: Path
    pack: Path | None
    cpu: bool
    budget: float | None
    ddp: bool
    data_root: Path
    cache_dir: Path
    argv: list[str]  # for summary.md's command


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


def run_logged(cmd: list[str], log_path: Path, timeout: float, environ: dict[str, str],
               cwd: Path) -> int:
    """Run cmd with its output in log_path; 124 when it ran past timeout (killed)."""
    with log_path.open("w") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=environ,
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


def environment() -> dict[str, Any]:
    """env.json: depthlab.machine.describe() under the keys the check reads (gpu, driver,
    torch, cuda, cudnn, cpu, cores, git, ...), the whole description under "machine"."""
    import torch

    info = machine.describe()
    return {"date": now(), **gpu_block(info), "python": info["python"], "host": info["host"],
            "cpu": info["processor"], "cores": info["cores"],
            # the device tool's copy of the tree has no .git: DEPTHLAB_GIT=<commit> names it
            "git": machine.git_commit(), "torchvision": __import__("torchvision").__version__,
            "torch_threads": torch.get_num_threads(), "line": machine.line(info), "machine": info}


def find_data(root: Path, data_root: Path, log: Log, out: Path) -> Path | None:
    """The folder holding cifar10-jpeg/, unpacking the project's archive there if need be."""
    if jpeg_root(data_root) is not None:
        log(f"data: CIFAR-10 JPEG copy already in {data_root}")
        return data_root
    for archive in (root / ".gpu" / ARCHIVE, root / "shared" / "data" / ARCHIVE,
                    root.parent / "shared" / "data" / ARCHIVE):
        if archive.is_file():
            rc = run_logged(["bash", str(root / "scripts" / "unpack_cifar.sh"), str(archive),
                             str(data_root)], out / "logs" / "unpack.log", 300, env(None), root)
            if rc == 0 and jpeg_root(data_root) is not None:
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


def pytest_cmd(selection: list[str], xml: Path) -> list[str]:
    return python() + ["-m", "pytest", *selection, "-q", "-p", "no:cacheprovider", "-rs",
                       f"--junitxml={xml}"]


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


def run_check(o: Options) -> int:
    """The whole check, phase by phase (scripts/gpu_check.py's docstring); 0 when the tests
    passed and Fig. 6 produced runs."""
    root = o.root
    m = mode(o.cpu, o.budget)
    out = o.out.resolve()
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
        data_root = find_data(root, o.data_root.expanduser().resolve(), log, out)
        if data_root is not None:
            decode_once(data_root, o.cache_dir.expanduser(), log)
    phase("data", t0)

    # 3. the CUDA-graph tests: they gate the fast path
    t0 = log.elapsed()
    tests: dict[str, Any] = {}
    if m.cpu:
        sel = GRAPH_TESTS[:1] + OTHER_CUDA_TESTS
        rc = run_logged(python() + ["-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                    *sel], out / "logs" / "cuda_tests.txt", 120, env(None), root)
        log("tests: CPU mode: the CUDA tests were collected, not run (they need a GPU): "
            f"logs/cuda_tests.txt (collect exit {rc})")
        tests["graphs"] = tests["others"] = {"skipped": "CPU mode"}
        graphs_ok = False
    else:
        rc = run_logged(pytest_cmd(GRAPH_TESTS, out / "logs" / "tests-graphs.xml"),
                        out / "logs" / "tests-graphs.txt", 150, env(data_root), root)
        tests["graphs"] = test_counts(out / "logs" / "tests-graphs.xml")
        graphs_ok = rc == 0 and GRAPH_GATE <= passed_tests(out / "logs" / "tests-graphs.xml")
        log(f"tests: CUDA-graph tests {tests['graphs']} (exit {rc}): fast path "
            f"{'allowed' if graphs_ok else 'NOT allowed: Fig. 6 runs eager'}")
    phase("graph tests", t0)

    # 4. the benchmark's GPU rows
    t0 = log.elapsed()
    bench_dir = out / "results" / "benchmarks"
    cmd = python() + [str(root / "scripts" / "gpu_benchmark.py"), "--out", str(bench_dir),
                      "--cache-dir", str(o.cache_dir.expanduser())]
    cmd += ["--data-root", str(data_root)] if data_root else ["--data-root", str(out / "no-data")]
    cmd += ["--cpu"] if m.cpu else []
    # CPU mode leaves out the four-at-once row (four fresh processes: too slow for CI;
    # tests/test_gpu_check.py runs it on its own)
    cmd += ["--only", "nets", "data"] if m.cpu else ["--only", "nets", "together", "data"]
    cmd += ["--ddp"] if o.ddp else []
    rc = run_logged(cmd, out / "logs" / "benchmark.log", 0.45 * m.budget_s, env(data_root), root)
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
                                cwd=root, env=env(data_root), start_new_session=True)
        if not m.cpu:  # the other CUDA tests, beside the runs (the GPU has room)
            test_rc = run_logged(pytest_cmd(OTHER_CUDA_TESTS, out / "logs" / "tests-cuda.xml"),
                                 out / "logs" / "tests-cuda.txt", 240, env(data_root), root)
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
                        env(data_root), root)
        log(f"report: {fig6_dir / 'report.md'} (exit {rc})")
    facts["total_s"] = log.elapsed()
    section = fig6_section(runs, facts)
    if (fig6_dir / "report.md").exists():
        insert_section(fig6_dir / "report.md", section)
    phase("report", t0)
    summary = [
        "# scripts/gpu_check.py", "",
        f"- date: {e['date']}; git {e['git']}; command: `{shlex.join(['python', 'scripts/gpu_check.py', *o.argv])}`",
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
    if o.pack is not None:
        pack(out, o.pack.resolve(), log)
    failed = any(isinstance(t, dict) and (t.get("failed") or t.get("errors")) for t in tests.values())
    return 1 if failed or not runs else 0
