"""scripts/benchmark.py runs on tiny settings and writes its table (no timing assertions:
the numbers of --quick mean nothing, only the shape of what is written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from script_module import script_module

from depthlab.bench.rows import fmt_ratio, make_row
from depthlab.bench.timing import interleaved

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"
JSON_ROW_KEYS = {"key", "bench", "name", "depthlab", "baseline", "unit", "ratio", "spread",
                 "ratio_unit", "target", "met", "reps", "baseline_is", "note", "detail"}
MD_HEADER = ("| benchmark | depthlab | baseline | ratio (median) | spread (min-max) | target | met "
             "| reps |")


@pytest.fixture(scope="module")
def bench():
    with script_module("benchmark.py", "depthlab_benchmark") as module:
        yield module


def run(bench, out: Path, *args: str) -> tuple[dict, str]:
    # --threads 0: leave the test process's torch threads as they are
    assert bench.main(["--quick", "--threads", "0", "--out", str(out), *args]) == 0
    result = json.loads((out / "latest.json").read_text())
    return result, (out / "latest.md").read_text()


def table_rows(md: str) -> list[list[str]]:
    lines = md.splitlines()
    start = lines.index(MD_HEADER)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def check_common(result: dict, md: str) -> None:
    for key in ("date", "command", "machine", "settings", "rows", "seconds"):
        assert key in result
    for key in ("cpu", "cores", "torch", "torch_threads"):
        assert key in result["machine"]
    assert "scripts/benchmark.py" in result["command"] and "--quick" in result["command"]
    assert result["machine"]["cpu"] in md and result["command"] in md
    for row in result["rows"]:
        assert set(row) == JSON_ROW_KEYS
    md_rows = table_rows(md)
    assert len(md_rows) == len(result["rows"])
    assert all(len(cells) == 8 for cells in md_rows)
    for cells, row in zip(md_rows, result["rows"]):
        assert cells[0] == row["name"]
        assert cells[6] in ("yes", "no", "skipped")


def test_train_and_parity_rows(bench, tmp_path):
    result, md = run(bench, tmp_path, "--only", "train", "parity")
    check_common(result, md)
    keys = [r["key"] for r in result["rows"]]
    assert keys == ["train/residual-8-cifar", "train/dense-10-cifar", "parity/residual-18",
                    "parity/dense-121"]
    for row in result["rows"]:
        assert row["depthlab"] > 0 and row["baseline"] > 0 and row["reps"] == 2
        assert row["spread"][0] <= row["ratio"] <= row["spread"][1]
        assert row["met"] in (True, False)
        assert len(row["detail"]["per_rep"]["ratio"]) == 2
    assert result["rows"][0]["target"] == ">= 0.97x"
    assert result["rows"][2]["target"] == ">= 0.98x"
    # the same architecture on both sides of a parity row
    params = result["rows"][2]["detail"]["params"]
    assert params["depthlab"] == params["torchvision"]


def test_data_row_on_a_jpeg_fixture(bench, tmp_path):
    from cifar_fixture import TinyCifar

    TinyCifar().write_folders(tmp_path / "data" / "cifar10-jpeg", ext="jpg")
    result, md = run(bench, tmp_path / "out", "--only", "data", "--reps", "1",
                     "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"))
    check_common(result, md)
    [row] = result["rows"]
    assert row["key"] == "data/cifar10" and row["unit"] == "img/s" and row["met"] in (True, False)
    assert row["target"] == ">= 5x" and row["reps"] == 1
    assert list((tmp_path / "cache").glob("*.npz"))  # depthlab's cache went where it was told


def test_data_row_skipped_without_data(bench, tmp_path):
    result, md = run(bench, tmp_path, "--only", "data", "--data-root", str(tmp_path / "nothing"))
    [row] = result["rows"]
    assert row["met"] is None and row["ratio"] is None and row["note"].startswith("skipped: ")
    assert "unpack_cifar.sh" in row["note"]
    assert "| skipped |" in md and row["note"] in md


@pytest.mark.slow
def test_gradflow_and_memory_rows_from_the_command_line(tmp_path):
    """The real command (a fresh process, W&B offline, memory subprocesses) and its printed table."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--only", "gradflow", "memory", "--profile",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # W&B env: conftest's
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "latest.json").read_text())
    md = (tmp_path / "out" / "latest.md").read_text()
    check_common(result, md)
    keys = [r["key"] for r in result["rows"]]
    assert keys == ["gradflow/vs-watch/residual-8-cifar", "gradflow/share/residual-8-cifar",
                    "gradflow/vs-watch/dense-10-cifar", "gradflow/share/dense-10-cifar",
                    "memory/dense-40"]
    share = result["rows"][1]
    assert share["ratio_unit"] == "%" and share["target"] == "< 2%"
    assert set(share["detail"]["probe_parts_ms"]) == {"hooks", "record", "write"}
    memory = result["rows"][-1]
    assert memory["unit"] == "MB" and memory["depthlab"] > 0 and memory["baseline"] > 0
    for model in ("residual-8-cifar", "dense-10-cifar"):  # --profile: the op table, parts labelled
        profile = (tmp_path / "out" / f"profile-{model}.txt").read_text()
        assert "Self CPU time total" in profile
        for part in ("gradflow.hooks", "gradflow.record", "gradflow.write"):
            assert part in profile
    assert "depthlab benchmark" in proc.stdout  # the rich table
    for row in result["rows"]:
        assert row["name"][:20] in proc.stdout


def test_interleaving_alternates_the_order():
    calls = []
    got = interleaved(4, {"a": lambda: calls.append("a") or 1,
                                "b": lambda: calls.append("b") or 2})
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert got == {"a": [1] * 4, "b": [2] * 4}


def test_row_takes_medians_and_spread():
    row = make_row("train/x", "x", depthlab=[1.0, 3.0, 2.0], baseline=[2.0, 2.0, 2.0],
                         ratios=[0.95, 1.0, 0.99], unit="img/s", target=(">=", 0.97))
    assert row.depthlab == 2.0 and row.ratio == 0.99 and row.spread == (0.95, 1.0)
    assert row.met is True and row.target == ">= 0.97x"
    share = make_row("gradflow/share/x", "x", depthlab=[1.0], baseline=[40.0],
                           ratios=[0.025], unit="ms/step", target=("<", 0.02), ratio_unit="%")
    assert share.met is False and share.target == "< 2%"
    assert fmt_ratio(0.025, "%") == "2.50%"


def test_the_peak_is_cores_times_clock_times_flops_per_cycle():
    from depthlab.bench.peak import Peak, flops_per_cycle, training_flops

    zen5 = frozenset({"avx512f", "avx512_bf16", "avx2", "fma"})
    assert flops_per_cycle(zen5, "AuthenticAMD", 26)[:2] == (64, 128)  # bf16 dot products: 2x
    assert flops_per_cycle(frozenset({"avx512f"}), "AuthenticAMD", 25)[:2] == (32, None)  # Zen 4
    assert flops_per_cycle(frozenset({"avx2", "fma"}), "GenuineIntel", 6)[:2] == (32, None)
    assert flops_per_cycle(frozenset({"avx512f", "amx_bf16"}), "GenuineIntel", 6)[:2] == (64, 1024)
    p = Peak(cores=2, ghz=2.5, clock_from="/proc/cpuinfo", fp32_per_cycle=64, bf16_per_cycle=128,
             fp32_assumption="AVX-512", bf16_assumption="2x")
    assert p.gflops("fp32") == 320 and p.gflops("bf16") == 640
    assert p.formula("fp32") == "fp32 peak 2 cores x 2.50 GHz x 64 FLOP/cycle = 320 GFLOP/s (AVX-512)"
    assert "no bf16 peak" in Peak(1, 2.5, "", 64, None, "", "no native bf16").formula("bf16")
    assert training_flops(10) == 30  # forward + backward's two matmuls


SPEED_KEYS = ["speed/bf16-vs-hand/residual-8-cifar", "speed/bf16-vs-fp32/residual-8-cifar",
              "speed/compile-vs-eager/residual-8-cifar"]


@pytest.mark.slow
def test_speed_rows_bf16_channels_last_and_compile(bench, tmp_path):
    """Every speed row runs (the bf16 ones where the processor has native bf16), and each
    says its GFLOP/s, the peak's formula and what limits it; the compile row its compile time."""
    from depthlab import machine

    result, md = run(bench, tmp_path, "--only", "speed")
    check_common(result, md)
    rows = {r["key"]: r for r in result["rows"]}
    assert list(rows) == SPEED_KEYS
    measured = SPEED_KEYS if machine.cpu_bf16() else SPEED_KEYS[2:]
    for key in measured:
        row = rows[key]
        assert row["depthlab"] > 0 and row["baseline"] > 0 and row["met"] in (True, False)
        assert "GFLOP/s" in row["note"] and "FLOP/cycle" in row["note"] and "limited by" in row["note"]
        flops = row["detail"]["flops"]
        assert flops["training_per_image"] == 3 * flops["forward_per_image"] > 0
        assert flops["peak"]["fp32_gflops"] > 0 and "3 x forward" in flops["formula"]
    assert [rows[k]["target"] for k in SPEED_KEYS] == [">= 0.97x", ">= 1.6x", ">= 1x"]
    compile_row = rows[SPEED_KEYS[2]]
    assert "compile: its first window took" in compile_row["note"]
    assert len(compile_row["detail"]["compile_seconds"]) == 2


@pytest.mark.slow
def test_bf16_rows_are_skipped_without_native_bf16(bench, tmp_path, monkeypatch):
    from depthlab import machine

    monkeypatch.setattr(machine, "cpu_bf16", lambda *args: ())
    result, md = run(bench, tmp_path, "--only", "speed")
    rows = {r["key"]: r for r in result["rows"]}
    for key in SPEED_KEYS[:2]:
        assert rows[key]["met"] is None and "no native bf16" in rows[key]["note"]
    assert rows[SPEED_KEYS[2]]["met"] in (True, False)  # compile needs no bf16
    assert "img_s" in rows[SPEED_KEYS[2]]["detail"] and "bf16" not in rows[SPEED_KEYS[2]]["detail"]["img_s"]
