"""The GPU check's pieces that keep what a lent GPU machine made: the benchmark's rows on disk
as they are measured, the commit recorded where the copied tree has no .git, the data steps
(unpack refusing another archive), the step times Fig. 6 is sized from."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch
from script_module import SCRIPTS, script_module

from depthlab.bench import check, feeding, fig6, gpu, results
from depthlab.bench.rows import skipped_row


def test_the_benchmark_writes_each_row_as_it_is_measured(tmp_path, monkeypatch):
    """When the data row starts (what a timeout would cut), gpu.json and gpu.md already hold
    the net's rows and step times, marked incomplete; at the end, complete."""
    def net_rows(s, spec, cuda):
        key = f"residual-{spec.depth}-{spec.layout}"
        return ([skipped_row(f"train/{key}", "training step", "stand-in", ">= 0.97x")],
                {"step_ms": {"eager": 3.0, "graphs": None, "hand": 3.0}, "fast_path": "eager", "batch": 8})

    seen = {}

    def data_row(key, name, **kw):
        seen["json"] = json.loads((tmp_path / "gpu.json").read_text())
        seen["md"] = (tmp_path / "gpu.md").read_text()
        return skipped_row(key, name, "stand-in", ">= 5x")
    monkeypatch.setattr(gpu, "net_rows", net_rows)
    monkeypatch.setattr(feeding, "data_row", data_row)
    threads = torch.get_num_threads()
    try:
        with script_module("gpu_benchmark.py", "gpu_benchmark") as script:
            assert script.main(["--cpu", "--only", "nets", "data", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert [r["key"] for r in seen["json"]["rows"]] == ["train/residual-8-cifar"]
    assert seen["json"]["complete"] is False and seen["json"]["nets"]["residual-8-cifar"]["step_ms"]["eager"] == 3.0
    assert "has not finished them" in seen["md"]
    final = json.loads((tmp_path / "gpu.json").read_text())
    assert final["complete"] is True
    assert [r["key"] for r in final["rows"]] == ["train/residual-8-cifar", "data/cifar10-device"]
    assert "has not finished them" not in (tmp_path / "gpu.md").read_text()
    assert not list(tmp_path.glob("*.tmp"))  # replaced whole


def test_the_commit_is_read_from_gpu_bundles_file_where_there_is_no_git(tmp_path, monkeypatch):
    monkeypatch.delenv("DEPTHLAB_GIT", raising=False)
    assert results.git_commit(tmp_path) is None
    (tmp_path / ".gpu").mkdir()
    (tmp_path / ".gpu" / "git-commit").write_text("0e86725+dirty\n")
    assert results.git_commit(tmp_path) == "0e86725+dirty"
    monkeypatch.setenv("DEPTHLAB_GIT", "1234567")  # named by hand: that wins
    assert results.git_commit(tmp_path) == "1234567"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_gpu_bundle_records_the_commit_of_the_tree_that_travels(tmp_path):
    """scripts/gpu_bundle.sh in a copy of its own (a fresh repository; a stand-in python, so
    nothing is downloaded): .gpu/git-commit holds the short commit, +dirty once a tracked file
    changed."""
    proj = tmp_path / "proj"
    (proj / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPTS / "gpu_bundle.sh", proj / "scripts" / "gpu_bundle.sh")
    (proj / "README.md").write_text("x\n")
    (proj / ".gitignore").write_text("/.gpu/\n")
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\nexit 0\n")
    fake_python.chmod(0o755)

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=proj,
                              check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    sha = git("rev-parse", "--short", "HEAD")

    def bundle() -> str:
        subprocess.run(["bash", str(proj / "scripts" / "gpu_bundle.sh"), str(tmp_path / "no-archive")],
                       check=True, capture_output=True, env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake_python)})
        return (proj / ".gpu" / "git-commit").read_text().strip()
    assert bundle() == sha
    (proj / "README.md").write_text("changed\n")
    assert bundle() == f"{sha}+dirty"


def test_unpack_refuses_an_archive_of_another_sha256_and_leaves_no_half_copy(tmp_path):
    archive = check.tiny_archive(tmp_path / "made", per_class=(1, 1))
    dest = tmp_path / "data"
    assert check.main(["unpack", str(archive), str(dest), "0" * 64]) == 1
    assert feeding.jpeg_root(dest) is None
    assert check.main(["unpack", str(archive), str(dest), check.file_sha256(archive)]) == 0
    assert feeding.jpeg_root(dest) == dest / "cifar10-jpeg"
    assert not (dest / ".unpacking").exists()


def test_the_expected_sha256_is_unpack_cifars():
    assert f'sha256="{check.CIFAR_SHA256}"' in (SCRIPTS / "unpack_cifar.sh").read_text()


def test_step_times_scale_a_missing_depth_from_the_deepest_timed_net():
    nets = {"residual-20-cifar": {"step_ms": {"eager": 5.0, "graphs": 2.0}},
            "residual-50-imagenet": {"step_ms": {"eager": 90.0, "graphs": None}}}
    assert fig6.step_times(nets, graphs=False) == {"20": 5.0, "56": 14.0}  # 56 cut: scaled from 20
    assert fig6.step_times(nets, graphs=True) == {"20": 2.0, "56": pytest.approx(5.6)}
    assert fig6.step_times({"residual-8-cifar": {"step_ms": {"eager": 4.0}}}, False) == {"20": 10.0, "56": 28.0}
    assert fig6.step_times({}, False) == {"20": 15.0, "56": 40.0}  # no benchmark: the guess


def test_fig6_reads_the_cache_the_check_decoded_into_and_never_downloads(tmp_path):
    o = fig6.fig6_overrides(fig6.mode(False, None), 6400, True, tmp_path / "runs", tmp_path / "data",
                            tmp_path / "cache")
    assert f"data.root={tmp_path / 'data'}" in o and f"data.cache_dir={tmp_path / 'cache'}" in o
    assert "data.download=false" in o
