"""Deleting one block at a time from a trained net (`depthlab lesion`).

Veit, Wilber and Belongie 2016 ("Residual networks behave like ensembles of
relatively shallow networks", Sec. 4, Fig. 3): removing a single block from a
trained residual net barely changes its test error, except for the blocks that
downsample, while removing a layer from a plain net drops it to chance.

    >>> run = load_run("runs/residual-56-s0")
    >>> table = lesion(run)          # one row for the intact net, one per block

A deleted residual block keeps only its shortcut: output = shortcut(x), which is
x itself, the zero-padding shortcut (option A) or the projection (B/C), exactly
the path the block's own forward takes (pre-activation blocks feed a projection
their pre-activated input, so that stays too; post-activation blocks keep the
ReLU after the addition, a no-op on x and on option A, which are non-negative). A plain block has no shortcut:
it is replaced by the identity where its input and output shapes agree and is
"n/a" where it changes them (stride 2, more channels). A deletion is a temporary
forward override on the block's module, undone on exit; the model is never copied.
"""

from __future__ import annotations

import math
import types
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pandas as pd
import torch
import yaml
from torch import nn

from depthlab.models.blocks import PreActBasicBlock, PreActBottleneck
from depthlab.rundir import CONFIG, atomic_write

COLUMNS = ["run", "arch", "depth", "seed", "block_index", "block", "stage", "downsampling",
           "status", "test_error", "test_loss", "delta_error"]
# Thresholds of the verdict against the paper (stated in its text).
BARELY_HURTS = 0.05  # residual: median rise in test error over non-downsampling blocks, fraction
COLLAPSE = 0.5  # plain: median error covers more than this share of the gap to chance
NEAR_CHANCE = 0.05  # an intact net within this of chance error has learnt nothing to lose


class LesionError(ValueError):
    """A lesion problem the user can fix; str() is one line."""


@dataclass(frozen=True)
class BlockInfo:
    index: int  # 0-based, forward order
    name: str  # module path, e.g. "layer2.0"
    stage: str  # "stage1", ...
    downsampling: bool  # changes the shape: stride 2 or more channels out than in
    residual: bool
    removable: bool  # residual blocks always; plain blocks only where the shape is kept


@dataclass
class LoadedRun:
    run_dir: Path
    name: str
    cfg: dict[str, Any]
    model: nn.Module
    data: Any  # depthlab.data.DataBundle
    recorded_test_error: float | None  # the run's own final test error (summary.json)


# --------------------------------------------------------------------------- loading


def load_run(run_dir: str | Path, *, device: str = "auto", eval_batch_size: int | None = None,
             test_subset: int | None = None, data_root: str | None = None) -> LoadedRun:
    """A trained run's model (checkpoint.pt, rebuilt from config.yaml as depthlab.train
    builds it) and its test set (data.test_subset respected; `test_subset`/`data_root`
    override the run's). Raises LesionError for anything the user can fix."""
    from depthlab.analysis import read_summary
    from depthlab.checkpoint import load_checkpoint
    from depthlab.data import DataError, build_data
    from depthlab.models import ArchitectureError
    from depthlab.engine.setup import make_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LesionError(f"{run_dir}: no such run directory")
    config_path = run_dir / CONFIG
    if not config_path.is_file():
        raise LesionError(f"{run_dir} is not a run directory (no config.yaml); give a directory "
                          "made by depthlab train, e.g. runs/residual-56-s0")
    try:
        cfg = yaml.safe_load(config_path.read_text()) or {}
        arch = cfg["arch"]["name"]
        depth = int(cfg["depth"])
        seed = int(cfg.get("seed", 0))
        data_cfg = {k: v for k, v in dict(cfg["data"]).items() if k != "layout"}
        trainer = cfg.get("trainer") or {}
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise LesionError(f"{config_path} is not a depthlab run config ({type(err).__name__}: "
                          f"{err})") from None
    if arch not in ("plain", "residual"):
        raise LesionError(f"{run_dir} is a {arch} net: lesion deletes blocks of plain and "
                          "residual nets (a dense layer's output is concatenated, there is no "
                          "identity path to fall back on)")
    state = load_checkpoint(run_dir)
    if state is None:
        raise LesionError(f"{run_dir} has no readable checkpoint.pt (the run has not finished "
                          "an epoch yet?)")
    if test_subset is not None:
        data_cfg["test_subset"] = test_subset
    if data_root is not None:
        data_cfg["root"] = data_root
    dev = _device(device)
    eval_bs = eval_batch_size or int(trainer.get("eval_batch_size") or 256)
    try:
        data = build_data(data_cfg, batch_size=int(trainer.get("batch_size") or 1),
                          eval_batch_size=eval_bs, device=dev, seed=seed)
    except DataError as err:
        raise LesionError(f"{run_dir}: {err}") from None
    try:
        model = make_model(cfg, data.num_classes, data.image_size)
    except ArchitectureError as err:
        raise LesionError(f"{run_dir}: {err}") from None
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise LesionError(f"{run_dir}: checkpoint.pt does not fit the net config.yaml "
                          f"describes ({first})") from None
    model.to(dev).eval()
    summary, _problem = read_summary(run_dir)  # only to compare errors: optional
    try:
        recorded = float(summary["final_test_error"]) if summary else None
    except (KeyError, TypeError, ValueError):
        recorded = None
    name = (cfg.get("run") or {}).get("name") or f"{arch}-{depth}-s{seed}"
    return LoadedRun(run_dir, str(name), cfg, model, data, recorded)


def _device(name: str) -> torch.device:
    from depthlab.engine.setup import resolve_device

    try:
        return resolve_device(name, what="--device")
    except ValueError as err:
        raise LesionError(str(err)) from None


# --------------------------------------------------------------------------- blocks and deletion


def _is_residual(block: nn.Module) -> bool:
    return bool(getattr(block, "residual", False))


def _channels(block: nn.Module) -> tuple[int, int]:
    convs = [m for n, m in block.named_children() if n.startswith("conv")]
    return convs[0].in_channels, convs[-1].out_channels


def _changes_shape(block: nn.Module) -> bool:
    """Stride or channel count differs between the block's input and output (downsampling)."""
    c_in, c_out = _channels(block)
    return getattr(block, "stride", 1) != 1 or c_in != c_out


def blocks_of(model: nn.Module) -> list[BlockInfo]:
    """The net's blocks in forward order, with what deleting each one means."""
    if not hasattr(model, "block_names") or not hasattr(model, "stage_of"):
        raise LesionError("lesion needs a plain or residual net made by depthlab.models")
    out = []
    for i, name in enumerate(model.block_names()):
        block = model.get_submodule(name)
        downsampling = _changes_shape(block)
        residual = _is_residual(block)
        out.append(BlockInfo(i, name, model.stage_of(name), downsampling, residual,
                             removable=residual or not downsampling))
    return out


def shortcut_path(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a residual block outputs with its residual branch removed: the shortcut alone,
    as the block's own forward computes it. Post-activation blocks keep the ReLU they apply
    after the addition (it is not part of the branch); on an identity or zero-padding
    shortcut it changes nothing, since their input is already a ReLU's output."""
    if isinstance(block, (PreActBasicBlock, PreActBottleneck)):
        if block.downsample is None:
            return x
        # pre-activation blocks feed the shortcut their pre-activated input (see blocks.py)
        return block.downsample(block.relu(block.bn1(x)))
    identity = x if block.downsample is None else block.downsample(x)
    return torch.relu(identity)


def _identity(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x


def _shortcut_only(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return shortcut_path(self, x)


@contextmanager
def lesioned(model: nn.Module, block_name: str) -> Iterator[nn.Module]:
    """Inside the block, `block_name` is deleted: a residual block keeps only its shortcut,
    a plain block becomes the identity (LesionError where it changes the shape)."""
    block = model.get_submodule(block_name)
    if _is_residual(block):
        forward = _shortcut_only
    else:
        if _changes_shape(block):
            c_in, c_out = _channels(block)
            raise LesionError(f"plain block {block_name} changes the shape "
                              f"({c_in} -> {c_out} channels, stride {block.stride}): "
                              "it cannot be replaced by the identity")
        forward = _identity
    if "forward" in block.__dict__:
        raise LesionError(f"block {block_name} is already deleted")
    block.forward = types.MethodType(forward, block)
    try:
        yield block
    finally:
        del block.forward


# --------------------------------------------------------------------------- the experiment


def evaluate(model: nn.Module, loader) -> tuple[float, float]:
    """(test loss, test error) exactly as depthlab.train evaluates a run."""
    from depthlab.engine.loop import evaluate as train_evaluate

    return train_evaluate(model, loader, nullcontext)


def lesion(run: LoadedRun, *, on_step: Callable[[str, int, int], None] | None = None
           ) -> pd.DataFrame:
    """Test error of the intact net, then with each block deleted in turn (COLUMNS).

    status: "original" (nothing deleted), "ok", or "n/a" (a plain block that changes shape).
    delta_error = test_error - the original's; errors are fractions.
    on_step(description, done, total) is called after each evaluation.
    """
    model, cfg = run.model, run.cfg
    blocks = blocks_of(model)
    arch, depth, seed = cfg["arch"]["name"], int(cfg["depth"]), cfg.get("seed")
    removable = [b for b in blocks if b.removable]
    total, done = 1 + len(removable), 0
    loss0, err0 = evaluate(model, run.data.test)
    done += 1
    if on_step:
        on_step("intact net", done, total)
    rows = [[run.name, arch, depth, seed, -1, "", "", False, "original", err0, loss0, 0.0]]
    for b in blocks:
        if not b.removable:
            rows.append([run.name, arch, depth, seed, b.index, b.name, b.stage, b.downsampling,
                         "n/a", math.nan, math.nan, math.nan])
            continue
        with lesioned(model, b.name):
            loss, err = evaluate(model, run.data.test)
        rows.append([run.name, arch, depth, seed, b.index, b.name, b.stage, b.downsampling,
                     "ok", err, loss, err - err0])
        done += 1
        if on_step:
            on_step(f"without {b.name}", done, total)
    return pd.DataFrame(rows, columns=COLUMNS)


# --------------------------------------------------------------------------- verdicts


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def verdict(table: pd.DataFrame, num_classes: int) -> tuple[bool | None, str]:
    """One run's lesion result in words, against Veit et al. 2016. holds: whether the run
    behaves as the paper found for its architecture (None: nothing to judge)."""
    chance = 1 - 1 / num_classes
    orig = table[table.status == "original"].iloc[0]
    arch, name = orig.arch, orig.run
    ok = table[table.status == "ok"]
    na = table[table.status == "n/a"]
    base = f"{name}: intact test error {_pct(orig.test_error)} (chance {_pct(chance)})"
    if ok.empty:
        return None, base + "; no block could be deleted"
    if orig.test_error > chance - NEAR_CHANCE:
        return None, (base + " - the intact net is no better than chance, so deleting blocks "
                      "cannot tell anything: lesion a trained run")
    if arch == "residual":
        inner = ok[~ok.downsampling.astype(bool)]
        down = ok[ok.downsampling.astype(bool)]
        parts = [base]
        holds = None
        if len(inner):
            med = float(inner.test_error.median())
            worst = inner.loc[inner.test_error.idxmax()]
            rise = med - orig.test_error
            holds = rise < BARELY_HURTS
            parts.append(f"deleting one of its {len(inner)} non-downsampling blocks gives a median "
                         f"{_pct(med)} ({100 * rise:+.1f} points; worst {_pct(worst.test_error)} "
                         f"without {worst.block})")
        if len(down):
            parts.append("downsampling blocks: " + ", ".join(
                f"{_pct(r.test_error)} without {r.block}" for r in down.itertuples()))
        words = {True: "as the paper found, a single deleted block barely hurts (median rise "
                       f"under {100 * BARELY_HURTS:.0f} points)",
                 False: "unlike the paper, deleting a single block hurts (median rise of "
                        f"{100 * BARELY_HURTS:.0f} points or more)",
                 None: "no non-downsampling block to judge"}
        return holds, "; ".join(parts) + f" - {words[holds]}"
    med = float(ok.test_error.median())
    gap = chance - orig.test_error
    holds = gap > 0 and (med - orig.test_error) > COLLAPSE * gap
    worst = ok.loc[ok.test_error.idxmin()]
    text = (f"{base}; deleting one of its {len(ok)} shape-keeping blocks gives a median "
            f"{_pct(med)} (best {_pct(worst.test_error)} without {worst.block})"
            + (f"; {len(na)} shape-changing blocks n/a" if len(na) else ""))
    if holds:
        text += (" - as the paper found, the plain net collapses toward chance (median error "
                 f"past {100 * COLLAPSE:.0f}% of the way from intact to chance)")
    else:
        text += (" - unlike the paper, the plain net does not collapse toward chance (median "
                 f"error short of {100 * COLLAPSE:.0f}% of the way from intact to chance)")
    return holds, text


PAPER = ("Veit et al. 2016 (Fig. 3): deleting a single block from a trained residual net barely "
         "changes its test error, except for downsampling blocks; deleting a layer from a plain "
         "net drops it to chance.")


# --------------------------------------------------------------------------- figure and files


def plot_lesion(table: pd.DataFrame, path: str | Path, *, num_classes: dict[str, int]) -> Path:
    """Test error vs deleted block, one panel per run side by side (shared y axis):
    the intact net's error dashed, chance dotted, downsampling blocks in orange with a
    shaded band, n/a blocks as grey crosses at the bottom."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from depthlab.plots import ARCH_COLOURS, save_figure, style, subplots  # atomic writes

    with style():  # the house style, while the figure is made and saved
        runs = list(dict.fromkeys(table.run))
        fig, axes = subplots(1, len(runs), figsize=(max(5.0, 5.6 * len(runs)), 4.2),
                             squeeze=False, sharey=True)
        for ax, run in zip(axes[0], runs):
            t = table[table.run == run]
            orig = t[t.status == "original"].iloc[0]
            blocks = t[t.status != "original"]
            ok = blocks[blocks.status == "ok"]
            down = ok[ok.downsampling.astype(bool)]
            inner = ok[~ok.downsampling.astype(bool)]
            na = blocks[blocks.status == "n/a"]
            c = ARCH_COLOURS.get(orig.arch, "#555555")
            for b in blocks[blocks.downsampling.astype(bool)].block_index:
                ax.axvspan(b - 0.5, b + 0.5, color="#ff7f0e", alpha=0.12, lw=0)
            ax.plot(ok.block_index, 100 * ok.test_error, color=c, lw=1.0, alpha=0.5)
            ax.scatter(inner.block_index, 100 * inner.test_error, color=c, s=18, zorder=3)
            ax.scatter(down.block_index, 100 * down.test_error, color="#ff7f0e", s=36, marker="D",
                       zorder=4)
            if len(na):
                ax.scatter(na.block_index, [1.5] * len(na), marker="x", color="0.45", s=30,
                           zorder=4)
            ax.axhline(100 * orig.test_error, color=c, ls="--", lw=1.2)
            chance = 100 * (1 - 1 / num_classes.get(run, 10))
            ax.axhline(chance, color="0.4", ls=":", lw=1.2)
            ax.set_title(f"{run} ({orig.arch}, depth {orig.depth})")
            ax.set_xlabel("deleted block (index, input -> output)")
            ax.set_xlim(-0.7, max(blocks.block_index.max(), 0) + 0.7)
            ax.grid(True, alpha=0.3)
        axes[0][0].set_ylabel("test error (%)")
        axes[0][0].set_ylim(0, 100)
        handles = [Line2D([], [], color="0.3", ls="--", label="intact net"),
                   Line2D([], [], color="0.4", ls=":", label="chance"),
                   Line2D([], [], color="0.3", marker="o", ls="", label="block deleted"),
                   Line2D([], [], color="#ff7f0e", marker="D", ls="",
                          label="downsampling block deleted"),
                   Patch(color="#ff7f0e", alpha=0.25, label="downsampling block")]
        if (table.status == "n/a").any():
            handles.append(Line2D([], [], color="0.45", marker="x", ls="",
                                  label="n/a (plain block changes shape)"))
        fig.suptitle("Test error with one block deleted (Veit et al. 2016)", y=1.02)
        fig.tight_layout()
        fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        return save_figure(fig, path, dpi=120)


def write_lesion(table: pd.DataFrame, out_dir: str | Path, *,
                 num_classes: dict[str, int]) -> dict[str, Path]:
    """lesion.csv (COLUMNS, every run) and lesion.png into `out_dir`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LesionError(f"--out {out} is a file; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "lesion.csv", table.to_csv(index=False))
    return {"csv": out / "lesion.csv",
            "figure": plot_lesion(table, out / "lesion.png", num_classes=num_classes)}


def run_lesion(run_dirs: Sequence[str | Path], *, out: str | Path | None = None,
               device: str = "auto", eval_batch_size: int | None = None,
               test_subset: int | None = None, data_root: str | None = None,
               on_step: Callable[[str, str, int, int], None] | None = None
               ) -> tuple[pd.DataFrame, list[tuple[bool | None, str]], dict[str, Path],
                          list[LoadedRun]]:
    """Lesion every run, write lesion.csv and lesion.png into `out` (default: the first run
    directory). Returns (table, verdicts, paths, runs); runs are loaded one at a time and
    the returned ones no longer hold their model and data."""
    if not run_dirs:
        raise LesionError("give at least one run directory, e.g. depthlab lesion runs/residual-56-s0")
    tables, verdicts, loaded, num_classes = [], [], [], {}
    for run_dir in run_dirs:
        run = load_run(run_dir, device=device, eval_batch_size=eval_batch_size,
                       test_subset=test_subset, data_root=data_root)
        if run.name in num_classes:
            run.name = f"{run.name} ({Path(run_dir).name})"
        step = (lambda what, done, total, _n=run.name: on_step(_n, what, done, total)) \
            if on_step else None
        t = lesion(run, on_step=step)
        tables.append(t)
        num_classes[run.name] = run.data.num_classes
        verdicts.append(verdict(t, run.data.num_classes))
        loaded.append(run)
        run.model = run.data = None  # free the net and the test set before the next run
    table = pd.concat(tables, ignore_index=True)
    paths = write_lesion(table, out if out is not None else run_dirs[0], num_classes=num_classes)
    return table, verdicts, paths, loaded
