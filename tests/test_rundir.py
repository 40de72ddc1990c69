"""depthlab.rundir: the run directory's names, the summary, the atomic writer, log10 and
the volatile config keys, each defined once; and rundir, analysis and tracking load no torch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from depthlab import rundir
from depthlab.analysis import SUMMARY_KEYS
from depthlab.cli.sweep import default_sweep_name
from depthlab.launch import config_difference
from depthlab.rundir import RunSummary

# ------------------------------------------------------------------------------ the summary


def test_summary_round_trip_keeps_keys_order_and_values(tmp_path):
    summary = rundir.summary_head(
        name="plain-8-s0", group="g", arch="plain", depth=8, layout="cifar", norm="batch",
        shortcut="A", preact=False, zero_init_residual=False, seed=0, data="synthetic",
        num_classes=10, train_subset=None, train_size=128, test_size=64, params=75290,
        flops=24478976, epochs=2, total_steps=8, device="cpu", machine="here")
    summary.update(status="running", started_at="2026-01-01T00:00:00+00:00")
    summary.update(rundir.summary_result(
        status="diverged", final_train_error=0.5, final_test_error=float("nan"),
        best_test_error=None, epochs_completed=1, steps_completed=4,
        grad_ratio_first_last_init=100.0, grad_ratio_first_last=float("inf")))
    path = rundir.write_summary(tmp_path, summary)
    assert path == tmp_path / rundir.SUMMARY
    back = rundir.read_summary(tmp_path)
    assert list(back) == list(summary)
    assert back == {**summary, "final_test_error": None, "grad_ratio_first_last": None}
    assert back["status"] == "diverged" and back["diverged"] is True
    assert back["log10_grad_ratio_init"] == 2.0 and back["log10_grad_ratio"] is None
    # the file itself: indented, in the order written, ending in a newline
    text = path.read_text()
    assert text == json.dumps(back, indent=2) + "\n"
    assert not [p for p in tmp_path.iterdir() if p.name != rundir.SUMMARY]  # no temp file left


def test_builders_give_summary_json_its_order():
    head = rundir.summary_head(**{k: None for k in (
        "name", "group", "arch", "depth", "layout", "norm", "shortcut", "preact",
        "zero_init_residual", "seed", "data", "num_classes", "train_subset", "train_size",
        "test_size", "params", "flops", "epochs", "total_steps", "device", "machine")})
    assert list(head) == [
        "name", "group", "arch", "depth", "layout", "norm", "shortcut", "preact",
        "zero_init_residual", "seed", "data", "num_classes", "train_subset", "train_size",
        "test_size", "params", "flops", "epochs", "total_steps", "device", "machine"]
    result = rundir.summary_result(status="completed", final_train_error=None,
                                   final_test_error=None, best_test_error=None,
                                   epochs_completed=0, steps_completed=0,
                                   grad_ratio_first_last_init=None, grad_ratio_first_last=None)
    assert list(result) == [
        "status", "diverged", "final_train_error", "final_test_error", "best_test_error",
        "epochs_completed", "steps_completed", "grad_ratio_first_last_init",
        "grad_ratio_first_last", "log10_grad_ratio_init", "log10_grad_ratio"]
    # a failure over what was known: known keys keep their places, new ones follow
    failed = rundir.failed_summary({"name": "x", "group": "g", "status": "running",
                                    "steps_completed": 3}, name="y", error="Boom")
    assert failed == {"name": "y", "group": "g", "status": "failed", "steps_completed": 3,
                      "diverged": False, "error": "Boom", "epochs_completed": 0}
    assert list(failed) == ["name", "group", "status", "steps_completed", "diverged", "error",
                            "epochs_completed"]
    assert list(rundir.failed_summary({}, name="z", error="e")) == [
        "name", "status", "diverged", "error", "steps_completed", "epochs_completed"]


def test_every_key_written_or_read_is_a_run_summary_key():
    keys = set(RunSummary.__annotations__)
    assert set(SUMMARY_KEYS) <= keys
    assert {"log10_grad_ratio_init", "log10_grad_ratio", "kind", "probe_note"} <= keys


def test_first_last_ratio_skips_shortcuts_and_a_zero_last_norm_is_inf():
    class L:
        def __init__(self, shortcut):
            self.shortcut = shortcut

    layers = [L(False), L(True), L(False), L(False)]
    assert rundir.first_last_ratio(layers, [8.0, 100.0, 3.0, 2.0]) == 4.0
    assert rundir.first_last_ratio(layers, [8.0, 100.0, 3.0, 0.0]) == math.inf


# ------------------------------------------------------------------------------ writing


def test_atomic_write_replaces_and_writes_text_as_utf8(tmp_path):
    path = tmp_path / "a.txt"
    rundir.atomic_write(path, "old")
    rundir.atomic_write(path, "neu: ü\n")
    assert path.read_bytes() == "neu: ü\n".encode("utf-8")
    rundir.atomic_write(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_failed_rename_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / rundir.SUMMARY
    rundir.write_json(path, {"status": "running"})

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        rundir.write_json(path, {"status": "completed"})
    assert json.loads(path.read_text()) == {"status": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [rundir.SUMMARY]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "x.bin"
    rundir.atomic_write(path, b"good")
    with pytest.raises(RuntimeError):
        with rundir.atomic_file(path) as f:
            f.write(b"half")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_atomic_file_keeps_the_previous_version(tmp_path):
    path, keep = tmp_path / rundir.CHECKPOINT, tmp_path / rundir.CHECKPOINT_PREVIOUS
    with rundir.atomic_file(path, keep=keep) as f:  # nothing to keep yet
        f.write(b"1")
    assert path.read_bytes() == b"1" and not keep.exists()
    with rundir.atomic_file(path, keep=keep) as f:
        f.write(b"2")
    assert path.read_bytes() == b"2" and keep.read_bytes() == b"1"


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    path = tmp_path / "x.json"
    rundir.write_json(path, {"a": float("nan"), "b": [float("-inf"), 1.5], "c": {"d": 2}})
    assert rundir.read_json(path) == {"a": None, "b": [None, 1.5], "c": {"d": 2}}


# ------------------------------------------------------------------------------ log10


@pytest.mark.parametrize("value, expected", [
    (100.0, 2.0), (1, 0.0), ("1000", 3.0), (0.01, -2.0),
    (None, None), (float("nan"), None), (float("inf"), None), (float("-inf"), None),
    (0.0, None), (-5.0, None), ("ten", None), ([1.0], None),
])
def test_log10_is_none_unless_finite_and_positive(value, expected):
    got = rundir.log10(value)
    assert got == pytest.approx(expected) if expected is not None else got is None


# ------------------------------------------------------------------------------ volatile keys


@pytest.mark.parametrize("key, volatile", [
    ("run.fresh", True), ("logger", True), ("logger.wandb.mode", True), ("paths.runs_dir", True),
    ("sweep.name", True), ("trainer.device", True), ("data.root", True),
    ("run.name", False), ("trainer.epochs", False), ("data", False), ("depth", False),
    ("data.rootdir", False), ("+trainer.device", False),
])
def test_volatile_keys_cover_their_subkeys(key, volatile):
    assert rundir.is_volatile(key) is volatile


# Names computed with the code before rundir.VOLATILE existed (the prefix tuple that
# default_sweep_name had): a sweep's directory must not move.
@pytest.mark.parametrize("prefix, overrides, name", [
    ("sweep", ["depth=8,14", "data=synthetic", "logger=none"], "sweep-datasynthetic_depth8-14"),
    ("sweep", ["arch=plain,residual", "depth=20,32,44,56", "data.train_subset=5000"],
     "sweep-archplain-residual_train_subset5000_depth20-32-44-56"),
    ("compare", ["depth=18,34", "seed=0,1,2", "data=imagenet", "data.root=/data/imagenet",
                 "trainer=gpu", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
     "compare-dataimagenet_depth18-34_seed0-1-2_trainergpu"),
    ("sweep", ["depth=20", "run.fresh=true", "sweep.name=x", "paths.runs_dir=r",
               "logger.wandb.mode=online", "data.cache_dir=c", "data.workers=4",
               "trainer.device=cpu", "trainer.threads=2", "trainer.log_every=5"], "sweep-depth20"),
    ("experiment", ["experiment=quick", "seed=range(3)", "arch.layout=cifar", "optim=adamw",
                    "schedule=cosine", "trainer.epochs=3"],
     "experiment-layoutcifar_experimentquick_optimadamw_-f599ae38"),
    ("sweep", ["depth=" + ",".join(str(d) for d in range(8, 200, 6)),
               "arch=plain,residual,dense"],
     "sweep-archplain-residual-dense_depth8-14-20-26-32--1803ece1"),
    ("sweep", [], "sweep-default"),
    ("sweep", ["logger=none"], "sweep-default"),
])
def test_default_sweep_names_are_unchanged(prefix, overrides, name):
    assert default_sweep_name(prefix, overrides) == name


def test_config_difference_ignores_the_volatile_keys():
    old = {"depth": 8, "run": {"fresh": False, "name": "a"}, "logger": {"wandb": {}},
           "trainer": {"device": "cpu", "epochs": 2}, "paths": {"runs_dir": "runs"},
           "sweep": {"name": "s"}, "data": {"root": "x", "name": "synthetic"}}
    new = {"depth": 8, "run": {"fresh": True, "name": "a"}, "logger": None,
           "trainer": {"device": "cuda", "epochs": 2}, "paths": {"runs_dir": "elsewhere"},
           "sweep": {"name": "t"}, "data": {"root": "y", "name": "synthetic"}}
    assert config_difference(old, new) == []
    new["trainer"]["epochs"] = 3
    assert config_difference(old, new) == ["trainer.epochs: 2 -> 3"]


# ------------------------------------------------------------------------------ imports


def test_rundir_analysis_and_tracking_load_no_torch():
    code = ("import sys, depthlab.rundir, depthlab.analysis, depthlab.tracking, "
            "depthlab.tracking.local, depthlab.tracking.safe; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'hydra') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_rundir_alone_loads_nothing_of_depthlab():
    code = ("import sys, depthlab.rundir; "
            "print(sorted(m for m in sys.modules if m.startswith('depthlab')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['depthlab', 'depthlab.rundir']"
