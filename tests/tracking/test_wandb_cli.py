"""W&B through the real CLI: offline runs read back with W&B's own reader and
compared with the run directories' gradient-flow tables."""

from pathlib import Path

import pandas as pd
import pytest
import wandb
from cli.helpers import TINY, cli, summary
from tracking.wandb_reader import read_wandb_run, wandb_files

WANDB_TINY = [o for o in TINY if o != "logger=none"] + ["logger=default"]


@pytest.fixture(autouse=True)
def _fresh_wandb():
    wandb.teardown()  # wandb reads WANDB_* once per process: see this test's temp dirs
    yield
    wandb.teardown()


def assert_gradflow_matches(run_dir: Path, wrun) -> None:
    gf = pd.read_csv(run_dir / "gradflow.csv")
    width = 3
    checked = 0
    for (index, layer), rows in gf.groupby(["layer_index", "layer"]):
        series = wrun.series(f"gradflow/grad_norm/L{index:0{width}d}_{layer}", x="train/step")
        assert series, f"no W&B series for {layer}"
        for step, value in zip(rows.step, rows.grad_norm):
            assert series[step] == pytest.approx(value, rel=1e-6)
            checked += 1
    assert checked == len(gf)


@pytest.mark.slow
def test_one_run_one_wandb_run(tmp_path):
    result = cli("train", "arch=residual", *WANDB_TINY)
    assert result.exit_code == 0, result.output
    [path] = wandb_files(tmp_path / "wandb")
    wrun = read_wandb_run(path)
    assert (wrun.name, wrun.group, wrun.job_type) == ("residual-8-s0", "train", "residual")
    assert wrun.config["depth"] == 8 and wrun.config["arch"]["name"] == "residual"
    assert wrun.exit_code == 0
    run_dir = Path("runs/residual-8-s0")
    s = summary(run_dir)
    assert wrun.summary["status"] == "completed"
    assert wrun.summary["final_train_error"] == pytest.approx(s["final_train_error"])
    assert_gradflow_matches(run_dir, wrun)
    assert wrun.step_metric("train/*") == "train/step"


@pytest.mark.slow
def test_two_run_sweep_gives_two_grouped_wandb_runs(tmp_path):
    sweep = [o for o in WANDB_TINY if o != "depth=8"] + ["depth=8", "arch=plain,residual",
                                                         "sweep.name=wb"]
    result = cli("sweep", *sweep)
    assert result.exit_code == 0, result.output
    runs = {r.name: r for r in map(read_wandb_run, wandb_files(tmp_path / "wandb"))}
    report = runs.pop("report")  # the comparison, as one run (tests/tracking/test_wandb_report.py)
    assert (report.group, report.job_type) == ("wb", "report")
    assert sorted(runs) == ["plain-8-s0", "residual-8-s0"]
    for name, wrun in runs.items():
        assert wrun.group == "wb" and wrun.job_type == name.split("-")[0] and wrun.exit_code == 0
        assert_gradflow_matches(Path("runs/wb") / name, wrun)


def test_wandb_failure_never_stops_a_run(tmp_path, monkeypatch):
    # online mode with nowhere to go: W&B turns itself off, the run completes with its files
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    result = cli("train", "arch=plain", *WANDB_TINY, "logger.wandb.mode=online",
                 "logger.wandb.init_timeout=5")
    assert result.exit_code == 0, result.output
    assert "W&B logging off for the rest of this run" in " ".join(result.output.split())
    run_dir = Path("runs/plain-8-s0")
    assert summary(run_dir)["status"] == "completed"
    for name in ("metrics_epochs.csv", "gradflow.csv", "checkpoint.pt", "config.yaml"):
        assert (run_dir / name).exists()


def test_bad_wandb_setting_is_a_config_error():
    result = cli("train", "logger.wandb.mode=ofline")
    assert result.exit_code == 2
    assert "logger.wandb.mode must be one of" in result.output
