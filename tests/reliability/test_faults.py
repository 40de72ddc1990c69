"""Fault injection on real subprocesses: kill -9, SIGINT, SIGTERM, a corrupted
checkpoint, and an exception in one run of a sweep."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli.helpers import cli, summary, wait_for_epochs

from depthlab.checkpoint import load_checkpoint

ARGS = ["arch=residual", "depth=8", "data=synthetic", "data.train_size=384", "data.test_size=64",
        "trainer.epochs=4", "trainer.batch_size=32", "trainer.log_every=4", "gradflow.every=4",
        "trainer.threads=1", "logger=none"]
COLUMNS = ["epoch", "step", "train_loss", "train_error", "test_loss", "test_error"]


def start(*extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "depthlab", "train", *ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "depthlab", "train", *ARGS, *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run with the same seed: what every resumed run must equal."""
    cwd = tmp_path_factory.mktemp("reference")
    done = subprocess.run([sys.executable, "-m", "depthlab", "train", *ARGS], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    run = cwd / "runs" / "residual-8-s0"
    return pd.read_csv(run / "metrics_epochs.csv")[COLUMNS], summary(run)


def assert_same_as_reference(run_dir: Path, reference, exact: bool) -> None:
    ref_epochs, ref_summary = reference
    epochs = pd.read_csv(run_dir / "metrics_epochs.csv")[COLUMNS]
    assert list(epochs.epoch) == [1, 2, 3, 4]  # every epoch exactly once
    steps = pd.read_csv(run_dir / "metrics_steps.csv")
    assert steps.step.is_unique and steps.step.is_monotonic_increasing
    gf = pd.read_csv(run_dir / "gradflow.csv")
    assert not gf.duplicated(["step", "layer"]).any()
    s = summary(run_dir)
    assert s["status"] == "completed" and s["epochs_completed"] == 4
    if exact:
        pd.testing.assert_frame_equal(epochs, ref_epochs)
        assert s["final_test_error"] == ref_summary["final_test_error"]
    else:  # a mid-epoch stop regroups float sums of the epoch's loss
        pd.testing.assert_frame_equal(epochs, ref_epochs, rtol=1e-5)
    assert s["final_train_error"] == ref_summary["final_train_error"]


@pytest.mark.slow
def test_kill_9_then_rerun_equals_an_uninterrupted_run(reference):
    run = Path("runs/residual-8-s0")
    proc = start()
    wait_for_epochs(run, 2, proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait()
    assert summary(run)["status"] == "running"
    done = finish()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming at epoch" in done.stdout + done.stderr
    assert_same_as_reference(run, reference, exact=True)


@pytest.mark.slow
def test_kill_9_after_the_last_checkpoint_before_the_summary_reports_the_same_numbers(reference):
    """The window between the last epoch's checkpoint and the final summary.json."""
    run = Path("runs/residual-8-s0")
    proc = start()
    try:
        wait_for_epochs(run, 1, proc)  # the first summary ("running") is on disk by now
        # summary.json is written to .summary.json.tmp<pid>, then renamed: a FIFO there
        # makes the final write block (opening it waits for a reader), so the run
        # stops inside the window, with no hook in the code.
        os.mkfifo(run / f".summary.json.tmp{proc.pid}")
        end = time.time() + 300
        while (load_checkpoint(run) or {}).get("epoch") != 5:  # the checkpoint after epoch 4
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < end, "no final checkpoint in 300 s"
            time.sleep(0.05)
        time.sleep(0.2)
        assert proc.poll() is None
    finally:
        proc.kill()  # SIGKILL: no handler runs
        proc.wait()
    (run / f".summary.json.tmp{proc.pid}").unlink()
    assert summary(run)["status"] == "running"
    done = finish()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming at epoch 5" in done.stdout + done.stderr
    assert_same_as_reference(run, reference, exact=True)
    s, ref = summary(run), reference[1]
    for key in ("final_train_error", "final_test_error", "best_test_error", "epochs_completed",
                "steps_completed", "grad_ratio_first_last_init", "grad_ratio_first_last",
                "log10_grad_ratio_init", "log10_grad_ratio"):
        assert s[key] is not None and s[key] == ref[key], key
    # images/s is timing: the killed run's own last epoch, as an uninterrupted run reports it
    last = pd.read_csv(run / "metrics_epochs.csv").iloc[-1]
    assert s["images_per_sec"] == pytest.approx(last.images_per_sec, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_marks_interrupted_and_resumes(reference, sig):
    run = Path("runs/residual-8-s0")
    proc = start()
    wait_for_epochs(run, 1, proc)
    time.sleep(0.3)  # inside epoch 2
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    s = summary(run)
    assert s["status"] == "interrupted", out
    assert (run / "checkpoint.pt").exists()
    done = finish()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same_as_reference(run, reference, exact=False)


@pytest.mark.slow
def test_corrupted_checkpoint_falls_back_to_the_previous_one(reference):
    run = Path("runs/residual-8-s0")
    proc = start()
    wait_for_epochs(run, 2, proc)
    while not (run / "checkpoint.prev.pt").exists():  # two checkpoints: one to fall back on
        assert proc.poll() is None
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    done = finish()
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, out
    assert "corrupt checkpoint" in out and "falling back to the previous checkpoint" in out
    assert_same_as_reference(run, reference, exact=True)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="forces a failure by asking for a missing GPU")
def test_an_exception_in_one_sweep_run_is_recorded_and_the_sweep_goes_on(monkeypatch):
    # A crash no check can foresee (what trainer.device=cuda on a CPU machine was
    # used for before the preflight refused it up front): the second run's
    # evaluation raises.
    from depthlab.engine import loop

    evaluate, calls = loop.evaluate, []

    def crashing_second_run(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("injected fault in evaluation")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", crashing_second_run)
    result = cli("sweep", "arch=plain", "depth=8", "data=synthetic", "data.train_size=64",
                 "data.test_size=32", "trainer.epochs=1", "trainer.batch_size=32", "logger=none",
                 "seed=0,1", "run.name=seed-${seed}", "sweep.name=exc")
    assert result.exit_code == 1
    assert "1 of 2 runs failed" in " ".join(result.output.split())
    ok, bad = summary(Path("runs/exc/seed-0")), summary(Path("runs/exc/seed-1"))
    assert ok["status"] == "completed"
    assert bad["status"] == "failed" and "injected fault in evaluation" in bad["error"]
    assert "RuntimeError: injected fault" in (Path("runs/exc/seed-1") / "error.txt").read_text()
    table = pd.read_csv("runs/exc/summary.csv")
    assert set(table.status) == {"completed", "failed"}
