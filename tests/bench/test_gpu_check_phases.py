"""scripts/gpu_check.py's phases on the CPU: its GPU branch against its one deadline, each
subprocess a stand-in (FakeRuns) that spends time on a fake clock and writes what the real one
would, so that the clipping, the order, the per-phase packs and the `finally` are checked in
seconds; and its CPU mode, which runs the GPU branch's own data steps, gate and sizing."""

from __future__ import annotations

import json
import os
import signal
import sys
import tarfile
import time
from pathlib import Path

import pytest

from depthlab.bench import check

NETS = [f"{a}-{d}-s0" for a in ("plain", "residual") for d in (20, 56)]
FOREVER = 1e9  # a command that would run past any timeout


def kind(cmd: list[str]) -> str:
    if "unpack" in cmd or "decode" in cmd:
        return "unpack" if "unpack" in cmd else "decode"
    if "pytest" in cmd:
        return "graph tests" if check.GRAPH_TESTS[0] in cmd else "cuda tests"
    if any(part.endswith("gpu_benchmark.py") for part in cmd):
        return "benchmark"
    return "fig6" if "compare" in cmd else "report" if "report" in cmd else "?"


def arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


class FakeRuns:
    """Stands in for check.run_logged and check.clock. A command costs `costs[kind]` seconds
    (1 s if not named); one that would run past its timeout takes the timeout and the kill's
    grace, as run_logged's does. `hooks[kind](cmd)` runs when that command starts; the kinds
    in `real` run for real (check.run_logged). `cuda=False`: what a CPU gives (the CUDA tests
    skip, the benchmark times residual-8 eager only)."""

    def __init__(self, costs: dict[str, float], hooks: dict | None = None, real: tuple = (),
                 cuda: bool = True) -> None:
        self.t = 1000.0
        self.costs, self.hooks, self.real, self.cuda = costs, hooks or {}, real, cuda
        self.run_logged = check.run_logged
        self.calls: list[dict] = []

    def clock(self) -> float:
        return self.t

    def __call__(self, cmd, log_path, timeout, environ, cwd, grace=10) -> int:
        k, start = kind(cmd), self.t
        if k in self.real:
            self.calls.append({"kind": k, "start": start, "end": start, "timeout": timeout,
                               "grace": grace, "cmd": cmd})
            return self.run_logged(cmd, log_path, timeout, environ, cwd, grace)
        log_path.write_text(f"$ {' '.join(map(str, cmd))}\n{k}\n")
        self.calls.append(call := {"kind": k, "start": start, "timeout": timeout, "grace": grace,
                                   "cmd": cmd})
        if k in self.hooks:
            self.hooks[k](cmd)
        if timeout < 1:
            call["end"] = start
            return 124
        cost = self.costs.get(k, 1.0)
        cut = cost > timeout
        self.t += timeout + grace if cut else cost
        call["end"] = self.t
        self.outputs(k, cmd, cut)
        return 124 if cut else 0

    def outputs(self, k: str, cmd: list[str], cut: bool) -> None:
        if k == "unpack" and not cut:
            check.unpack(Path(cmd[-3]), Path(cmd[-2]), cmd[-1])
        if k in ("graph tests", "cuda tests"):  # on a GPU: the gate's tests pass
            xml = Path(next(c for c in cmd if c.startswith("--junitxml=")).split("=", 1)[1])
            names = sorted(check.GRAPH_GATE) if k == "graph tests" else ["test_cuda_x"]
            skip = "" if self.cuda else '<skipped message="needs a CUDA device"/>'
            cases = "".join(f'<testcase name="{n}">{skip}</testcase>' for n in names)
            xml.write_text(f'<testsuites><testsuite tests="{len(names)}" skipped="{0 if self.cuda else len(names)}">'
                           f'{cases}</testsuite></testsuites>')
        if k == "benchmark":
            out = Path(arg(cmd, "--out"))
            out.mkdir(parents=True, exist_ok=True)
            nets = {f"residual-{d}-cifar": {"step_ms": {"eager": 2.0 * d / 20, "graphs": d / 20},
                                            "fast_path": "graphs", "batch": 128} for d in (20, 56)}
            if not self.cuda:
                nets = {"residual-8-cifar": {"step_ms": {"eager": 4.0, "graphs": None, "hand": 4.0},
                                             "fast_path": "eager", "batch": 8}}
            (out / "gpu.json").write_text(json.dumps({"complete": not cut, "seconds": 1, "rows": [],
                                                      "nets": nets}))
            (out / "gpu.md").write_text("# gpu\n\nthe table\n")
        if k == "fig6":
            runs = Path(next(c for c in cmd if c.startswith("paths.runs_dir=")).split("=", 1)[1])
            total = int(next(c for c in cmd if c.startswith("trainer.iterations=")).split("=")[1])
            for i, name in enumerate(NETS):  # cut: SIGTERM, the runs stop as interrupted
                (runs / "gpu-fig6" / name).mkdir(parents=True, exist_ok=True)
                (runs / "gpu-fig6" / name / "summary.json").write_text(json.dumps({
                    "status": "interrupted" if cut else "completed", "total_steps": total,
                    "steps_completed": total // 2 if cut else total, "wall_seconds": 60,
                    "final_train_error": 0.1 + 0.01 * i, "final_test_error": 0.12 + 0.01 * i}))
        if k == "report" and not cut:
            out = Path(arg(cmd, "--out"))
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.md").write_text("# Fig. 6 on one GPU\n\nthe report\n")

    def of(self, k: str) -> dict:
        return next(c for c in self.calls if c["kind"] == k)


@pytest.fixture
def gpu_root(tmp_path, monkeypatch):
    """A copied tree as the GPU machine has it: no .git, .gpu/ with the archive and the commit
    gpu_bundle.sh wrote (a tiny archive, whose sha256 stands in for the real one's)."""
    root = tmp_path / "tree"
    (root / ".gpu").mkdir(parents=True)
    archive = check.tiny_archive(tmp_path / "made", per_class=(2, 1))
    os.replace(archive, root / ".gpu" / check.ARCHIVE)
    monkeypatch.setattr(check, "CIFAR_SHA256", check.file_sha256(root / ".gpu" / check.ARCHIVE))
    (root / ".gpu" / "git-commit").write_text("abc1234+dirty\n")
    monkeypatch.delenv("DEPTHLAB_GIT", raising=False)
    return root


def run(tmp_path, root, monkeypatch, fake: FakeRuns, budget: float = 520, cpu: bool = False):
    monkeypatch.setattr(check, "run_logged", fake)
    if not fake.real:  # real subprocesses take real time
        monkeypatch.setattr(check, "clock", fake.clock)
    o = check.Options(root=root, out=tmp_path / "out", pack=tmp_path / "pack", cpu=cpu, budget=budget,
                      ddp=False, data_root=tmp_path / "data", cache_dir=tmp_path / "cache", argv=[])
    return check.run_check(o), tmp_path / "out", tmp_path / "pack"


def members(tar_path: Path) -> dict[str, str]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read().decode() if m.isfile() else "" for m in tar.getmembers()}


def test_every_sub_timeout_is_clipped_to_the_one_deadline(tmp_path, gpu_root, monkeypatch):
    """Tests, benchmark, Fig. 6 and the report all run to their timeouts (each then takes its
    kill's grace too): the whole check still ends by the budget, the report included."""
    fake = FakeRuns({"graph tests": 40, "cuda tests": FOREVER, "benchmark": FOREVER,
                     "fig6": FOREVER, "report": FOREVER, "unpack": 2, "decode": 5})
    rc, out, pack = run(tmp_path, gpu_root, monkeypatch, fake)
    start, budget = 1000.0, 520
    for c in fake.calls:
        assert c["start"] + c["timeout"] + c["grace"] <= start + budget, c["kind"]
        assert c["end"] <= start + budget, c["kind"]
    assert [c["kind"] for c in fake.calls] == ["unpack", "decode", "graph tests", "cuda tests",
                                               "benchmark", "fig6", "report"]
    assert fake.of("benchmark")["timeout"] == pytest.approx(0.45 * budget)  # its own cap, clipped
    # Fig. 6 ends at the work deadline (budget - reserve); its SIGTERM grace and the report fit after
    assert fake.of("fig6")["start"] + fake.of("fig6")["timeout"] == pytest.approx(start + budget - 45)
    assert fake.of("report")["timeout"] == pytest.approx(45 - check.FIG6_GRACE_S - check.KILL_GRACE_S
                                                         - check.PACK_S)
    assert rc == 0  # the runs stopped as interrupted, and the report still got written
    summary = (pack / "summary.md").read_text()
    assert "- fig6: stopped at the deadline" in summary and "- state: finished" in summary
    assert "cut after 0 rows" in summary  # the benchmark was killed: what it wrote is used


def test_no_time_left_means_not_started_never_a_late_start(tmp_path, gpu_root, monkeypatch):
    fake = FakeRuns({"graph tests": FOREVER, "cuda tests": FOREVER, "unpack": 2, "decode": 2})
    rc, out, pack = run(tmp_path, gpu_root, monkeypatch, fake, budget=200)
    assert fake.t <= 1000 + 200
    not_started = [c["kind"] for c in fake.calls if c["end"] == c["start"]]
    assert not_started == ["cuda tests", "benchmark"]  # the graph tests took the rest of the work time
    assert "fig6: not started: no time left before the deadline" in (out / "gpu_check.log").read_text()
    assert rc == 1 and "- state: finished" in (pack / "summary.md").read_text()


def test_the_cuda_tests_end_before_fig6_starts_and_fig6_is_sized_from_what_is_left(
        tmp_path, gpu_root, monkeypatch):
    fake = FakeRuns({"graph tests": 40, "cuda tests": 70, "benchmark": 100, "fig6": 50})
    rc, out, _ = run(tmp_path, gpu_root, monkeypatch, fake)
    fig6 = fake.of("fig6")
    tests = [c for c in fake.calls if c["kind"].endswith("tests")]
    assert len(tests) == 2 and all(c["end"] <= fig6["start"] for c in tests)
    assert all(c["start"] >= fig6["end"] or c["end"] <= fig6["start"] for c in fake.calls if c is not fig6)
    # sized from the time left once the tests and the benchmark were done, less the start-up
    left = 1000 + 520 - 45 - fig6["start"] - 60
    facts = json.loads((out / "facts.json").read_text())
    assert f"in the {left:.0f} s left" in facts["length"] or f"of {left:.0f} s" in facts["length"]
    assert rc == 0 and facts["graphs"] is True


def test_each_phase_packs_its_logs_and_results_as_it_ends(tmp_path, gpu_root, monkeypatch):
    """What the device tool brings back if it kills the whole check during Fig. 6: the pack
    made as the benchmark ended."""
    seen = {}

    def at_fig6(cmd):
        seen["files"] = sorted(p.name for p in (tmp_path / "pack").iterdir())
        seen["tar"] = members(tmp_path / "pack" / "gpu_check.tar.gz")
        seen["summary"] = (tmp_path / "pack" / "summary.md").read_text()
    fake = FakeRuns({}, hooks={"fig6": at_fig6})
    run(tmp_path, gpu_root, monkeypatch, fake)
    assert seen["files"] == ["gpu_check.log", "gpu_check.tar.gz", "summary.md"]
    for name in ("env.json", "logs/unpack.log", "logs/decode.log", "logs/tests-graphs.xml",
                 "logs/tests-cuda.txt", "logs/benchmark.log", "results/benchmarks/gpu.json",
                 "summary.md", "facts.json"):
        assert name in seen["tar"], name
    assert "written after phase benchmark" in seen["summary"]
    assert "graphs {'passed': 3" in seen["summary"]
    assert "benchmark: results/benchmarks/gpu.md" in seen["summary"]


def test_an_error_in_a_phase_still_writes_the_summary_and_the_pack(tmp_path, gpu_root, monkeypatch):
    def boom(cmd):
        raise RuntimeError("the benchmark's parent broke")
    fake = FakeRuns({}, hooks={"benchmark": boom})
    rc, out, pack = run(tmp_path, gpu_root, monkeypatch, fake)
    assert rc == 1
    summary = (pack / "summary.md").read_text()
    assert "- state: FAILED in phase benchmark: RuntimeError: the benchmark's parent broke" in summary
    tar = members(pack / "gpu_check.tar.gz")
    assert "RuntimeError" in tar["logs/error.txt"] and tar["summary.md"] == summary
    assert "ERROR in phase benchmark" in (pack / "gpu_check.log").read_text()
    assert not [c for c in fake.calls if c["kind"] == "fig6"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_to_the_check_still_writes_the_summary_and_the_pack(tmp_path, gpu_root, monkeypatch):
    """A limit above the check (the device tool's) stops it with SIGTERM during Fig. 6."""
    def term(cmd):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs here
    before = signal.getsignal(signal.SIGTERM)
    fake = FakeRuns({}, hooks={"fig6": term})
    rc, out, pack = run(tmp_path, gpu_root, monkeypatch, fake)
    assert rc == 128 + signal.SIGTERM
    assert "FAILED in phase fig6: Stopped: signal 15" in (pack / "summary.md").read_text()
    assert "summary.md" in members(pack / "gpu_check.tar.gz")
    assert signal.getsignal(signal.SIGTERM) == before  # put back


def test_a_cut_fig6_gets_no_verdict_and_says_which_runs_were_cut(tmp_path, gpu_root, monkeypatch):
    fake = FakeRuns({"fig6": FOREVER})
    rc, out, pack = run(tmp_path, gpu_root, monkeypatch, fake)
    summary = (pack / "summary.md").read_text()
    total = int(next(c for c in fake.of("fig6")["cmd"] if c.startswith("trainer.iterations="))
                .split("=")[1])
    assert f"residual-20 was cut at step {total // 2:,} of {total:,} (interrupted)" in summary
    assert "no verdict:" in summary and "residual-56 ends" not in summary
    assert "- **Cut:** plain-20 was cut" in summary


def test_the_commit_comes_from_gpu_bundles_file_where_the_tree_has_no_git(tmp_path, gpu_root,
                                                                           monkeypatch):
    rc, out, pack = run(tmp_path, gpu_root, monkeypatch, FakeRuns({}))
    assert json.loads((out / "env.json").read_text())["git"] == "abc1234+dirty"
    assert "git abc1234+dirty" in (pack / "summary.md").read_text()


def test_run_logged_kills_at_its_timeout_and_starts_nothing_without_time(tmp_path):
    log = tmp_path / "sleep.log"
    began = time.monotonic()
    rc = check.run_logged(["sleep", "60"], log, 1.5, dict(os.environ), tmp_path, grace=2)
    assert rc == 124 and time.monotonic() - began < 10
    assert "killed after 2 s (the deadline)" in log.read_text()
    rc = check.run_logged(["sleep", "60"], log, 0.5, dict(os.environ), tmp_path)
    assert rc == 124 and "not started: no time left" in log.read_text()


def test_a_deadline_clips_what_is_asked_to_what_is_left(monkeypatch):
    monkeypatch.setattr(check, "clock", lambda: 100.0)
    d = check.Deadline(130.0)
    assert d.clip(10) == 10 and d.clip(50) == 30 and d.clip(50, grace=10) == 20
    assert check.Deadline(90.0).clip(10) == 0


def test_cpu_mode_runs_the_gpu_branchs_own_data_steps_gate_and_sizing(tmp_path, monkeypatch):
    """No synthetic shortcut: CPU mode makes an archive in CIFAR-10's layout, and the GPU
    branch's find, unpack (sha256 checked) and decode run on it for real (subprocesses); the
    tests run with the GPU's selections and junit files, whose skips close the gate; Fig. 6 is
    sized by the same step times and trains on the decoded copy."""
    fake = FakeRuns({}, real=("unpack", "decode"), cuda=False)
    root = Path(check.__file__).resolve().parents[2]
    rc, out, pack = run(tmp_path, root, monkeypatch, fake, budget=240, cpu=True)
    assert rc == 0, (out / "gpu_check.log").read_text()
    for split, n in (("train", 10), ("test", 5)):
        folders = sorted((out / "data" / "cifar10-jpeg" / split).iterdir())
        assert [f.name for f in folders] == list(check.CLASSES)
        assert all(len(list(f.glob("*.jpg"))) == n for f in folders)
    assert len(list((out / "cache").glob("cifar10-folders-*.npz"))) == 1  # decoded once, there
    assert [c["kind"] for c in fake.calls] == ["unpack", "decode", "graph tests", "cuda tests",
                                               "benchmark", "fig6", "report"]
    graph_tests = fake.of("graph tests")["cmd"]
    assert graph_tests[graph_tests.index("pytest") + 1:][:3] == check.GRAPH_TESTS
    assert "--collect-only" not in graph_tests and any(c.startswith("--junitxml=") for c in graph_tests)
    facts = json.loads((out / "facts.json").read_text())
    assert facts["graphs"] is False and facts["graphs_why"].startswith("graph tests not passed")
    # residual-8's 4 ms scaled to 10 and 28 ms: 2 x 38 x 1.15
    assert "the full 6 iterations fit: 87.4 ms per iteration" in facts["length"]
    overrides = fake.of("fig6")["cmd"]
    assert f"data.root={out / 'data'}" in overrides and f"data.cache_dir={out / 'cache'}" in overrides
    assert "data.download=false" in overrides and not [o for o in overrides if o.startswith("data=")]
    bench = fake.of("benchmark")["cmd"]
    assert arg(bench, "--data-root") == str(out / "data") and arg(bench, "--cache-dir") == str(out / "cache")
