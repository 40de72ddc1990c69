"""scripts/gpu_check.py: its CPU mode end to end (what CI runs, so that the one GPU command
never rots), and the sizing of the Fig. 6 runs from the benchmark's step times."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from depthlab.bench import check, fig6, gpu

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_the_full_schedule_when_it_fits():
    n, why = fig6.plan_iterations({"20": 1.0, "56": 2.0}, 600, 64000)  # 6.9 ms an iteration
    assert n == 64000 and why.startswith("the full 64,000 iterations fit")


def test_fewer_iterations_when_it_does_not_and_the_milestones_stay_fractions():
    step = {"20": 5.0, "56": 12.0}  # 2 x 17 ms x 1.15 = 39.1 ms per iteration of the four
    n, why = fig6.plan_iterations(step, 300, 64000)
    assert n == 7600  # 300 / 0.0391 = 7672, down to a multiple of 100
    assert n * 0.0391 <= 300
    assert "7,600 of the paper's 64,000 iterations (12%)" in why and "50% and 75%" in why
    assert fig6.plan_iterations(step, 1, 64000)[0] == 100  # never nothing
    assert fig6.plan_iterations(step, -5, 6)[0] == 6


def test_the_four_at_once_measurement_wins_over_the_sum_when_there_is_one():
    step = {"20": 5.0, "56": 12.0}
    n, why = fig6.plan_iterations(step, 300, 64000, together_ms=20.0)  # 23 ms with the 15%
    assert n == 13000 and "measured with the four at once" in why
    assert "sum of the four step times alone" in fig6.plan_iterations(step, 300, 64000)[1]


def test_the_report_section_puts_the_paper_beside_and_judges_residual_56():
    runs = {f"{a}-{d}-s0": {"status": "completed", "steps_completed": 100, "wall_seconds": 60,
                            "final_train_error": e / 100, "final_test_error": (e + 1) / 100}
            for (a, d), e in {("plain", 20): 9.0, ("plain", 56): 12.0, ("residual", 20): 8.0,
                              ("residual", 56): 6.5}.items()}
    facts = {"env": {"gpu": "NVIDIA H200", "driver": "580", "torch": "2.11", "cuda": "13.0",
                     "cudnn": 91000}, "length": "L", "graphs": True, "graphs_why": "W",
             "every": 100, "train_s": 300, "total_s": 500}
    text = fig6.fig6_section(runs, facts)
    assert "| residual-56 | completed | 100 | 6.50 | 7.50 | 6.97 | 1.0 |" in text
    assert "| residual-20 | completed | 100 | 8.00 | 9.00 | 8.75 | 1.0 |" in text
    assert "residual-56 ends lower than residual-20 in training error by 1.50 points" in text
    assert "NVIDIA H200" in text and "trainer.cuda_graphs=true" in text
    del runs["residual-56-s0"]
    assert "no verdict: residual-56 is missing (only completed runs are compared)" in fig6.fig6_section(runs, facts)


def test_the_verdict_compares_completed_runs_only_and_says_which_was_cut():
    """The deadline's SIGTERM leaves residual-56 interrupted with errors from a shorter
    schedule: those are not compared, and the section says where it was cut."""
    done = {"status": "completed", "steps_completed": 6400, "total_steps": 6400, "wall_seconds": 60,
            "final_train_error": 0.10, "final_test_error": 0.12}
    runs = {"residual-20-s0": done, "plain-20-s0": done, "plain-56-s0": done,
            "residual-56-s0": {**done, "status": "interrupted", "steps_completed": 4100,
                               "final_train_error": 0.05, "final_test_error": 0.08}}
    text = fig6.fig6_section(runs, {"env": {}, "length": "L", "graphs": False, "graphs_why": "W",
                                    "every": 100, "train_s": 300, "total_s": 500})
    assert "ends lower" not in text and "ends higher" not in text
    assert ("- **Residual-56 vs residual-20:** no verdict: residual-56 was cut at step 4,100 of "
            "6,400 (interrupted) (only completed runs are compared)") in text
    assert "- **Cut:** residual-56 was cut at step 4,100 of 6,400 (interrupted)" in text
    assert "| residual-56 | interrupted | 4100 |" in text
    runs["residual-56-s0"] = done
    assert "- **Cut:**" not in fig6.fig6_section(runs, {"env": {}})  # a partial summary's facts do


@pytest.mark.slow
def test_cpu_mode_writes_every_file_the_gpu_run_would(tmp_path):
    """The command the GPU session runs, in its CPU mode: the tiny archive found, unpacked and
    decoded, the CUDA test selections (skipping), benchmark rows (CUDA ones skipped, saying so),
    the four Fig. 6 runs on the decoded images, their report, the pack."""
    out, pack = tmp_path / "out", tmp_path / "pack"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "gpu_check.py"), "--cpu", "--out", str(out),
                           "--pack", str(pack)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CPU mode" in proc.stdout and "fig6: completed" in proc.stdout

    # what the device tool brings back: at most 8 files, none in a folder
    assert sorted(p.name for p in pack.iterdir()) == ["gpu_check.log", "gpu_check.tar.gz", "summary.md"]
    with tarfile.open(pack / "gpu_check.tar.gz") as tar:
        names = tar.getnames()
    for want in ("results/gpu-fig6/report.md", "results/gpu-fig6/summary.csv",
                 "results/benchmarks/gpu.md", "results/benchmarks/gpu.json", "env.json",
                 "summary.md", "runs/gpu-fig6/residual-56-s0/gradflow.csv", "logs/fig6.log"):
        assert want in names, want
    assert not [n for n in names if n.endswith(".pt")]  # no checkpoints

    # the four runs: the recipe, at the length the plan chose (CPU mode: the whole 6 steps)
    table = pd.read_csv(out / "results" / "gpu-fig6" / "summary.csv")
    assert sorted(zip(table.arch, table.depth)) == [("plain", 20), ("plain", 56),
                                                   ("residual", 20), ("residual", 56)]
    assert set(table.status) == {"completed"}
    run = out / "runs" / "gpu-fig6" / "residual-56-s0"
    s = json.loads((run / "summary.json").read_text())
    assert s["steps_completed"] == 6 and s["device"] == "cpu"
    config = (run / "config.yaml").read_text()
    assert "milestones:\n  - 0.5\n  - 0.75" in config or "milestones: [0.5, 0.75]" in config
    assert list((out / "results" / "gpu-fig6").glob("*.png"))

    report = (out / "results" / "gpu-fig6" / "report.md").read_text()
    title, section = report.split("\n", 2)[0], report.split("\n", 2)[2]
    assert title.startswith("# Fig. 6 on one GPU")
    assert section.startswith("## On one GPU, beside the paper")
    assert "no GPU (CPU mode" in section and "the full 6 iterations fit" in section
    assert "| residual-56 | completed | 6 |" in section and "6.97" in section and "8.75" in section

    bench = json.loads((out / "results" / "benchmarks" / "gpu.json").read_text())
    rows = {r["key"]: r for r in bench["rows"]}
    assert rows["graphs/residual-8-cifar"]["met"] is None
    assert "needs a CUDA device" in rows["graphs/residual-8-cifar"]["note"]
    assert rows["train/residual-8-cifar"]["depthlab"] > 0 and rows["train/residual-8-cifar"]["baseline"] > 0
    assert rows["ddp/residual-8-cifar"]["detail"]["backend"] == "gloo"
    assert bench["nets"]["residual-8-cifar"]["fast_path"] == "eager"

    summary = (pack / "summary.md").read_text()
    assert "mode: CPU" in summary and "## Benchmark" in summary and "- state: finished" in summary
    tests = (out / "logs" / "tests-graphs.xml").read_text() + (out / "logs" / "tests-cuda.xml").read_text()
    for node in ("test_graph_replays_give_eager_gradient_flow_step_by_step",
                 "test_cuda_bf16_channels_last_with_the_device_resident_loader",
                 "test_a_run_with_cuda_graphs_writes_eager_gradient_flow"):
        assert node in tests  # the GPU run's test selections ran (and skipped these: no CUDA)
    facts = json.loads((out / "facts.json").read_text())
    assert facts["graphs"] is False and facts["cpu_mode"] is True
    assert s["data"] == "cifar10" and s["train_size"] == 100  # the tiny archive, unpacked and decoded
    assert len(list((out / "cache").glob("cifar10-folders-*.npz"))) == 1


@pytest.mark.slow
def test_a_path_that_fails_is_left_out_and_its_rows_say_why():
    """The graphed runs fail here (no CUDA: trainer.cuda_graphs=true is an error); the eager
    and hand-loop rows are still measured, and the fast path falls back to eager."""
    rows, net = gpu.net_rows(gpu.CPU, gpu.CPU.nets[0], cuda=True)
    by_key = {r.key: r for r in rows}
    assert by_key["train/residual-8-cifar"].met in (True, False)  # measured
    graphs = by_key["graphs/residual-8-cifar"]
    assert graphs.met is None and "graphs failed" in graphs.note and "needs a CUDA device" in graphs.note
    assert by_key["gradflow/graphs/residual-8-cifar"].met is None
    assert by_key["gradflow/eager/residual-8-cifar"].met in (True, False)
    assert net["fast_path"] == "eager" and net["step_ms"]["graphs"] is None and net["step_ms"]["eager"] > 0


@pytest.mark.slow
def test_four_nets_at_once_in_four_processes(tmp_path):
    """The row gpu_check sizes Fig. 6 from: four fresh processes (spawn), depthlab's own step."""
    proc = subprocess.run([sys.executable, str(SCRIPTS / "gpu_benchmark.py"), "--cpu", "--only",
                           "together", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "gpu.json").read_text())["together"]["eager"]
    assert set(got["steps_per_s"]) == {"plain-20", "residual-20", "plain-56", "residual-56"}
    assert all(rate > 0 for rate in got["steps_per_s"].values())
    assert got["iteration_ms"] == pytest.approx(1000 / min(got["steps_per_s"].values()))


def test_the_fast_path_gate_names_tests_that_exist_and_reads_junit(tmp_path):
    """The gate's names are real test ids of tests/engine/test_cuda_graphs.py, and a junit
    file with one of them skipped or failed does not open it."""
    source = (SCRIPTS.parent / "tests" / "engine" / "test_cuda_graphs.py").read_text()
    for name in check.GRAPH_GATE:
        assert f"def {name.split('[')[0]}(" in source
    cases = "".join(f'<testcase name="{n}"/>' for n in sorted(check.GRAPH_GATE))
    (tmp_path / "ok.xml").write_text(f'<testsuites><testsuite tests="3">{cases}</testsuite></testsuites>')
    assert check.GRAPH_GATE <= check.passed_tests(tmp_path / "ok.xml")
    skipped = cases.replace('/>', '><skipped message="needs a CUDA device"/></testcase>', 1)
    (tmp_path / "skip.xml").write_text(f"<testsuites><testsuite>{skipped}</testsuite></testsuites>")
    assert not check.GRAPH_GATE <= check.passed_tests(tmp_path / "skip.xml")
    assert check.passed_tests(tmp_path / "missing.xml") == set()
