"""The GPU check (scripts/gpu_check.py): its phases before one deadline, the data steps, the test gate, the machine, the summary and the pack.

Every subprocess's timeout is clipped to the time left before the deadline; each phase, as it
ends, writes the summary so far and (with --pack) packs what is there; the last summary and
pack are written in a `finally`. `python -m depthlab.bench.check unpack|decode ...` are the
data steps, run as subprocesses so that they are clipped too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlab import machine
from depthlab.bench.feeding import jpeg_root
from depthlab.bench.fig6 import (
    fig6_overrides,
    fig6_section,
    insert_section,
    mode,
    plan_iterations,
    read_runs,
    step_times,
)
from depthlab.bench.results import git_commit, gpu_block, now, write_text

ARCHIVE = "cifar10-jpeg.tar.gz"
CIFAR_SHA256 = "efac85c8ed52f4ead1e1f1b670d8dcf435d551fccebdd8b6365e0a01a504f3a4"  # unpack_cifar.sh's
# the CUDA tests: the graph tests first (they gate the fast path), then the others; all of
# them before Fig. 6, whose length is sized from the time left without them
GRAPH_TESTS = ["tests/engine/test_cuda_graphs.py", "-m", "not slow"]
OTHER_CUDA_TESTS = ["tests/cli/test_accelerated.py", "tests/data/test_data_device_loader.py",
                    "tests/engine/test_cuda_graphs.py::test_a_run_with_cuda_graphs_writes_eager_gradient_flow",
                    "-k", "cuda or every_device"]
# the GPU tests that must pass before Fig. 6 may use the fast path
GRAPH_GATE = {"test_graph_replays_give_eager_gradient_flow_step_by_step[fp32-False]",
              "test_graph_replays_give_eager_gradient_flow_step_by_step[bf16-True]",
              "test_a_batch_of_another_shape_runs_eagerly_and_the_graph_goes_on"}
KILL_GRACE_S = 10  # SIGTERM to a phase's process group, then this long before SIGKILL
FIG6_GRACE_S = 20  # the runs checkpoint and mark themselves interrupted (within the reserve)
PACK_S = 10  # the last summary and pack, after the report
clock = time.monotonic  # the tests drive the deadline with a fake one


class Deadline:
    """One end in time: every sub-timeout is clipped to what is left before it."""

    def __init__(self, end: float) -> None:
        self.end = end

    def left(self) -> float:
        return self.end - clock()

    def clip(self, wanted: float, grace: float = 0.0) -> float:
        """At most `wanted` seconds, short enough that a kill's `grace` still ends in time."""
        return max(0.0, min(wanted, self.left() - grace))


class Stopped(Exception):
    """SIGTERM to the check itself: raised so that `finally` still writes the summary and the pack."""


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
        self.start = clock()
        self.file = path.open("a")

    def __call__(self, message: str) -> None:
        line = f"[gpu_check {self.elapsed():5.0f} s] {message}"
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def elapsed(self) -> float:
        return clock() - self.start


def python() -> list[str]:
    return [sys.executable]


def env(data_root: Path | None) -> dict[str, str]:
    e = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_MODE="disabled", WANDB_SILENT="true")
    if data_root is not None:
        e["DEPTHLAB_DATA"] = str(data_root)
    return e


def run_logged(cmd: list[str], log_path: Path, timeout: float, environ: dict[str, str],
               cwd: Path, grace: float = KILL_GRACE_S) -> int:
    """Run cmd with its output in log_path; 124 when it ran past timeout (then stopped within
    `grace`) or had no time to start (under a second left)."""
    with log_path.open("w") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        if timeout < 1:
            f.write("[gpu_check] not started: no time left before the deadline\n")
            return 124
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=environ,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(proc, grace)
            f.write(f"\n[gpu_check] killed after {timeout:.0f} s (the deadline)\n")
            return 124
        except BaseException:  # the check itself stopped (Stopped, Ctrl-C): its child goes too
            stop(proc, grace)
            raise


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


def environment(root: Path) -> dict[str, Any]:
    """env.json: depthlab.machine.describe() under the keys the check reads (gpu, driver,
    torch, cuda, cudnn, cpu, cores, git, ...), the whole description under "machine"."""
    import torch

    info = machine.describe()
    return {"date": now(), **gpu_block(info), "python": info["python"], "host": info["host"],
            "cpu": info["processor"], "cores": info["cores"],
            # the device tool's copy of the tree has no .git: gpu_bundle.sh recorded the commit
            "git": git_commit(root), "torchvision": __import__("torchvision").__version__,
            "torch_threads": torch.get_num_threads(), "line": machine.line(info), "machine": info}


# --- the data steps: the same on a GPU and in CPU mode (there on check.tiny_archive's images) ---

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def archives(root: Path) -> list[Path]:
    """Where the GPU machine's copy of CIFAR-10 may be: carried in .gpu/, or in a shared/ folder."""
    return [root / ".gpu" / ARCHIVE, root / "shared" / "data" / ARCHIVE,
            root.parent / "shared" / "data" / ARCHIVE]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tiny_archive(folder: Path, per_class: tuple[int, int] = (10, 5)) -> Path:
    """CPU mode's stand-in for .gpu/cifar10-jpeg.tar.gz: random 32x32 JPEGs in its layout
    (cifar10-jpeg/{train,test}/<class>/NNNN.jpg), `per_class` train and test images a class,
    so that the GPU branch's own find, unpack (its sha256 check too) and decode run on it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    stage = folder / "stage"
    for split, n in zip(("train", "test"), per_class):
        for c in CLASSES:
            (stage / "cifar10-jpeg" / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    stage / "cifar10-jpeg" / split / c / f"{i:04d}.jpg", quality=75)
    archive = folder / ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(stage / "cifar10-jpeg", arcname="cifar10-jpeg")
    shutil.rmtree(stage)
    return archive


def unpack(archive: Path, dest: Path, sha256: str) -> None:
    """scripts/unpack_cifar.sh's steps, with the sha256 to expect given (CPU mode's tiny archive
    has its own): refuse another archive, extract beside dest and move in whole, so that a kill
    half-way leaves no half copy that jpeg_root would take for the data."""
    got = file_sha256(archive)
    if got != sha256:
        raise ValueError(f"{archive} has sha256 {got}, expected {sha256}")
    stage = dest / ".unpacking"
    stage.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:  # the "data" filter where Python has it: no paths out of stage
        tar.extractall(stage, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    for entry in stage.iterdir():
        entry.rename(dest / entry.name)
    stage.rmdir()


def decode(data_root: Path, cache_dir: Path) -> None:
    """Decode the JPEGs into depthlab's uint8 cache, once, so that the four runs started
    together load the cache instead of decoding 60,000 images each."""
    from depthlab.data import build_data

    build_data({"name": "cifar10", "root": str(data_root), "download": False,
                "cache_dir": str(cache_dir)}, batch_size=1, eval_batch_size=1, device="cpu", seed=0)


def step_cmd(*args: str | Path) -> list[str]:
    """This module's data step as a subprocess (run_logged clips and kills it like the others)."""
    return python() + ["-m", "depthlab.bench.check", *map(str, args)]


def find_data(places: list[Path], sha256: str, data_root: Path, log: Log, out: Path,
              work: Deadline, root: Path) -> Path | None:
    """The folder holding cifar10-jpeg/, unpacking the first archive found there if need be."""
    if jpeg_root(data_root) is not None:
        log(f"data: CIFAR-10 JPEG copy already in {data_root}")
        return data_root
    for archive in places:
        if archive.is_file():
            rc = run_logged(step_cmd("unpack", archive, data_root, sha256), out / "logs" / "unpack.log",
                            work.clip(180, KILL_GRACE_S), env(None), root)
            if rc == 0 and jpeg_root(data_root) is not None:
                log(f"data: unpacked {archive} into {data_root}")
                return data_root
            log(f"data: unpacking {archive} failed (exit {rc}; logs/unpack.log)")
    log(f"data: NO CIFAR-10 (looked in {data_root}, {', '.join(map(str, places))}): "
        f"Fig. 6 cannot run; copy {ARCHIVE} into .gpu/ (scripts/gpu_bundle.sh)")
    return None


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
    """DEST/gpu_check.tar.gz, summary.md, gpu_check.log: each replaced whole (after every phase)."""
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = dest / "gpu_check.tar.gz"

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name
        if name.endswith((".pt", ".pt.tmp", ".npz")) or "/wandb/" in name or "/.hydra" in name:
            return None
        return info
    tmp = tar_path.with_name(tar_path.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for part in ("results", "logs", "runs", "summary.md", "facts.json", "env.json"):
            if (out / part).exists():
                tar.add(out / part, arcname=part, filter=keep)
    os.replace(tmp, tar_path)
    for name in ("summary.md", "gpu_check.log"):
        if (out / name).exists():
            write_text(dest / name, (out / name).read_text())
    log(f"packed {tar_path} ({tar_path.stat().st_size / 2**20:.1f} MiB), summary.md, gpu_check.log")


def _stopped(signum: int, frame: Any) -> None:
    raise Stopped(f"signal {signum}")


def run_check(o: Options) -> int:
    """The whole check, phase by phase (scripts/gpu_check.py's docstring), before one deadline;
    0 when the tests passed and Fig. 6 produced runs. The summary and the pack are written as
    each phase ends and, whatever happened (an error, SIGTERM), once more at the end."""
    c = Check(o)
    handles = _main_thread()  # signal handlers can be set from the main thread only
    previous = signal.signal(signal.SIGTERM, _stopped) if handles else None
    try:
        c.run()
    except Exception as err:  # noqa: BLE001  (Stopped too: reported, and the pack still goes out)
        c.facts["error"] = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        (c.out / "logs" / "error.txt").write_text(traceback.format_exc())
        c.log(f"ERROR in phase {c.current}: {c.facts['error']} (logs/error.txt)")
    finally:
        if handles:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        c.finish()
    return c.exit_code()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class Check:
    """The phases' shared state: each phase method fills `facts`, `tests`, `bench`, `status`."""

    def __init__(self, o: Options) -> None:
        self.o, self.root, self.m = o, o.root, mode(o.cpu, o.budget)
        self.out = o.out.resolve()
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self.log = Log(self.out / "gpu_check.log")
        self.end = Deadline(self.log.start + self.m.budget_s)  # the whole command
        # tests, benchmark, Fig. 6; the reserve after it: Fig. 6's stop, the report, the pack
        self.work = Deadline(self.end.end - self.m.reserve_s)
        self.facts: dict[str, Any] = {"phases": {}, "cpu_mode": self.m.cpu}
        self.tests: dict[str, Any] = {}
        self.bench: dict[str, Any] = {}
        self.bench_dir = self.out / "results" / "benchmarks"
        self.runs_dir = self.out / "runs"
        self.fig6_dir = self.out / "results" / "gpu-fig6"
        self.status = "not started"
        self.current = "machine"
        self.data_root: Path | None = None
        self.cache_dir = o.cache_dir.expanduser()
        self.graphs_ok = False

    def run(self) -> None:
        for name, phase in (("machine", self.machine), ("data", self.data),
                            ("cuda tests", self.cuda_tests), ("benchmark", self.benchmark),
                            ("fig6", self.fig6), ("report", self.report)):
            self.current, began = name, self.log.elapsed()
            phase()
            self.ended(name, began)
        self.current = "summary"

    def ended(self, name: str, began: float) -> None:
        """A phase is over: its time, then the summary so far and the pack of its logs and
        results, which stay if the device tool's own limit kills the check later."""
        self.facts["phases"][name] = round(self.log.elapsed() - began, 1)
        self.write(final=False)

    # 1. the machine
    def machine(self) -> None:
        e = self.facts["env"] = environment(self.root)
        (self.out / "env.json").write_text(json.dumps(e, indent=2) + "\n")
        self.log(f"device: {e.get('gpu') or 'CPU mode, no GPU'}; torch {e['torch']}, CUDA {e['cuda']}, "
                 f"cuDNN {e['cudnn']}, driver {e.get('driver')}; {e['cores']} cores; git {e['git']}; "
                 f"budget {self.m.budget_s:.0f} s")

    # 2. data: found or unpacked, decoded once
    def data(self) -> None:
        o, out = self.o, self.out
        if self.m.cpu:  # its own data root and cache: never the real copy, never ~/.cache
            archive = tiny_archive(out / "cpu-archive")
            places, sha = [archive], file_sha256(archive)
            data_root, self.cache_dir = out / "data", out / "cache"
            self.log(f"data: CPU mode: {archive}, random images in CIFAR-10's layout, stands in for .gpu/")
        else:
            places, sha, data_root = archives(self.root), CIFAR_SHA256, o.data_root.expanduser().resolve()
        self.data_root = find_data(places, sha, data_root, self.log, out, self.work, self.root)
        if self.data_root is None:
            return
        began = self.log.elapsed()
        rc = run_logged(step_cmd("decode", self.data_root, self.cache_dir), out / "logs" / "decode.log",
                        self.work.clip(180, KILL_GRACE_S), env(None), self.root)
        self.log(f"data: decoded into {self.cache_dir} ({self.log.elapsed() - began:.0f} s)" if rc == 0 else
                 f"data: decoding FAILED (exit {rc}; logs/decode.log): each run decodes for itself")

    # 3. the CUDA tests, before Fig. 6 (its length is sized from the time left after them);
    # in CPU mode the same selections run and skip what needs CUDA, so the gate stays closed
    def cuda_tests(self) -> None:
        logs = self.out / "logs"
        for xml in ("tests-graphs.xml", "tests-cuda.xml"):  # a test not started counts as an error
            (logs / xml).unlink(missing_ok=True)
        rc = run_logged(pytest_cmd(GRAPH_TESTS, logs / "tests-graphs.xml"), logs / "tests-graphs.txt",
                        self.work.clip(150, KILL_GRACE_S), env(self.data_root), self.root)
        self.tests["graphs"] = test_counts(logs / "tests-graphs.xml")
        self.graphs_ok = rc == 0 and GRAPH_GATE <= passed_tests(logs / "tests-graphs.xml")
        self.log(f"tests: CUDA-graph tests {self.tests['graphs']} (exit {rc}): fast path "
                 f"{'allowed' if self.graphs_ok else 'NOT allowed: Fig. 6 runs eager'}")
        rc = run_logged(pytest_cmd(OTHER_CUDA_TESTS, logs / "tests-cuda.xml"), logs / "tests-cuda.txt",
                        self.work.clip(120, KILL_GRACE_S), env(self.data_root), self.root)
        self.tests["others"] = test_counts(logs / "tests-cuda.xml")
        self.log(f"tests: other CUDA tests {self.tests['others']} (exit {rc})")

    # 4. the benchmark's GPU rows
    def benchmark(self) -> None:
        m, bench_dir = self.m, self.bench_dir
        (bench_dir / "gpu.json").unlink(missing_ok=True)  # never an earlier run's
        cmd = python() + [str(self.root / "scripts" / "gpu_benchmark.py"), "--out", str(bench_dir),
                          "--cache-dir", str(self.cache_dir),
                          "--data-root", str(self.data_root or self.out / "no-data")]
        cmd += ["--cpu"] if m.cpu else []
        # CPU mode leaves out the four-at-once row (four fresh processes: too slow for CI;
        # tests/test_gpu_check.py runs it on its own)
        cmd += ["--only", "nets", "data"] if m.cpu else ["--only", "nets", "together", "data"]
        cmd += ["--ddp"] if self.o.ddp else []
        rc = run_logged(cmd, self.out / "logs" / "benchmark.log",
                        self.work.clip(0.45 * m.budget_s, KILL_GRACE_S), env(self.data_root), self.root)
        try:  # written row by row: a cut benchmark leaves the rows it measured
            self.bench = json.loads((bench_dir / "gpu.json").read_text())
        except (OSError, ValueError):
            self.bench = {}
        if self.bench.get("complete") and rc == 0:
            self.log(f"benchmark: {bench_dir / 'gpu.md'} ({self.bench['seconds']:.0f} s)")
        elif self.bench:
            self.log(f"benchmark: CUT (exit {rc}; logs/benchmark.log) after {len(self.bench['rows'])} "
                     f"rows: Fig. 6 is sized from those")
        else:
            self.log(f"benchmark: FAILED (exit {rc}; logs/benchmark.log): Fig. 6 is sized from guesses")

    # 5. Fig. 6: sized to the time left, stopped at the deadline
    def fig6(self) -> None:
        m, facts = self.m, self.facts
        nets = self.bench.get("nets", {})
        fast = [nets.get(f"residual-{d}-cifar", {}).get("fast_path") for d in (20, 56)]
        graphs = self.graphs_ok and fast == ["graphs", "graphs"]
        facts["graphs"] = graphs
        facts["graphs_why"] = (
            "the graph tests passed and the benchmark measured graphs faster for residual-20 and -56"
            if graphs else f"graph tests {'passed' if self.graphs_ok else 'not passed'}, benchmark's "
                           f"faster path for residual-20/56: {fast}")
        together = self.bench.get("together", {}).get("graphs" if graphs else "eager", {})
        iterations, facts["length"] = plan_iterations(step_times(nets, graphs),
                                                      self.work.left() - m.startup_s, m.full_iterations,
                                                      together.get("iteration_ms"))
        facts["iterations"] = iterations
        facts["every"] = 2 if m.cpu else 100
        self.log(f"fig6: {facts['length']}")
        overrides = fig6_overrides(m, iterations, graphs, self.runs_dir, self.data_root,
                                   self.cache_dir if self.data_root else None)
        facts["fig6_command"] = "depthlab compare plain residual " + shlex.join(overrides)
        facts["train_s"] = 0.0
        if self.data_root is None:
            self.log("fig6: skipped (no CIFAR-10)")
            self.status = "skipped: no CIFAR-10 on this machine"
            return
        # its timeout ends at the work deadline; the SIGTERM's grace comes out of the reserve
        timeout = self.work.clip(self.work.left())
        if timeout < 1:
            self.status = "not started: no time left before the deadline"
            self.log(f"fig6: {self.status}")
            return
        self.log(f"fig6: {facts['fig6_command']}")
        began = self.log.elapsed()
        self.status = "running"
        rc = run_logged(python() + ["-m", "depthlab", "compare", "plain", "residual", *overrides],
                        self.out / "logs" / "fig6.log", timeout, env(self.data_root), self.root,
                        grace=FIG6_GRACE_S)
        self.status = "completed" if rc == 0 else "stopped at the deadline" if rc == 124 else f"exit {rc}"
        facts["train_s"] = self.log.elapsed() - began
        self.log(f"fig6: {self.status} after {facts['train_s']:.0f} s (logs/fig6.log)")

    # 6. depthlab report of the runs there are, the section beside the paper on top
    def report(self) -> None:
        runs = read_runs(self.runs_dir / "gpu-fig6")
        if not runs:
            return
        note = ("Plain and residual nets of depth 20 and 56 trained at once on one GPU with the "
                "paper's CIFAR-10 recipe (experiment=resnet_cifar_paper), by scripts/gpu_check.py; "
                "real CIFAR-10 from depthlab's JPEG copy (quality 75), one seed."
                if not self.m.cpu else "CPU mode of scripts/gpu_check.py: random images, a few steps.")
        rc = run_logged(python() + ["-m", "depthlab", "report", str(self.runs_dir / "gpu-fig6"),
                                    "--out", str(self.fig6_dir), "--wandb", "disabled",
                                    "--title", "Fig. 6 on one GPU: plain vs residual at 20 and 56",
                                    "--command", self.facts["fig6_command"], "--note", note],
                        self.out / "logs" / "report.log", self.end.clip(90, KILL_GRACE_S + PACK_S),
                        env(self.data_root), self.root)
        self.log(f"report: {self.fig6_dir / 'report.md'} (exit {rc})")
        if (self.fig6_dir / "report.md").exists():
            self.facts["total_s"] = self.log.elapsed()
            insert_section(self.fig6_dir / "report.md", fig6_section(runs, self.facts))

    def write(self, final: bool) -> None:
        """summary.md and facts.json as they stand, and the pack (with --pack) even if they fail."""
        try:
            self.write_summary(final)
        finally:
            if self.o.pack is not None:
                pack(self.out, self.o.pack.resolve(), self.log)

    def write_summary(self, final: bool) -> None:
        self.facts["total_s"] = self.log.elapsed()
        self.facts["tests"] = self.tests
        e, m = self.facts.get("env", {}), self.m
        runs = read_runs(self.runs_dir / "gpu-fig6")
        done = list(self.facts["phases"])
        state = (f"FAILED in phase {self.current}: {self.facts['error']} (logs/error.txt)"
                 if "error" in self.facts else "finished" if final else
                 f"written after phase {done[-1] if done else '-'}; the check goes on, and a "
                 f"later summary replaces this one (if none did, the check was killed)")
        summary = [
            "# scripts/gpu_check.py", "",
            f"- date: {e.get('date', now())}; git {e.get('git')}; command: "
            f"`{shlex.join(['python', 'scripts/gpu_check.py', *self.o.argv])}`",
            f"- mode: {'CPU (tiny; CUDA parts skipped)' if m.cpu else 'GPU'}; budget "
            f"{m.budget_s:.0f} s; wall {self.log.elapsed():.0f} s; phases (s): "
            + ", ".join(f"{k} {v:.0f}" for k, v in self.facts["phases"].items()),
            f"- state: {state}",
            f"- CUDA tests: graphs {self.tests.get('graphs')}; others {self.tests.get('others')}",
            f"- benchmark: {self.bench_state()}",
            f"- fig6: {self.status}; results/gpu-fig6/report.md", "",
            fig6_section(runs, self.facts),
        ]
        if (self.bench_dir / "gpu.md").exists():
            summary += ["## Benchmark", "", (self.bench_dir / "gpu.md").read_text().split("\n", 2)[-1]]
        write_text(self.out / "summary.md", "\n".join(summary) + "\n")
        write_text(self.out / "facts.json", json.dumps(self.facts, indent=2, default=str) + "\n")

    def bench_state(self) -> str:
        if not self.bench:
            return "failed (logs/benchmark.log)" if "benchmark" in self.facts["phases"] else "not run"
        if not self.bench.get("complete"):
            return f"cut after {len(self.bench.get('rows', []))} rows: results/benchmarks/gpu.md"
        return "results/benchmarks/gpu.md"

    def finish(self) -> None:
        self.write(final=True)
        self.log(f"summary: {self.out / 'summary.md'}")

    def exit_code(self) -> int:
        if isinstance(self.facts.get("error"), str) and self.facts["error"].startswith("Stopped"):
            return 128 + signal.SIGTERM
        failed = any(t.get("failed") or t.get("errors") for t in self.tests.values())
        return 1 if "error" in self.facts or failed or not read_runs(self.runs_dir / "gpu-fig6") else 0


def main(argv: list[str]) -> int:
    """`python -m depthlab.bench.check unpack ARCHIVE DEST SHA256 | decode DATA_ROOT CACHE_DIR`."""
    if argv[:1] == ["unpack"] and len(argv) == 4:
        try:
            unpack(Path(argv[1]), Path(argv[2]), argv[3])
        except (OSError, ValueError, tarfile.TarError) as err:
            print(f"unpack: {err}", file=sys.stderr)
            return 1
        print(f"unpack: {argv[1]} into {argv[2]}")
        return 0
    if argv[:1] == ["decode"] and len(argv) == 3:
        decode(Path(argv[1]), Path(argv[2]))
        print(f"decode: {argv[1]} into {argv[2]}")
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
