"""`depthlab sweep` and `depthlab compare`: real Hydra multiruns of tiny models."""

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import TINY, cli, summary

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


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_checkpoint():
    # stop after the first epoch by making the run think it was asked to stop:
    # simplest honest way: a 1-epoch run, then the same run with 2 epochs must refuse
    # (different config), while a truly unfinished run (checkpoint, status running) resumes.
    args = ["arch=residual", *TINY]
    assert cli("train", *args).exit_code == 0
    run = Path("runs/residual-8-s0")
    s = summary(run)
    s["status"] = "running"  # as a killed run leaves it
    (run / "summary.json").write_text(json.dumps(s))
    epochs = pd.read_csv(run / "metrics_epochs.csv")
    # drop the last epoch's rows and roll the checkpoint back to the previous epoch
    (run / "checkpoint.prev.pt").replace(run / "checkpoint.pt")
    resumed = cli("train", *args)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at epoch 2" in resumed.output
    after = pd.read_csv(run / "metrics_epochs.csv")
    assert list(after.epoch) == [1, 2]  # every epoch exactly once
    assert after.train_loss.iloc[0] == epochs.train_loss.iloc[0]
    # deterministic on CPU: the resumed epoch equals the uninterrupted one
    assert after.train_loss.iloc[1] == pytest.approx(epochs.train_loss.iloc[1], rel=1e-6)


def test_compare_needs_two_architectures():
    result = cli("compare", "plain")
    assert result.exit_code == 2
    assert "compare needs at least two different architectures" in result.output


def test_compare_unknown_architecture():
    result = cli("compare", "plain", "resnet")
    assert result.exit_code == 2 and "unknown architecture 'resnet'" in result.output


@pytest.mark.slow
def test_compare_runs_matched_runs_and_prints_verdicts():
    result = cli("compare", "plain", "residual", *SWEEP)
    assert result.exit_code == 0, result.output
    sweep_dir = next(Path("runs").glob("compare-*"))
    assert sorted(runs_in(sweep_dir)) == ["plain-14-s0", "plain-8-s0", "residual-14-s0",
                                          "residual-8-s0"]
    text = " ".join(result.output.split())
    assert "Degradation" in text or "degradation" in text
