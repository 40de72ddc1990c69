"""The nets a benchmark trains: configs composed from overrides, run()'s exact batches, fresh models, run() timed."""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from depthlab.bench.timing import first_window_seconds, read_windows


@dataclass(frozen=True)
class ModelSpec:
    label: str  # "residual-20 (cifar)"
    arch: str  # plain | residual | dense
    depth: int
    layout: str  # cifar | imagenet
    batch: int  # training images per step
    warm: int  # untimed steps first (also run()'s log interval: read_windows drops the first)
    steps: int  # timed steps, a multiple of warm

    @property
    def key(self) -> str:
        return f"{self.arch}-{self.depth}-{self.layout}"


def compose(overrides: list[str]) -> dict[str, Any]:
    """The resolved config `depthlab train <overrides>` would run, as the dict run() takes."""
    from omegaconf import OmegaConf

    from depthlab.config import check_config, compose_config

    cfg = compose_config(overrides)
    check_config(cfg)
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return container


def train_overrides(spec: ModelSpec, *extra: str, every: int = 1, tail: int = 0) -> list[str]:
    """One epoch of `data=synthetic` on the CPU, `warm + steps + tail` steps of `spec.batch`,
    logged every `warm` steps, gradient flow (with activations) recorded every `every` steps
    (and at the last); `extra` last."""
    total = spec.warm + spec.steps + tail
    return [
        f"arch={spec.arch}", f"depth={spec.depth}", f"arch.layout={spec.layout}",
        "data=synthetic", "data.image_size=32", f"data.train_size={total * spec.batch}",
        f"data.test_size={spec.batch}", "data.augment=false",
        "optim=sgd", "logger=none", "trainer.device=cpu",
        f"trainer.batch_size={spec.batch}", f"trainer.eval_batch_size={spec.batch}",
        f"trainer.iterations={total}", f"trainer.log_every={spec.warm}",
        f"gradflow.every={every}", "gradflow.activations=true", *extra,
    ]


def synthetic_batches(cfg: dict[str, Any]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], Any]:
    """The exact batches run(cfg) trains on in its epoch 1, already made and in memory."""
    from depthlab.data import build_data

    t = cfg["trainer"]
    data_cfg = {k: v for k, v in cfg["data"].items() if k != "layout"}
    data = build_data(data_cfg, batch_size=t["batch_size"], eval_batch_size=t["eval_batch_size"],
                      device="cpu", seed=int(cfg["seed"]))
    data.train.set_epoch(1)
    return [(x.clone(), y.clone()) for x, y in data.train], data


def fresh_model(cfg: dict[str, Any], data: Any) -> torch.nn.Module:
    """The model run(cfg) starts from: the same config, the same seed, in training mode."""
    from depthlab.engine.setup import make_model

    torch.manual_seed(int(cfg["seed"]))
    model = make_model(cfg, data.num_classes, data.image_size)
    model.train()
    return model


def timed_run(cfg: dict[str, Any], batch: int, prefix: str = "depthlab-bench-",
              drop_last: bool = False) -> dict[str, float]:
    """depthlab.train.run(cfg) itself, in a temporary run directory: images/s of its logged
    windows after the first (and before the last, if `drop_last`), the seconds of that first
    window (step 0's one-off costs) and of the whole run() call."""
    from depthlab import train

    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    start = time.perf_counter()
    try:
        summary = train.run(cfg, run_dir, group="benchmark")
        wall = time.perf_counter() - start
        if summary["status"] != "completed":
            raise RuntimeError(f"benchmark run ended {summary['status']}")
        images, seconds = read_windows(run_dir, batch, drop_last)
        first = first_window_seconds(run_dir, batch)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        gc.collect()  # the run's model, probe hooks and captured graph (its memory pool)
    return {"img_s": images / seconds, "first_window_s": first, "run_s": wall}


def run_side(cfg: dict[str, Any], batch: int, log: list[dict[str, float]] | None = None,
             prefix: str = "depthlab-bench-", drop_last: bool = False) -> Callable[[], float]:
    """A side for interleaved(): one timed_run per call, its images/s returned (and each
    call's timed_run dict appended to `log` when one is given)."""
    def once() -> float:
        got = timed_run(cfg, batch, prefix, drop_last)
        if log is not None:
            log.append(got)
        return got["img_s"]
    return once
