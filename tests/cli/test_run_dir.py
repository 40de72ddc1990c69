"""What a run directory holds after --fresh, a config conflict in a sweep and a
checkpoint; which precisions run where."""

from pathlib import Path

import pytest
import torch
from helpers import TINY, cli, csv, evaluate_by_hand, summary, synthetic_test_set

import depthlab.engine.precision
import depthlab.train
from depthlab.checkpoint import load_checkpoint
from depthlab.config import ConfigError, check_config, compose_config
from depthlab.launch import launch
from depthlab.models import build_model

RUN = Path("runs/residual-8-s0")


def test_fresh_removes_the_error_txt_of_an_earlier_failed_run(monkeypatch):
    real = depthlab.train.run

    def crash(*args, **kwargs):
        raise RuntimeError("a crash in the middle of the run")

    monkeypatch.setattr(depthlab.train, "run", crash)
    failed = cli("train", "arch=residual", *TINY)
    assert failed.exit_code == 1
    assert (RUN / "error.txt").exists() and summary(RUN)["status"] == "failed"
    monkeypatch.setattr(depthlab.train, "run", real)
    again = cli("train", "--fresh", "arch=residual", *TINY)
    assert again.exit_code == 0, again.output
    assert summary(RUN)["status"] == "completed"
    assert not (RUN / "error.txt").exists()


def test_a_sweep_with_a_changed_config_never_touches_the_completed_run():
    args = ["arch=residual", *TINY, "sweep.name=c1"]
    first = cli("sweep", *args)
    assert first.exit_code == 0, first.output
    run = Path("runs/c1/residual-8-s0")
    assert summary(run)["status"] == "completed"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "train.log"}
    # the launch itself (what a SLURM job runs): refused, recorded as a user error only
    outcomes = launch(["--multirun", *args, "trainer.epochs=3"])
    assert [(o.status, o.user_error) for o in outcomes] == [("conflict", True)]
    assert "different config" in outcomes[0].error and "trainer.epochs: 2 -> 3" in outcomes[0].error
    # and through the CLI: the preflight refuses it before anything runs, in one line
    refused = cli("sweep", *args, "trainer.epochs=3")
    assert refused.exit_code == 2
    [line] = refused.output.strip().splitlines()
    assert line.startswith("error: runs/c1/residual-8-s0 holds a run with a different config "
                           "(trainer.epochs: 2 -> 3)") and "--fresh" in line
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "train.log"}
    assert after == before  # summary.json byte for byte, and no error.txt
    # the original command still finds its completed run
    rerun = cli("sweep", *args)
    assert rerun.exit_code == 0, rerun.output
    assert "skipping" in rerun.output
    assert (run / "summary.json").read_bytes() == before["summary.json"]


def test_recorded_test_error_equals_an_independent_evaluation_of_the_checkpoint():
    result = cli("train", "arch=residual", *TINY)
    assert result.exit_code == 0, result.output
    state = load_checkpoint(RUN)
    assert state["epoch"] == 3  # the checkpoint after the last (2nd) epoch
    model = build_model("residual", 8, num_classes=10, layout="cifar", image_size=32)
    model.load_state_dict(state["model"])
    error, loss, seen = evaluate_by_hand(model, synthetic_test_set(128, 64))
    assert seen == 64
    s = summary(RUN)
    assert s["final_test_error"] == error
    last = csv(RUN, "metrics_epochs.csv").iloc[-1]
    assert last.test_error == error
    assert last.test_loss == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_bf16_is_allowed_on_the_cpu_and_fp16_is_not(device):
    def cfg(precision: str, dev: str = device):
        return compose_config([f"trainer.precision={precision}", f"trainer.device={dev}"])

    check_config(cfg("bf16"))  # named cpu or resolved from auto: the same rule
    if device == "cpu":
        with pytest.raises(ConfigError, match="trainer.precision=fp16 needs a CUDA device"):
            check_config(cfg("fp16"))
    with pytest.raises(depthlab.engine.precision.PrecisionError, match="fp16 needs a CUDA device"):
        depthlab.engine.precision.check_precision("fp16", torch.device("cpu"))
    depthlab.engine.precision.check_precision("bf16", torch.device("cpu"))


def test_bf16_trains_on_a_device_named_cpu():
    result = cli("train", "arch=residual", *TINY, "trainer.epochs=1", "trainer.device=cpu",
                 "trainer.precision=bf16")
    assert result.exit_code == 0, result.output
    s = summary(RUN)
    assert s["status"] == "completed" and s["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto resolves to the CPU only without CUDA")
def test_fp16_on_a_cpu_resolved_from_auto_is_a_one_line_error():
    result = cli("train", "arch=residual", *TINY, "trainer.precision=fp16")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "fp16 needs a CUDA device" in text and "Traceback" not in text
    assert not Path("runs").exists()
