"""The learning-rate schedule (warm-up, step milestones, cosine down to min_lr),
trainer.iterations and trainer.eval_every: against numbers worked out by hand,
first on the function, then in the files a real run writes. Optimisers and schedules
are registries (depthlab.optim): a new entry is picked up, an unknown name is one line."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli.helpers import TINY, cli, summary
from torch import nn

from depthlab.optim import OPTIMIZERS, SCHEDULES, learning_rate, make_optimizer

STEP = {"name": "step", "milestones": [0.5, 0.75], "gamma": 0.1, "warmup": 0.0}
COSINE = {"name": "cosine", "warmup": 0.0, "min_lr": 0.0}


def lrs(schedule: dict, base: float, total: int) -> list[float]:
    return [learning_rate(schedule, base, s, total) for s in range(total)]


def test_step_schedule_drops_at_the_milestones():
    # 8 steps: milestones at int(0.5 * 8) = 4 and int(0.75 * 8) = 6
    assert lrs(STEP, 0.1, 8) == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_warm_up_is_linear_then_the_schedule_takes_over():
    # warm-up 0.25 of 8 steps = 2 steps: 0.1 * 1/2, 0.1 * 2/2; milestones then as before
    assert lrs({**STEP, "warmup": 0.25}, 0.1, 8) == pytest.approx(
        [0.05, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_decays_from_the_base_rate_to_min_lr():
    # 4 steps, no warm-up: 0.01 + 0.09 * (1 + cos(pi * s / 4)) / 2
    half = 0.09 * (1 + math.sqrt(0.5)) / 2
    assert lrs({**COSINE, "min_lr": 0.01}, 0.1, 4) == pytest.approx(
        [0.1, 0.01 + half, 0.01 + 0.045, 0.01 + 0.09 - half])
    # min_lr is an absolute rate: reached at the end, whatever the base rate
    assert learning_rate({**COSINE, "min_lr": 0.01}, 0.5, 4, 4) == pytest.approx(0.01)
    assert learning_rate(COSINE, 0.1, 4, 4) == pytest.approx(0.0)
    assert all(0.01 < lr <= 0.1 for lr in lrs({**COSINE, "min_lr": 0.01}, 0.1, 50))


def test_cosine_after_warm_up():
    # 10 steps, 2 of warm-up, then cosine over the remaining 8 from 0.1 to 0.02
    got = lrs({**COSINE, "warmup": 0.2, "min_lr": 0.02}, 0.1, 10)
    want = [0.05, 0.1] + [0.02 + 0.08 * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)]
    assert got == pytest.approx(want)


def _run(name: str, *overrides: str) -> Path:
    result = cli("train", "arch=plain", *TINY, "trainer.log_every=1", f"run.name={name}", *overrides)
    assert result.exit_code == 0, result.output
    return Path("runs") / name


def test_a_run_follows_cosine_warm_up_iterations_and_eval_every():
    # 128 images / 32 per batch = 4 steps per epoch; 10 iterations = epochs of 4, 4, 2 steps
    run = _run("cos", "schedule=cosine", "schedule.warmup=0.2", "schedule.min_lr=0.02",
               "trainer.iterations=10", "trainer.eval_every=2")
    steps = pd.read_csv(run / "metrics_steps.csv")
    assert list(steps.step) == list(range(1, 11))
    # the row of step s (steps done) holds the rate step s - 1 trained with
    want = [0.05, 0.1] + [0.02 + 0.08 * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)]
    assert list(steps.lr) == pytest.approx(want, rel=1e-12)
    epochs = pd.read_csv(run / "metrics_epochs.csv")
    assert list(epochs.epoch) == [1, 2, 3] and list(epochs.step) == [4, 8, 10]
    assert list(epochs.lr) == pytest.approx([want[3], want[7], want[9]], rel=1e-12)
    # evaluated every 2nd epoch, and after the last one
    assert epochs.test_error.isna().tolist() == [True, False, False]
    s = summary(run)
    assert (s["epochs"], s["total_steps"], s["steps_completed"], s["epochs_completed"]) == (3, 10, 10, 3)
    assert s["final_test_error"] == epochs.test_error.iloc[-1]
    assert s["best_test_error"] == min(epochs.test_error.dropna())


def test_a_run_follows_the_step_milestones():
    # 2 epochs of 4 steps: milestones at steps 4 and 6; a warm-up of int(0.25 * 8) = 2 steps
    run = _run("step", "schedule=step", "schedule.warmup=0.25", "optim.lr=0.2")
    steps = pd.read_csv(run / "metrics_steps.csv")
    assert list(steps.lr) == pytest.approx([0.1, 0.2, 0.2, 0.2, 0.02, 0.02, 0.002, 0.002],
                                           rel=1e-12)
    epochs = pd.read_csv(run / "metrics_epochs.csv")
    assert list(epochs.lr) == pytest.approx([0.2, 0.002], rel=1e-12)
    assert epochs.test_error.notna().all()  # eval_every=1


def test_a_new_schedule_in_the_registry_is_picked_up(monkeypatch):
    """One function and one entry: the config check, the run and the warm-up (applied
    before any schedule) all take it."""
    def half(schedule, base_lr, step, total, warm):
        return base_lr / 2

    monkeypatch.setitem(SCHEDULES, "half", half)
    # 8 steps, warm-up int(0.25 * 8) = 2 steps to 0.2, then half of it
    run = _run("half", "schedule.name=half", "schedule.warmup=0.25", "optim.lr=0.2")
    steps = pd.read_csv(run / "metrics_steps.csv")
    assert list(steps.lr) == pytest.approx([0.1, 0.2] + [0.1] * 6, rel=1e-12)


def test_a_new_optimizer_in_the_registry_is_picked_up(monkeypatch):
    monkeypatch.setitem(OPTIMIZERS, "plain_sgd", lambda params, o: torch.optim.SGD(params, lr=o["lr"]))
    optimizer = make_optimizer({"optim": {"name": "plain_sgd", "lr": 0.3}}, nn.Linear(2, 2))
    assert type(optimizer) is torch.optim.SGD and optimizer.param_groups[0]["lr"] == 0.3


def test_unknown_names_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^unknown optimizer 'adam' \(optim.name\); "
                                         r"valid: sgd, adamw$"):
        make_optimizer({"optim": {"name": "adam", "lr": 0.1}}, nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"^unknown schedule 'linear' \(schedule.name\); "
                                         r"valid: step, cosine$"):
        learning_rate({"name": "linear", "warmup": 0.0}, 0.1, 0, 8)


@pytest.mark.parametrize("override, message", [
    ("optim.name=adam", "unknown optimizer 'adam' (optim.name); valid: sgd, adamw"),
    ("schedule.name=linear", "unknown schedule 'linear' (schedule.name); valid: step, cosine"),
])
def test_train_with_an_unknown_name_ends_in_one_line(override, message):
    result = cli("train", "arch=plain", *TINY, "run.name=bad", override)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.output
    assert not Path("runs/bad").exists()  # checked before anything is written
