"""The lesion report: the verdict against the paper, the figure, lesion.csv, and every run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from depthlab.rundir import atomic_write

from .cut import LesionError, LoadedRun, lesion, load_run

# Thresholds of the verdict against the paper (stated in its text).
BARELY_HURTS = 0.05  # residual: median rise in test error over non-downsampling blocks, fraction
COLLAPSE = 0.5  # plain: median error covers more than this share of the gap to chance
NEAR_CHANCE = 0.05  # an intact net within this of chance error has learnt nothing to lose


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
