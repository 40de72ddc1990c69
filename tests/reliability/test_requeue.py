"""Under submitit, SLURM's preemption signal (SIGUSR2) is taken by the training
loop first (checkpoint at the current step), then handed on for the requeue."""

import os
import signal

import torch
from omegaconf import OmegaConf

from depthlab.checkpoint import load_checkpoint
from depthlab.config import compose_config
from depthlab.train import run


class SignalAtStep:
    """A metric sink that sends this process SIGUSR2 at one step."""

    def __init__(self, step: int) -> None:
        self.at = step

    def start(self, run): ...
    def log_gradflow(self, epoch, record): ...
    def log_epoch(self, epoch, step, metrics): ...
    def finish(self, summary): ...

    def log_step(self, step, metrics):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGUSR2)


def test_sigusr2_checkpoints_then_reaches_submitits_handler(tmp_path):
    cfg = OmegaConf.to_container(compose_config(
        ["data=synthetic", "data.train_size=128", "data.test_size=32", "depth=8",
         "trainer.epochs=2", "trainer.batch_size=32", "trainer.log_every=1", "logger=none"]),
        resolve=True)
    cfg.pop("hydra", None)
    seen = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: seen.append(
        load_checkpoint(tmp_path)["step"]))  # what submitit would find when it requeues
    try:
        summary = run(cfg, tmp_path, extra_sinks=[SignalAtStep(2)])
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert summary["status"] == "interrupted" and summary["steps_completed"] == 2
    assert seen == [2]  # forwarded once, after the step-2 checkpoint was on disk
    state = load_checkpoint(tmp_path)
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 2)
    resumed = run(cfg, tmp_path)
    assert resumed["status"] == "completed" and resumed["steps_completed"] == 8
    assert torch.is_tensor(next(iter(state["model"].values())))
