"""Running the real CLI in-process and reading run directories back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from depthlab.cli import app

# A run small enough for a test: 8-layer nets on 32 px synthetic images.
TINY = ["data=synthetic", "data.train_size=128", "data.test_size=64", "depth=8",
        "trainer.epochs=2", "trainer.batch_size=32", "trainer.eval_batch_size=64",
        "trainer.log_every=2", "gradflow.every=2", "logger=none"]


def evaluate_by_hand(model, loader) -> tuple[float, float, int]:
    """(error, mean loss, images) of `model` over `loader`, computed here, not by depthlab."""
    import torch
    import torch.nn.functional as F

    model.eval()
    wrong = seen = 0
    loss = 0.0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            wrong += (out.argmax(1) != y).sum().item()
            loss += F.cross_entropy(out, y, reduction="sum").item()
            seen += len(y)
    return wrong / seen, loss / seen, seen


def synthetic_test_set(train_size: int, test_size: int):
    """The test loader of data=synthetic at these sizes, as a run of them sees it (one batch)."""
    from omegaconf import OmegaConf

    from depthlab.config import compose_config
    from depthlab.data import build_data

    cfg = compose_config(["data=synthetic", f"data.train_size={train_size}",
                          f"data.test_size={test_size}"])
    data_cfg = {k: v for k, v in OmegaConf.to_container(cfg.data).items() if k != "layout"}
    return build_data(data_cfg, batch_size=32, eval_batch_size=test_size, device="cpu",
                      seed=0).test


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def csv(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / name)


def wait_for_epochs(run_dir: Path, n: int, proc, timeout: float = 300) -> None:
    """Wait until the training subprocess `proc` has logged `n` epochs of `run_dir`
    (failing with its output if it ends first)."""
    import time

    path = Path(run_dir) / "metrics_epochs.csv"
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and len(path.read_text().splitlines()) - 1 >= n:
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    raise AssertionError(f"no {n} epochs in {timeout} s")
