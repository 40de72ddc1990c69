"""Fixture run directories for `depthlab lesion`, made without training: a seeded tiny net,
its config.yaml composed from conf/ like a real run's, and a checkpoint of its weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from depthlab.checkpoint import save_checkpoint
from depthlab.config import compose_config
from depthlab.data import build_data
from depthlab.engine.build import make_model

# synthetic data, tiny: 64 training and 96 test images of 32 px, 10 classes
TINY_DATA = ["data=synthetic", "data.train_size=64", "data.test_size=96",
             "trainer.batch_size=32", "trainer.eval_batch_size=40", "logger=none"]


def make_run_dir(root: Path, arch: str, depth: int, seed: int = 0) -> Path:
    """A run directory as depthlab train leaves it, minus the training: config.yaml,
    summary.json and checkpoint.pt of a seeded net whose batch-norm running statistics
    come from a few forward passes over the training images (so eval mode is not trivial)."""
    cfg = OmegaConf.to_container(
        compose_config([f"arch={arch}", f"depth={depth}", f"seed={seed}", *TINY_DATA]),
        resolve=True)
    cfg.pop("hydra", None)
    data_cfg = {k: v for k, v in cfg["data"].items() if k != "layout"}
    data = build_data(data_cfg, batch_size=32, eval_batch_size=40, device="cpu", seed=seed)
    torch.manual_seed(seed)
    model = make_model(cfg, data.num_classes, data.image_size)
    model.train()
    with torch.no_grad():
        for epoch in range(3):
            data.train.set_epoch(epoch)
            for x, _ in data.train:
                model(x)
    run_dir = root / cfg["run"]["name"]
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    save_checkpoint(run_dir, {"model": model.state_dict(), "epoch": 1, "step": 0})
    return run_dir


@pytest.fixture(scope="session")
def fixture_runs(tmp_path_factory) -> dict[str, Path]:
    before = torch.get_num_threads()  # session fixtures run before the autouse one below
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("lesion-runs")
        return {"residual": make_run_dir(root, "residual", 14),
                "plain": make_run_dir(root, "plain", 14)}
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These nets are tiny: one intra-op thread is as fast, and does not stall when the
    machine's cores are shared with other jobs (two threads can be 10x slower then)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
