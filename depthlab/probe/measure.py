"""The measurement: one forward + backward pass per (configuration, seed) on the batch
of that seed, read with GradFlowProbe, and one summary row per configuration.

Numbers are float32, as in training: where a net's activations or gradients leave
float32's range the ratio is non-finite and the run's note says which end overflowed
or underflowed, rather than guessing.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from depthlab.engine.step import forward_loss
from depthlab.gradflow import GradFlowProbe
from depthlab.models import build_model, describe
from depthlab.rundir import first_last_ratio, log10_or_nan

from .grid import ProbeConfig, ProbeError, ProbeSettings, configurations

_BUILD_LOCK = threading.Lock()

LAYER_COLUMNS = ["arch", "depth", "norm", "shortcut", "branch", "seed", "layer_index", "layer",
                 "stage", "shortcut_layer", "grad_norm", "weight_norm"]
# act_std: std of the block's output h_b; back_norm: ||dL/dh_b||, the backward signal there
BLOCK_COLUMNS = ["arch", "depth", "norm", "shortcut", "branch", "seed", "block_index", "block",
                 "act_std", "back_norm"]


@dataclass
class ProbeResult:
    settings: ProbeSettings
    layers: pd.DataFrame  # LAYER_COLUMNS, one row per (configuration, seed, weighted layer)
    blocks: pd.DataFrame  # BLOCK_COLUMNS
    summary: pd.DataFrame  # one row per configuration (see summarise)
    runs: list[dict[str, Any]]  # one per (configuration, seed): ratio, note, record, layers ...
    data_name: str
    device: str
    wall_seconds: float
    machine: str
    command: str | None = None


def _device(name: str) -> torch.device:
    from depthlab.engine.build import resolve_device

    try:
        return resolve_device(name, what="device")
    except ValueError as err:
        raise ProbeError(str(err)) from None


class _Batches:
    """The batch of seed s: synthetic N(0, 1) or the first training batch of epoch s."""

    def __init__(self, settings: ProbeSettings, device: torch.device) -> None:
        self.device = device
        self.batch = settings.batch
        self.bundle = None
        if settings.data is None:
            self.name = "synthetic N(0,1)"
            self.image_size = 32 if settings.layout == "cifar" else 224
            self.num_classes = 10 if settings.layout == "cifar" else 1000
            return
        from depthlab.data import DataError, build_data

        cfg = {k: v for k, v in dict(settings.data).items() if k != "layout"}
        try:
            self.bundle = build_data(cfg, batch_size=settings.batch,
                                     eval_batch_size=settings.batch, device=device, seed=0)
        except DataError as err:
            raise ProbeError(str(err)) from None
        self.name = self.bundle.name
        self.image_size = self.bundle.image_size
        self.num_classes = self.bundle.num_classes

    def __call__(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.bundle is None:
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(self.batch, 3, self.image_size, self.image_size, generator=g)
            y = torch.randint(0, self.num_classes, (self.batch,), generator=g)
            return x.to(self.device), y.to(self.device)
        self.bundle.train.set_epoch(seed)
        return next(iter(self.bundle.train))


def probe_once(config: ProbeConfig, seed: int, x: torch.Tensor, y: torch.Tensor, *,
               layout: str = "cifar", num_classes: int = 10) -> dict[str, Any]:
    """Build one net with `seed`, one forward + backward pass of cross-entropy on (x, y) in
    training mode, and its gradient flow. Returns the record, layers, blocks, loss and params;
    the net is freed on return."""
    options: dict[str, Any] = {"norm": config.norm, "image_size": int(x.shape[-1])}
    if config.shortcut is not None:
        options["shortcut"] = config.shortcut
    if config.branch != "standard":
        options["branch"] = config.branch
    with _BUILD_LOCK:  # the global RNG: one build at a time, so seed s gives the same weights
        torch.manual_seed(seed)  # as depthlab.train does just before make_model
        model = build_model(config.arch, config.depth, num_classes=num_classes, layout=layout,
                            **options)
    model.to(x.device)
    desc = describe(model, flops=False)
    model.train()
    probe = GradFlowProbe(model, desc["layers"], desc["blocks"], activations=True)
    try:
        probe.arm()
        _, loss = forward_loss(model, x, y, nullcontext)  # the training step's forward and loss
        loss.backward()
        record = probe.record(0)
    finally:
        probe.close()
    return {"record": record, "layers": desc["layers"], "blocks": desc["blocks"],
            "loss": float(loss.detach()), "params": desc["params"]}


def _nonfinite_note(loss: float, grad_norm: list[float], layers,
                    back_norm: list[float] = ()) -> str:
    """Why a first/last ratio is not a finite positive number, in words."""
    main = [g for layer, g in zip(layers, grad_norm) if not layer.shortcut]
    first, last = main[0], main[-1]
    if math.isfinite(loss) and first == 0 and back_norm and not any(back_norm):
        # not an underflow: a classifier whose weights start at 0 (Fixup) passes nothing back
        return "no gradient below the classifier at step 0 (zero-initialised classifier)"
    if not math.isfinite(loss):
        return "activations overflow (loss not finite)"
    if not math.isfinite(first):
        return "first-layer gradient overflows"
    if not math.isfinite(last):
        return "last-layer gradient overflows"
    if last == 0:
        return "last-layer gradient underflows to 0"
    if first == 0:
        return "first-layer gradient underflows to 0"
    return ""


def _one_pass(config: ProbeConfig, seed: int, x: torch.Tensor, y: torch.Tensor,
              settings: ProbeSettings, num_classes: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    one = probe_once(config, seed, x, y, layout=settings.layout, num_classes=num_classes)
    rec, layers = one["record"], one["layers"]
    ratio = first_last_ratio(layers, rec.grad_norm)
    main = [g for layer, g in zip(layers, rec.grad_norm) if not layer.shortcut]
    return {
        "config": config, "seed": seed, "name": config.run_name(seed),
        "ratio": ratio, "log10_ratio": log10_or_nan(ratio),
        "grad_first": main[0], "grad_last": main[-1],
        "act_std_final": rec.act_std[-1] if rec.act_std else math.nan,
        # the backward signal reaching the first block over that at the last one
        "log10_back_ratio": log10_or_nan(rec.back_norm[0] / rec.back_norm[-1])
        if rec.back_norm and rec.back_norm[-1] > 0 else math.nan,
        "loss": one["loss"], "params": one["params"],
        "note": "" if math.isfinite(log10_or_nan(ratio)) else _nonfinite_note(
            one["loss"], rec.grad_norm, layers, rec.back_norm),
        "record": rec, "layers": layers, "blocks": one["blocks"],
        "seconds": time.perf_counter() - t0,
    }


def run_probe(settings: ProbeSettings, *,
              on_step: Callable[[ProbeConfig, int, int, int], None] | None = None,
              command: str | None = None) -> ProbeResult:
    """Probe every configuration of `settings` with every seed.

    On the CPU, `settings.threads` passes run side by side, each on one torch thread
    (small convolutions gain little from intra-op threads, and those stall when the
    cores are shared), deepest nets first; nets are built one at a time under a lock,
    so seed s always gives the weights a training run with seed s starts from. Memory
    holds at most `threads` nets. on_step(config, seed, done, total) is called from the
    calling thread after each pass (for progress bars). Raises ProbeError for anything
    the user can fix.
    """
    configs = configurations(settings)
    device = _device(settings.device)
    workers = settings.threads if device.type == "cpu" else 1
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1 if workers > 1 else settings.threads)
    started = time.perf_counter()
    total = len(configs) * settings.seeds
    done = 0
    results: dict[tuple[int, int], dict[str, Any]] = {}
    try:
        batches = _Batches(settings, device)
        inputs = {seed: batches(seed) for seed in range(settings.seeds)}
        # deepest first: the long passes overlap, the short ones fill in at the end
        tasks = sorted(((i, seed) for i in range(len(configs)) for seed in range(settings.seeds)),
                       key=lambda t: (-configs[t[0]].depth, t))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_one_pass, configs[i], seed, *inputs[seed], settings,
                                   batches.num_classes): (i, seed) for i, seed in tasks}
            try:
                for future in as_completed(futures):
                    i, seed = futures[future]
                    results[(i, seed)] = future.result()
                    done += 1
                    if on_step is not None:
                        on_step(configs[i], seed, done, total)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        torch.set_num_threads(threads_before)
    wall = time.perf_counter() - started
    from depthlab import machine

    runs = [results[(i, seed)] for i in range(len(configs)) for seed in range(settings.seeds)]
    layer_rows: list[tuple] = []
    block_rows: list[tuple] = []
    for r in runs:
        c, rec = r["config"], r["record"]
        key = (c.arch, c.depth, c.norm, c.shortcut, c.branch, r["seed"])
        layer_rows.extend((*key, layer.index, layer.name, layer.stage, int(layer.shortcut), g, w)
                          for layer, g, w in zip(r["layers"], rec.grad_norm, rec.weight_norm))
        block_rows.extend((*key, i, b, a, g) for i, (b, a, g)
                          in enumerate(zip(r["blocks"], rec.act_std, rec.back_norm)))
    return ProbeResult(settings=settings, layers=pd.DataFrame(layer_rows, columns=LAYER_COLUMNS),
                       blocks=pd.DataFrame(block_rows, columns=BLOCK_COLUMNS),
                       summary=summarise(runs), runs=runs, data_name=batches.name,
                       device=str(device), wall_seconds=wall, machine=machine.line(), command=command)


def summarise(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per configuration: log10 first/last ratio mean and sample std over the seeds
    whose ratio is finite, the last block's output std (mean over seeds), and notes."""
    rows = []
    by_config: dict[ProbeConfig, list[dict[str, Any]]] = {}
    for r in runs:
        by_config.setdefault(r["config"], []).append(r)
    for config, rs in by_config.items():
        logs = np.array([r["log10_ratio"] for r in rs], dtype=float)
        finite = logs[np.isfinite(logs)]
        acts = np.array([r["act_std_final"] for r in rs], dtype=float)
        acts = acts[np.isfinite(acts)]
        backs = np.array([r["log10_back_ratio"] for r in rs], dtype=float)
        backs = backs[np.isfinite(backs)]
        notes = list(dict.fromkeys(r["note"] for r in rs if r["note"]))
        rows.append({
            "arch": config.arch, "depth": config.depth, "norm": config.norm,
            "shortcut": config.shortcut or "", "branch": config.branch,
            "params": rs[0]["params"],
            "seeds": len(rs), "finite_seeds": len(finite),
            "log10_ratio_mean": float(finite.mean()) if len(finite) else math.nan,
            "log10_ratio_std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
            "log10_ratio_min": float(finite.min()) if len(finite) else math.nan,
            "log10_ratio_max": float(finite.max()) if len(finite) else math.nan,
            "grad_first_mean": float(np.mean([r["grad_first"] for r in rs])),
            "grad_last_mean": float(np.mean([r["grad_last"] for r in rs])),
            "act_std_final_mean": float(acts.mean()) if len(acts) else math.nan,
            "log10_back_ratio_mean": float(backs.mean()) if len(backs) else math.nan,
            "loss_mean": float(np.mean([r["loss"] for r in rs])),
            "note": "; ".join(notes),
            "seconds": float(sum(r["seconds"] for r in rs)),
        })
    return pd.DataFrame(rows)
