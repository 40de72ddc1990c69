"""Gradient flow at initialisation, for a grid of networks, in seconds (`depthlab probe`).

Training a 1,000-layer net takes days; whether gradients reach its first layer
shows before the first update. For every configuration (architecture x depth x
normalisation x shortcut option) and every initialisation seed, `run_probe`
builds the net exactly as a training run with that seed would (same builder,
same `torch.manual_seed(seed)` just before it), makes one forward and backward
pass of cross-entropy on one batch in training mode, and reads per weighted
layer (depth order, from `describe`) the gradient norm and per block the output
standard deviation with `GradFlowProbe`, the probe training runs use.

    >>> settings = ProbeSettings(archs=("plain", "residual"), depths=(20, 56), seeds=2)
    >>> result = run_probe(settings)            # a ProbeResult
    >>> paths = write_probe(result, "runs/probe-demo")

The batch is N(0, 1) images with uniform random labels (`data=None`), or the
first training batch of a real data set (a `data` config mapping, as
`depthlab.data.build_data` takes it). Seed s uses the same batch for every
configuration, so configurations are compared on equal inputs.

Numbers are float32, as in training: where a net's activations or gradients
leave float32's range (about 1e-38 .. 3e38) the ratio is non-finite and the
summary says which end overflowed or underflowed, rather than guessing.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from depthlab.gradflow import GradFlowProbe, first_last_ratio
from depthlab.models import ARCHS, LAYOUTS, NORMS, ArchitectureError, build_model, describe
from depthlab.models.depths import densenet_spec, resnet_spec

# The story in one grid: plain vs residual on the CIFAR layout, from ResNet-20 to ResNet-1202
# (He et al. 2015, Sec. 4.2; 218 = 6*36+2), with and without batch norm.
DEFAULT_ARCHS = ("plain", "residual")
DEFAULT_DEPTHS = (20, 56, 110, 218, 1202)
DEFAULT_NORMS = ("batch", "none")
# Batch 4: the default grid (60 passes, up to 1202 layers) in under a minute on a 2-core
# CPU; batch 32 takes about 4 minutes there. Batch norm still sees 4 x 8 x 8 = 256
# values per channel in the last stage.
DEFAULT_BATCH = 4
DEFAULT_SEEDS = 3
# Passes run side by side on the CPU, one torch thread each (see run_probe).
DEFAULT_THREADS = min(2, os.cpu_count() or 1)
SHORTCUTS = ("A", "B", "C")
LOGGERS = ("none", "wandb")
_BUILD_LOCK = threading.Lock()
MARKER = "probe.json"  # marks a probe directory (and holds its settings)

LAYER_COLUMNS = ["arch", "depth", "norm", "shortcut", "seed", "layer_index", "layer", "stage",
                 "shortcut_layer", "grad_norm", "weight_norm"]
BLOCK_COLUMNS = ["arch", "depth", "norm", "shortcut", "seed", "block_index", "block", "act_std"]
FIGURES = {
    "profile": ("gradflow_vs_position.png",
                "Gradient norm of each main-path layer vs its relative depth position"),
    "ratio": ("ratio_vs_depth.png", "First / last layer gradient-norm ratio vs depth"),
    "act": ("act_std_vs_depth.png", "Standard deviation of the last block's output vs depth"),
}


class ProbeError(ValueError):
    """A probe problem the user can fix; str() is one line."""


@dataclass(frozen=True)
class ProbeSettings:
    """What to probe. shortcuts applies to residual nets only (None: the layout's
    default, A on cifar, B on imagenet); plain and dense nets have no shortcut option."""

    archs: tuple[str, ...] = DEFAULT_ARCHS
    depths: tuple[int, ...] = DEFAULT_DEPTHS
    norms: tuple[str, ...] = DEFAULT_NORMS
    shortcuts: tuple[str, ...] | None = None
    seeds: int = DEFAULT_SEEDS  # initialisation seeds 0 .. seeds-1
    batch: int = DEFAULT_BATCH  # images in the one batch
    layout: str = "cifar"
    data: Mapping[str, Any] | None = None  # None: N(0, 1) images, random labels
    threads: int = DEFAULT_THREADS  # CPU: passes run side by side, one torch thread each
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    name: str | None = None
    out: str | None = None  # probe directory (default runs/probe-<name or timestamp>)
    logger: str = "none"  # none | wandb


@dataclass(frozen=True)
class ProbeConfig:
    """One network of the grid."""

    arch: str
    depth: int
    norm: str
    shortcut: str | None  # residual: A | B | C; None for plain and dense nets

    @property
    def label(self) -> str:
        parts = [self.arch, str(self.depth), f"norm={self.norm}"]
        if self.shortcut:
            parts.append(f"shortcut={self.shortcut}")
        return " ".join(parts)

    def run_name(self, seed: int) -> str:
        sc = f"-{self.shortcut}" if self.shortcut else ""
        return f"{self.arch}{sc}-{self.depth}-{self.norm}-s{seed}"


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


# --------------------------------------------------------------------------- the grid


def configurations(settings: ProbeSettings) -> list[ProbeConfig]:
    """The grid in run order, checked: a bad value or an invalid depth is a ProbeError."""
    s = settings
    _check_choice("arch", s.archs, ARCHS)
    _check_choice("norm", s.norms, NORMS)
    if s.layout not in LAYOUTS:
        raise ProbeError(f"unknown layout {s.layout!r}; valid: {', '.join(LAYOUTS)}")
    if s.shortcuts is not None:
        _check_choice("shortcut", s.shortcuts, SHORTCUTS)
    for key in ("seeds", "batch", "threads"):
        value = getattr(s, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ProbeError(f"{key} must be a positive integer, got {value!r}")
    if not s.depths:
        raise ProbeError("depth needs at least one value, e.g. depth=20,56")
    if s.logger not in LOGGERS:
        raise ProbeError(f"unknown logger {s.logger!r}; valid: {', '.join(LOGGERS)}")
    for depth in s.depths:
        if not isinstance(depth, int) or isinstance(depth, bool):
            raise ProbeError(f"depth must be an integer, got {depth!r}")
    for arch in dict.fromkeys(s.archs):
        for depth in dict.fromkeys(s.depths):
            try:
                if arch == "dense":
                    densenet_spec(depth, s.layout)
                else:
                    resnet_spec(depth, s.layout)
            except ArchitectureError as err:
                raise ProbeError(f"{arch}: {err}") from None
    default_shortcut = "A" if s.layout == "cifar" else "B"
    out = []
    for arch in dict.fromkeys(s.archs):
        shortcuts = (tuple(dict.fromkeys(s.shortcuts or (default_shortcut,)))
                     if arch == "residual" else (None,))
        for norm in dict.fromkeys(s.norms):
            for shortcut in shortcuts:
                for depth in dict.fromkeys(s.depths):
                    out.append(ProbeConfig(arch, depth, norm, shortcut))
    return out


def _check_choice(key: str, values: Sequence[str], valid: Sequence[str]) -> None:
    if not values:
        raise ProbeError(f"{key} needs at least one value; valid: {', '.join(valid)}")
    for v in values:
        if v not in valid:
            raise ProbeError(f"unknown {key} {v!r}; valid: {', '.join(valid)}")


def _device(name: str) -> torch.device:
    from depthlab.train import resolve_device

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
        loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        record = probe.record(0)
    finally:
        probe.close()
    return {"record": record, "layers": desc["layers"], "blocks": desc["blocks"],
            "loss": float(loss.detach()), "params": desc["params"]}


def _nonfinite_note(loss: float, grad_norm: list[float], layers) -> str:
    """Why a first/last ratio is not a finite positive number, in words."""
    main = [g for layer, g in zip(layers, grad_norm) if not layer.shortcut]
    first, last = main[0], main[-1]
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


def _log10(x: float) -> float:
    return math.log10(x) if math.isfinite(x) and x > 0 else math.nan


def _one_pass(config: ProbeConfig, seed: int, x: torch.Tensor, y: torch.Tensor,
              settings: ProbeSettings, num_classes: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    one = probe_once(config, seed, x, y, layout=settings.layout, num_classes=num_classes)
    rec, layers = one["record"], one["layers"]
    ratio = first_last_ratio(layers, rec.grad_norm)
    main = [g for layer, g in zip(layers, rec.grad_norm) if not layer.shortcut]
    return {
        "config": config, "seed": seed, "name": config.run_name(seed),
        "ratio": ratio, "log10_ratio": _log10(ratio),
        "grad_first": main[0], "grad_last": main[-1],
        "act_std_final": rec.act_std[-1] if rec.act_std else math.nan,
        "loss": one["loss"], "params": one["params"],
        "note": "" if math.isfinite(_log10(ratio)) else _nonfinite_note(
            one["loss"], rec.grad_norm, layers),
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
    from depthlab.train import machine

    runs = [results[(i, seed)] for i in range(len(configs)) for seed in range(settings.seeds)]
    layer_rows: list[tuple] = []
    block_rows: list[tuple] = []
    for r in runs:
        c, rec = r["config"], r["record"]
        key = (c.arch, c.depth, c.norm, c.shortcut, r["seed"])
        layer_rows.extend((*key, layer.index, layer.name, layer.stage, int(layer.shortcut), g, w)
                          for layer, g, w in zip(r["layers"], rec.grad_norm, rec.weight_norm))
        block_rows.extend((*key, i, b, a) for i, (b, a) in enumerate(zip(r["blocks"], rec.act_std)))
    return ProbeResult(settings=settings, layers=pd.DataFrame(layer_rows, columns=LAYER_COLUMNS),
                       blocks=pd.DataFrame(block_rows, columns=BLOCK_COLUMNS),
                       summary=summarise(runs), runs=runs, data_name=batches.name,
                       device=str(device), wall_seconds=wall, machine=machine(), command=command)


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
        notes = list(dict.fromkeys(r["note"] for r in rs if r["note"]))
        rows.append({
            "arch": config.arch, "depth": config.depth, "norm": config.norm,
            "shortcut": config.shortcut or "", "params": rs[0]["params"],
            "seeds": len(rs), "finite_seeds": len(finite),
            "log10_ratio_mean": float(finite.mean()) if len(finite) else math.nan,
            "log10_ratio_std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
            "log10_ratio_min": float(finite.min()) if len(finite) else math.nan,
            "log10_ratio_max": float(finite.max()) if len(finite) else math.nan,
            "grad_first_mean": float(np.mean([r["grad_first"] for r in rs])),
            "grad_last_mean": float(np.mean([r["grad_last"] for r in rs])),
            "act_std_final_mean": float(acts.mean()) if len(acts) else math.nan,
            "loss_mean": float(np.mean([r["loss"] for r in rs])),
            "note": "; ".join(notes),
            "seconds": float(sum(r["seconds"] for r in rs)),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- findings in words


def _variant(arch: str, shortcut: str, multi_shortcut: bool) -> str:
    return f"{arch} ({shortcut})" if shortcut and multi_shortcut else arch


def _exp(x: float) -> str:
    return f"10^{x:.1f}"


def _std(x: float) -> str:
    return f"{x:.2g}" if math.isfinite(x) else "non-finite"


def findings(summary: pd.DataFrame) -> list[str]:
    """What the numbers say, one sentence each: the ratio's trend with depth per
    architecture and norm, what removing batch norm does, the forward signal, and
    the configurations whose numbers left float32."""
    if summary.empty:
        return []
    lines = []
    multi = summary[summary.arch == "residual"]["shortcut"].nunique() > 1
    s = summary.assign(variant=[_variant(a, sc, multi) for a, sc in
                                zip(summary.arch, summary.shortcut)])
    norm_words = {"batch": "batch norm", "none": "no normalisation"}
    for (variant, norm), g in s.groupby(["variant", "norm"], sort=False):
        g = g.sort_values("depth")
        ok = g[g.finite_seeds > 0]
        bad = g[g.finite_seeds < g.seeds]
        text = f"{variant}, {norm_words[norm]}: "
        if len(ok) >= 2:
            lo, hi = ok.iloc[0], ok.iloc[-1]
            change = hi.log10_ratio_mean - lo.log10_ratio_mean
            if abs(change) < 1:
                trend = "within a factor of 10"
            elif change > 0:
                trend = f"up {change:.1f} decades"
            else:
                trend = f"down {-change:.1f} decades"
            text += (f"first/last gradient ratio {_exp(lo.log10_ratio_mean)} at depth {lo.depth} "
                     f"-> {_exp(hi.log10_ratio_mean)} at depth {hi.depth}, {trend}; "
                     f"last block output std {_std(lo.act_std_final_mean)} -> "
                     f"{_std(hi.act_std_final_mean)}")
        elif len(ok) == 1:
            r = ok.iloc[0]
            text += (f"first/last gradient ratio {_exp(r.log10_ratio_mean)} at depth {r.depth}; "
                     f"last block output std {_std(r.act_std_final_mean)}")
        else:
            text += "no finite ratio at any depth"
        if len(bad):
            text += "; outside float32's range at depth " + ", ".join(
                f"{r.depth} ({r.note}, {r.seeds - r.finite_seeds}/{r.seeds} seeds)"
                for r in bad.itertuples())
        lines.append(text)
    if set(s.norm) >= {"batch", "none"}:
        for variant, g in s.groupby("variant", sort=False):
            both = g.pivot_table(index="depth", columns="norm", values="log10_ratio_mean")
            if not {"batch", "none"} <= set(both.columns):
                continue
            both = both.dropna(subset=["batch", "none"])
            if both.empty:
                continue
            parts = [f"{_exp(r.batch)} -> {_exp(r.none)} at depth {d} "
                     f"({r.none - r.batch:+.1f} decades)" for d, r in both.iterrows()]
            lines.append(f"Removing batch norm from {variant} nets moves the first/last ratio "
                         + "; ".join(parts))
    return lines


# --------------------------------------------------------------------------- files


def default_dir(settings: ProbeSettings, runs_dir: str | Path = "runs") -> Path:
    if settings.out:
        return Path(settings.out)
    tag = settings.name or datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(runs_dir) / f"probe-{tag}"


def check_dir(path: str | Path) -> Path:
    """A probe directory may be new, empty or an earlier probe's (its files are replaced);
    anything else is a ProbeError, raised before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ProbeError(f"out={path} is a file; give a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise ProbeError(f"out={path} exists and is not a probe directory (no {MARKER}); "
                         "give a new or empty directory")
    return path


def prepare_dir(path: str | Path) -> Path:
    """Create the probe directory, removing an earlier probe's runs/ subdirectory."""
    path = check_dir(path)
    if (path / "runs").is_dir():
        shutil.rmtree(path / "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _settings_dict(result: ProbeResult) -> dict[str, Any]:
    s = asdict(result.settings)
    s["data"] = dict(result.settings.data) if result.settings.data is not None else None
    return {
        "kind": "probe", "command": result.command, "machine": result.machine,
        "device": result.device, "data": result.data_name, "wall_seconds": result.wall_seconds,
        "torch": torch.__version__, "settings": s,
    }


def write_runs(result: ProbeResult, runs_dir: Path, group: str) -> list[Path]:
    """One run-like directory per (configuration, seed) in depthlab.tracking.local's format
    (config.yaml, layers.csv, blocks.csv, gradflow.csv and activations.csv at step 0,
    header-only metrics CSVs, summary.json with status completed and no errors), so that
    `depthlab report <probe>/runs` reads them like runs stopped at initialisation."""
    from depthlab.tracking import RunInfo
    from depthlab.tracking.local import LocalSink

    s = result.settings
    written = []
    for r in result.runs:
        c: ProbeConfig = r["config"]
        run_dir = runs_dir / r["name"]
        config = {
            "arch": {"name": c.arch, "layout": s.layout, "norm": c.norm,
                     **({"shortcut": c.shortcut} if c.shortcut else {})},
            "depth": c.depth, "seed": r["seed"],
            "probe": {"batch": s.batch, "data": result.data_name, "loss": "cross_entropy",
                      "mode": "train", "step": 0},
        }
        info = RunInfo(name=r["name"], group=group, run_dir=run_dir, config=config,
                       description={}, layers=r["layers"], blocks=r["blocks"])
        sink = LocalSink(run_dir)
        sink.start(info)
        sink.log_gradflow(0, r["record"])
        ratio = r["ratio"]
        sink.finish({
            "name": r["name"], "group": group, "kind": "probe", "arch": c.arch,
            "depth": c.depth, "layout": s.layout, "norm": c.norm, "shortcut": c.shortcut,
            "preact": False if c.arch != "dense" else None,
            "zero_init_residual": False if c.arch != "dense" else None,
            "seed": r["seed"], "data": result.data_name, "train_subset": None,
            "params": r["params"], "flops": None, "epochs": 0, "total_steps": 0,
            "device": result.device, "machine": result.machine, "status": "completed",
            "diverged": False, "final_train_error": None, "final_test_error": None,
            "best_test_error": None, "epochs_completed": 0, "steps_completed": 0,
            "grad_ratio_first_last_init": ratio, "grad_ratio_first_last": ratio,
            "log10_grad_ratio_init": r["log10_ratio"], "log10_grad_ratio": r["log10_ratio"],
            "probe_batch": s.batch, "probe_loss": r["loss"], "probe_note": r["note"] or None,
            "wall_seconds": r["seconds"],
        })
        written.append(run_dir)
    return written


def write_probe(result: ProbeResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the probe directory: probe.json, probe.csv, probe_blocks.csv, summary.csv,
    the figures, report.md and runs/<name>/ per (configuration, seed)."""
    from depthlab.tracking.local import atomic_write_text, write_json

    out = prepare_dir(Path(out_dir))
    paths: dict[str, Path] = {}
    write_json(out / MARKER, _settings_dict(result))
    paths["probe"] = out / MARKER
    for key, name, frame in (("layers", "probe.csv", result.layers),
                             ("blocks", "probe_blocks.csv", result.blocks),
                             ("summary", "summary.csv", result.summary)):
        atomic_write_text(out / name, frame.to_csv(index=False))
        paths[key] = out / name
    paths.update(make_figures(result, out))
    write_runs(result, out / "runs", group=out.name)
    paths["runs"] = out / "runs"
    atomic_write_text(out / "report.md", report_markdown(result, paths))
    paths["report"] = out / "report.md"
    return paths


# --------------------------------------------------------------------------- figures

SHORTCUT_COLOURS = {"A": "#1f77b4", "B": "#9467bd", "C": "#17becf"}
NORM_STYLE = {"batch": "-", "none": "--"}
NORM_WORDS = {"batch": "batch norm", "none": "no norm"}


def _variants(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(arch, shortcut) pairs in display order."""
    pairs = frame[["arch", "shortcut"]].fillna("").drop_duplicates()
    order = {a: i for i, a in enumerate(ARCHS)}
    return sorted(((a, s) for a, s in pairs.itertuples(index=False)),
                  key=lambda p: (order.get(p[0], 9), p[1]))


def _variant_colour(arch: str, shortcut: str, multi: bool) -> str:
    from depthlab.plots import ARCH_COLOURS

    if arch == "residual" and multi:
        return SHORTCUT_COLOURS.get(shortcut, ARCH_COLOURS["residual"])
    return ARCH_COLOURS.get(arch, "#7f7f7f")


def _save(fig, path: Path) -> Path:
    from depthlab.plots import save_figure

    return save_figure(fig, path, dpi=120)


def _pyplot():
    from depthlab.plots import plt  # imported only when figures are made; the house style

    return plt


def _geomean(values: pd.Series) -> float:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else math.nan


def plot_profiles(layers: pd.DataFrame, path: Path, *, seeds: int) -> Path:
    """Gradient norm vs relative depth position (main-path layer index / depth), one line
    per depth, one panel per (architecture, shortcut) x norm, log scale; seeds averaged
    geometrically; non-finite or zero norms are left out of the line."""
    plt = _pyplot()
    main = layers[layers.shortcut_layer == 0].copy()
    main["shortcut"] = main["shortcut"].fillna("")
    variants = _variants(main)
    norms = [n for n in NORMS if n in set(main.norm)]
    depths = sorted(main.depth.unique())
    cmap = plt.get_cmap("viridis")
    colour = {d: cmap(0.85 * i / max(1, len(depths) - 1)) for i, d in enumerate(depths)}
    fig, axes = plt.subplots(len(norms), len(variants), figsize=(4.6 * len(variants),
                             3.6 * len(norms)), squeeze=False)
    grouped = main.groupby(["arch", "shortcut", "norm", "depth", "layer_index"],
                           sort=True)["grad_norm"].apply(_geomean).reset_index()
    multi = len([v for v in variants if v[0] == "residual"]) > 1
    for i, norm in enumerate(norms):
        for j, (arch, sc) in enumerate(variants):
            ax = axes[i][j]
            g = grouped[(grouped.arch == arch) & (grouped.shortcut == sc) & (grouped.norm == norm)]
            for depth in depths:
                d = g[g.depth == depth]
                if d.empty:
                    continue
                ax.plot(d.layer_index / depth, d.grad_norm, color=colour[depth], lw=1.4,
                        label=f"depth {depth}")
            ax.set_yscale("log")
            name = f"{arch} (shortcut {sc})" if sc and multi else arch
            ax.set_title(f"{name}, {NORM_WORDS[norm]}")
            ax.set_xlim(0, 1)
            if i == len(norms) - 1:
                ax.set_xlabel("relative depth position (layer index / depth)")
            if j == 0:
                ax.set_ylabel("gradient norm (L2, weights)")
            if ax.has_data():
                ax.legend(loc="best", fontsize=7.5)
    note = f"geometric mean over {seeds} seeds" if seeds > 1 else "one seed"
    fig.suptitle(f"Gradient norm per layer at initialisation ({note}; 0 = input, 1 = output)",
                 y=1.01)
    fig.tight_layout()
    return _save(fig, path)


def _lines_vs_depth(summary: pd.DataFrame, path: Path, *, ratio: bool, seeds: int) -> Path:
    plt = _pyplot()
    from matplotlib.ticker import NullLocator

    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    s = summary.copy()
    s["shortcut"] = s["shortcut"].fillna("")
    variants = _variants(s)
    multi = len([v for v in variants if v[0] == "residual"]) > 1
    missing = []
    for arch, sc in variants:
        for norm in NORMS:
            g = s[(s.arch == arch) & (s.shortcut == sc) & (s.norm == norm)].sort_values("depth")
            if g.empty:
                continue
            name = f"{arch} ({sc})" if sc and multi else arch
            label = f"{name}, {NORM_WORDS[norm]}"
            kw = dict(color=_variant_colour(arch, sc, multi), ls=NORM_STYLE[norm], marker="o",
                      ms=4.5, lw=1.8, capsize=3)
            if ratio:
                ok = g[g.finite_seeds > 0]
                m = ok.log10_ratio_mean.to_numpy()
                sd = np.nan_to_num(ok.log10_ratio_std.to_numpy())
                y = 10.0 ** m
                ax.errorbar(ok.depth, y, yerr=[y - 10.0 ** (m - sd), 10.0 ** (m + sd) - y],
                            label=label, **kw)
                bad = g[g.finite_seeds == 0]
            else:
                ok = g[np.isfinite(g.act_std_final_mean) & (g.act_std_final_mean > 0)]
                ax.plot(ok.depth, ok.act_std_final_mean, label=label,
                        **{k: v for k, v in kw.items() if k != "capsize"})
                bad = g[~g.index.isin(ok.index)]
            missing += [f"{label} at {d}" for d in bad.depth]
    ax.set_xscale("log")
    ax.set_yscale("log")
    depths = sorted(s.depth.unique())
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("depth (weighted layers)")
    if ratio:
        ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
        ax.set_ylabel("first / last layer gradient norm")
        what = "First / last layer gradient-norm ratio at initialisation"
        what += f" (geometric mean; bars: ±1 std over {seeds} seeds)" if seeds > 1 else ""
    else:
        ax.set_ylabel("std of the last block's output")
        what = "Last block output std at initialisation" + (
            f" (mean over {seeds} seeds)" if seeds > 1 else "")
    ax.set_title(what, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if missing:
        fig.text(0.01, -0.04, "not finite in float32 (left out): " + "; ".join(missing),
                 fontsize=7.5, wrap=True)
    return _save(fig, path)


def make_figures(result: ProbeResult, out: Path) -> dict[str, Path]:
    seeds = result.settings.seeds
    return {
        "profile": plot_profiles(result.layers, out / FIGURES["profile"][0], seeds=seeds),
        "ratio": _lines_vs_depth(result.summary, out / FIGURES["ratio"][0], ratio=True,
                                 seeds=seeds),
        "act": _lines_vs_depth(result.summary, out / FIGURES["act"][0], ratio=False,
                               seeds=seeds),
    }


# --------------------------------------------------------------------------- the report

TABLE_HEADERS = ["arch", "depth", "norm", "shortcut", "params", "log10 first/last",
                 "std over seeds", "last block act std", "seconds", "note"]


def table_rows(summary: pd.DataFrame) -> list[list[str]]:
    """The summary table as strings (TABLE_HEADERS); the note says how many seeds left
    float32's range, and how."""
    rows = []
    for r in summary.itertuples():
        ratio = f"{r.log10_ratio_mean:+.2f}" if r.finite_seeds else "non-finite"
        note = r.note or ""
        if r.finite_seeds < r.seeds:
            note = f"{r.seeds - r.finite_seeds}/{r.seeds} seeds: {note}"
        rows.append([r.arch, str(r.depth), r.norm, r.shortcut or "-", f"{r.params / 1e6:.2f}M",
                     ratio,
                     f"{r.log10_ratio_std:.2f}" if math.isfinite(r.log10_ratio_std) else "-",
                     _std(r.act_std_final_mean), f"{r.seconds:.1f}", note])
    return rows


def report_markdown(result: ProbeResult, paths: Mapping[str, Path]) -> str:
    from depthlab.analysis import markdown_table

    s = result.settings
    shortcut = ",".join(s.shortcuts) if s.shortcuts else ("A" if s.layout == "cifar" else "B")
    lines = [
        "# depthlab probe: gradient flow at initialisation", "",
        f"- **Machine:** {result.machine}, device {result.device}"
        + (f", {s.threads} passes side by side, one torch thread each"
           if result.device == "cpu" else ""),
        f"- **Wall time:** {result.wall_seconds:.1f} s for {len(result.runs)} forward + backward "
        f"passes ({len(result.summary)} configurations x {s.seeds} seeds)",
    ]
    if result.command:
        lines += ["- **Command:**", "", "```", result.command, "```", ""]
    lines += [
        f"- **Settings:** layout {s.layout}, batch {s.batch} ({result.data_name}), seeds 0..{s.seeds - 1}, "
        f"residual shortcut {shortcut}, loss cross-entropy, training mode, float32",
        "", "## Summary", "",
        markdown_table(TABLE_HEADERS, table_rows(result.summary)), "",
        "log10 first/last: log10 of the gradient norm of the first main-path layer (the stem "
        "conv) over that of the last (the classifier), mean over the seeds where it is finite; "
        "std over seeds: sample std of that log10. Last block act std: standard deviation of "
        "the last block's output, mean over seeds.", "",
        "## Findings", "",
    ]
    lines += [f"- {f}" for f in findings(result.summary)]
    lines += ["", "## Figures", ""]
    for key, (name, caption) in FIGURES.items():
        if key in paths:
            lines += [f"![{caption}]({name})", "", f"*{caption}.*", ""]
    lines += ["## Files", "",
              "- `probe.csv`: gradient and weight norm per (configuration, seed, weighted layer)",
              "- `probe_blocks.csv`: output std per (configuration, seed, block)",
              "- `summary.csv`: one row per configuration (the table above)",
              "- `runs/<arch>-<depth>-<norm>-s<seed>/`: run directories stopped at step 0; "
              "`depthlab report <this directory>/runs` reads them", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- W&B


def log_wandb(result: ProbeResult, paths: Mapping[str, Path], *, project: str = "depthlab") -> str:
    """One W&B run for the whole probe: the summary table and the figures. Offline unless
    WANDB_MODE says otherwise. Returns the run's directory; raises whatever wandb raises."""
    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    out = Path(paths["report"]).parent
    run = wandb.init(project=project, name=out.name, group="probe", job_type="probe", mode=mode,
                     dir=os.environ.get("WANDB_DIR") or str(out),
                     config=_settings_dict(result), reinit="finish_previous")
    try:
        summary = result.summary.fillna({"shortcut": ""})
        run.log({"probe/summary": wandb.Table(dataframe=summary),
                 **{f"probe/{key}": wandb.Image(str(paths[key]), caption=FIGURES[key][1])
                    for key in FIGURES if key in paths}})
        run.summary["wall_seconds"] = result.wall_seconds
    finally:
        run.finish()
    return str(run.dir) if getattr(run, "dir", None) else ""
