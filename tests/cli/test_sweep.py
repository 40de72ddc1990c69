"""`depthlab sweep` and `depthlab compare`: real Hydra multiruns of tiny models."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import TINY, cli, summary

from depthlab.analysis import load_table, verdicts

SWEEP = [o for o in TINY if not o.startswith("depth=")] + ["depth=8,14"]


def runs_in(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")}


@pytest.mark.slow
def test_sweep_default_launcher_then_rerun_skips(tmp_path):
    result = cli("sweep", *SWEEP, "sweep.name=s1")
    assert result.exit_code == 0, result.output
    first_line = " ".join(result.output.split("->")[0].split())
    assert first_line.startswith("Sweep of plain and residual nets (no arch= given): 4 runs")
    sweep_dir = Path("runs/s1")
    runs = runs_in(sweep_dir)
    assert sorted(runs) == ["plain-14-s0", "plain-8-s0", "residual-14-s0", "residual-8-s0"]
    assert all(r["status"] == "completed" and r["group"] == "s1" for r in runs.values())
    # the sweep ends with the table and the report
    assert "plain" in result.output and "residual" in result.output
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert len(table) == 4
    assert (sweep_dir / "report.md").exists() and (sweep_dir / "report.html").exists()
    stamps = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/checkpoint.pt")}
    again = cli("sweep", *SWEEP, "sweep.name=s1")
    assert again.exit_code == 0, again.output
    assert again.output.count("skipping") == 4
    assert stamps == {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/checkpoint.pt")}


@pytest.mark.slow
def test_sweep_submitit_local_launcher():
    result = cli("sweep", *SWEEP, "arch=residual", "sweep.name=sub",
                 "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5")
    assert result.exit_code == 0, result.output
    runs = runs_in(Path("runs/sub"))
    assert sorted(runs) == ["residual-14-s0", "residual-8-s0"]
    assert all(r["status"] == "completed" for r in runs.values())


@pytest.mark.slow
def test_sweep_records_a_diverged_run_and_goes_on():
    result = cli("sweep", *[o for o in SWEEP if o != "depth=8,14"], "depth=8",
                 "arch=plain", "optim.lr=0.1,1e6", "arch.norm=none", "run.name=lr${optim.lr}",
                 "sweep.name=div")
    assert result.exit_code == 0, result.output
    runs = runs_in(Path("runs/div"))
    assert {k: v["status"] for k, v in runs.items()} == {"lr0.1": "completed",
                                                         "lr1000000.0": "diverged"}


# Columns and summary keys that measure time, not training: the only ones a resumed
# run may differ in from an uninterrupted one.
TIMING_COLUMNS = {"images_per_sec", "epoch_seconds", "wall_seconds"}
TIMING_KEYS = {"images_per_sec", "wall_seconds", "started_at", "finished_at"}
RUN_CSVS = ["metrics_epochs.csv", "metrics_steps.csv", "gradflow.csv", "activations.csv",
            "layers.csv", "blocks.csv"]
# Small and quick: one torch thread (2 shared cores), 3 steps per epoch.
QUICK = ["data=synthetic", "data.train_size=96", "data.test_size=32", "depth=8",
         "trainer.epochs=2", "trainer.batch_size=32", "trainer.eval_batch_size=32",
         "trainer.log_every=1", "gradflow.every=2", "trainer.threads=1", "logger=none"]


def assert_same_run(run: Path, reference: Path, *, exact: bool = True) -> None:
    """Every column of every CSV and every summary key equal, timing aside.
    exact=False: floats to rtol 1e-5 (a mid-epoch stop regroups an epoch's loss sums)."""
    for name in RUN_CSVS:
        a, b = pd.read_csv(run / name), pd.read_csv(reference / name)
        assert list(a.columns) == list(b.columns), name
        keep = [c for c in a.columns if c not in TIMING_COLUMNS]
        pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=exact,
                                      **({} if exact else {"rtol": 1e-5}), obj=name)
    s, ref = summary(run), summary(reference)
    assert set(s) == set(ref)
    for key in sorted(set(s) - TIMING_KEYS):
        if exact or not isinstance(ref[key], float):
            assert s[key] == ref[key], key
        else:
            assert s[key] == pytest.approx(ref[key], rel=1e-5), key


@pytest.mark.slow
def test_resumed_sweep_run_equals_an_uninterrupted_one(tmp_path):
    args = ["sweep", "arch=residual", "seed=0,1", *QUICK, "sweep.name=res"]
    assert cli(*args).exit_code == 0
    sweep_dir = Path("runs/res")
    reference = tmp_path / "reference"
    shutil.copytree(sweep_dir, reference)
    done, run = sweep_dir / "residual-8-s0", sweep_dir / "residual-8-s1"
    # as a kill during epoch 2 leaves seed 1: the epoch-1 checkpoint, status running
    (run / "checkpoint.prev.pt").replace(run / "checkpoint.pt")
    s = summary(run)
    s["status"] = "running"
    (run / "summary.json").write_text(json.dumps(s))
    stamp = (done / "checkpoint.pt").stat().st_mtime_ns
    again = cli(*args)
    assert again.exit_code == 0, again.output
    text = " ".join(again.output.split())
    assert "residual-8-s0: already completed, skipping" in text
    assert "resuming at epoch 2" in text
    assert (done / "checkpoint.pt").stat().st_mtime_ns == stamp  # the completed run untouched
    assert list(pd.read_csv(run / "metrics_epochs.csv").epoch) == [1, 2]  # every epoch once
    assert_same_run(run, reference / run.name)  # deterministic on CPU: bit for bit
    assert_same_run(done, reference / done.name)


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_and_the_same_command_finishes_it():
    args = ["arch=residual", "seed=0,1,2", *[o for o in QUICK if not o.startswith("data.train")],
            "data.train_size=256", "trainer.epochs=3", "sweep.name=cc"]
    proc = subprocess.Popen([sys.executable, "-m", "depthlab", "sweep", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sweep_dir = Path("runs/cc")
    first, second, third = (sweep_dir / f"residual-8-s{s}" for s in range(3))
    try:
        end = time.time() + 300
        # inside the second run: the first completed, the second past its first epoch
        while not ((first / "summary.json").is_file() and '"completed"' in (
                first / "summary.json").read_text()
                   and (second / "metrics_epochs.csv").is_file()
                   and len((second / "metrics_epochs.csv").read_text().splitlines()) >= 2):
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < end, "the sweep never reached its second run"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Traceback" not in out, out
    assert summary(first)["status"] == "completed"
    s = summary(second)
    assert s["status"] == "interrupted", out
    assert 1 <= s["epochs_completed"] < 3
    assert (second / "checkpoint.pt").is_file()
    assert not (third / "summary.json").exists() and not (third / "checkpoint.pt").exists()
    assert not (sweep_dir / "report.md").exists()  # the sweep stopped, no report yet
    stamp = (first / "checkpoint.pt").stat().st_mtime_ns
    # the same command again: skips the first run, resumes the second, runs the third
    again = cli("sweep", *args)
    assert again.exit_code == 0, again.output
    text = " ".join(again.output.split())
    assert "residual-8-s0: already completed, skipping" in text and "resuming at epoch" in text
    assert {n: r["status"] for n, r in runs_in(sweep_dir).items()} == {
        "residual-8-s0": "completed", "residual-8-s1": "completed", "residual-8-s2": "completed"}
    assert (first / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert (sweep_dir / "report.md").is_file()
    # the resumed run equals the same run made without a stop
    ref = cli("sweep", *[a for a in args if not a.startswith("seed=")], "seed=1",
              "paths.runs_dir=reference")
    assert ref.exit_code == 0, ref.output
    assert_same_run(second, Path("reference/cc/residual-8-s1"), exact=False)


@pytest.mark.slow
def test_sweep_fresh_retrains_every_run_and_leaves_nothing_of_the_old_ones():
    args = ["sweep", "arch=plain,residual", *QUICK, "sweep.name=fr"]
    assert cli(*args).exit_code == 0
    sweep_dir = Path("runs/fr")
    runs = sorted(p.parent for p in sweep_dir.glob("*/summary.json"))
    assert [r.name for r in runs] == ["plain-8-s0", "residual-8-s0"]
    reference = Path("reference")
    shutil.copytree(sweep_dir, reference)
    files = {r.name: sorted(p.name for p in r.iterdir()) for r in runs}
    # what earlier attempts can leave: a failure's traceback, an offline W&B run
    (runs[0] / "error.txt").write_text("Traceback: an old failure\n")
    (runs[1] / "wandb" / "offline-run-old").mkdir(parents=True)
    (runs[1] / "wandb" / "offline-run-old" / "run-old.wandb").write_bytes(b"old")
    old = 1_000_000_000  # 2001: every file of the old runs
    for path in sweep_dir.rglob("*"):
        os.utime(path, (old, old))
    fresh = cli(*args[:1], "--fresh", *args[1:])
    assert fresh.exit_code == 0, fresh.output
    assert "skipping" not in fresh.output
    for run in runs:
        assert sorted(p.name for p in run.iterdir()) == files[run.name]  # no leftovers
        stale = [str(p) for p in run.rglob("*") if p.is_file() and p.stat().st_mtime <= old]
        assert not stale, stale  # every file written again, checkpoints included
        s = summary(run)
        assert s["status"] == "completed" and s["started_at"] > "2001"
        assert s["steps_completed"] == 6
        # retrained from scratch on the same seed: the same numbers as the first time
        assert_same_run(run, reference / run.name)
    assert "Traceback" not in (sweep_dir / "report.md").read_text()


@pytest.mark.slow
def test_sweep_fresh_starts_the_run_log_over():
    args = ["sweep", "arch=plain", *QUICK, "sweep.name=frlog"]
    assert cli(*args).exit_code == 0
    log = Path("runs/frlog/plain-8-s0/train.log")
    assert log.read_text().count("plain-8-s0 epoch 1/2") == 1
    assert cli(*args[:1], "--fresh", *args[1:]).exit_code == 0
    assert log.read_text().count("plain-8-s0 epoch 1/2") == 1, log.read_text()


def test_compare_needs_two_architectures():
    result = cli("compare", "plain")
    assert result.exit_code == 2
    assert "compare needs at least two different architectures" in result.output


def test_compare_unknown_architecture():
    result = cli("compare", "plain", "resnet")
    assert result.exit_code == 2 and "unknown architecture 'resnet'" in result.output


def flatten(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.slow
def test_compare_runs_matched_runs_and_prints_verdicts():
    result = cli("compare", "plain", "residual",
                 *[o for o in QUICK if not o.startswith("depth=")], "depth=8,14")
    assert result.exit_code == 0, result.output
    sweep_dir = next(Path("runs").glob("compare-*"))
    runs = runs_in(sweep_dir)
    assert sorted(runs) == ["plain-14-s0", "plain-8-s0", "residual-14-s0", "residual-8-s0"]
    assert all(r["status"] == "completed" for r in runs.values())
    # matched: at each depth the two runs differ in the architecture only
    for depth in (8, 14):
        plain, res = (sweep_dir / f"{a}-{depth}-s0" for a in ("plain", "residual"))
        a = flatten(yaml.safe_load((plain / "config.yaml").read_text()))
        b = flatten(yaml.safe_load((res / "config.yaml").read_text()))
        assert set(a) == set(b)
        assert {k for k in a if a[k] != b[k]} == {"arch.name", "run.name"}
        assert (a["depth"], a["seed"], a["data.name"], a["trainer.epochs"]) == (depth, 0, "synthetic", 2)
        sa, sb = summary(plain), summary(res)
        for key in ("depth", "seed", "data", "train_size", "test_size", "epochs", "total_steps",
                    "steps_completed", "layout", "norm", "group"):
            assert sa[key] == sb[key], key
        # same seed, same initial weights (option A shortcuts add none): step 0 weight norms
        ga, gb = (pd.read_csv(r / "gradflow.csv") for r in (plain, res))
        wa = ga[ga.step == 0].set_index("layer").weight_norm
        wb = gb[(gb.step == 0) & (gb.shortcut == 0)].set_index("layer").weight_norm
        pd.testing.assert_series_equal(wa, wb)
    # the verdicts printed and written are analysis.verdicts of exactly these runs
    table = load_table([sweep_dir])
    assert sorted(table.name) == sorted(runs)
    found = [v.text for v in verdicts(table)]
    kinds = [v.kind for v in verdicts(table)]
    assert kinds.count("degradation") == 2 and kinds.count("plain_vs_residual") == 2
    text = " ".join(result.output.split())
    for line in found:
        assert line in text, line
    md = (sweep_dir / "report.md").read_text()
    body = md.split("\n## Verdicts\n", 1)[1].split("\n## ", 1)[0]
    assert [l[2:] for l in body.splitlines() if l.startswith("- ")] == found
