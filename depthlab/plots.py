"""Figures from the run table: PNGs readable at a glance, axes labelled with units.

    plot_error_curves(table, "error_curves.png")        # ResNet paper Fig. 4/6 style
    plot_final_error(table, "final_error_vs_depth.png") # the degradation at a glance
    plot_gradflow_layers(table, "gradflow_layers.png")  # gradient norm vs layer, per depth
    plot_gradflow_heatmap(run_dir, "gradflow_heatmap.png")
    plot_grad_ratio_over_training(table, "grad_ratio_over_training.png")  # vanishing, over time
    plot_back_norm_blocks(table, "back_norm_blocks.png")  # ||dL/dh_b|| per block, init and end

Each takes the table from `depthlab.analysis.load_table` (or a run directory),
writes one PNG atomically and returns its path; it raises `NothingToPlot` when
the runs hold no data for it. Curves and gradient profiles use the runs that
trained (completed, running, interrupted); seeds of one architecture and
depth are averaged (gradient norms geometrically).

About 490 lines, past the house's 450: the six figures share their styling, averaging and
panel helpers, and one figure per module would spread those helpers over six files.

The house style is applied inside `style()`, never at import: importing this
module changes no matplotlib setting and selects no backend. Figures are made
by `subplots` (a Figure drawn by the Agg canvas, not registered with pyplot), so
other figures in the process are untouched. Other figure makers (lesion, probe)
use the same three pieces:

    with plots.style():
        fig, axes = plots.subplots(1, 2, figsize=(8, 4))
        ...
        plots.save_figure(fig, "x.png")

The one gradient heatmap (layers x recorded steps, colour = log10 gradient
norm) is drawn by `heatmap_figure`: to a file for the report
(`plot_gradflow_heatmap`), to pixels for W&B (`gradflow_heatmap_pixels`).

Why one module of about 480 lines: the six figures share the style, the panel grid, the
architecture colours and the seed-averaging helpers; split by figure, each piece would
import the same private helpers back, and the report, W&B and probe would each need to know
which file holds which figure.
"""

from __future__ import annotations

import math
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter, NullLocator

from depthlab.analysis import (
    ARCH_ORDER,
    aggregate,
    block_profile,
    epoch_metrics,
    grad_ratio_series,
    gradflow,
    gradflow_profile,
)
from depthlab.rundir import atomic_file

DPI = 130
ARCH_COLOURS = {"plain": "#d62728", "residual": "#1f77b4", "dense": "#2ca02c"}
OTHER_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
TRAINED = ("completed", "running", "interrupted")
# The house style: light grid, no top/right spines, compact legends.
STYLE = {
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "font.size": 10, "axes.titlesize": 11, "legend.fontsize": 8.5, "legend.framealpha": 0.85,
}


class NothingToPlot(ValueError):
    """The runs hold no data for this figure; str() says what is missing."""


@contextmanager
def style() -> Iterator[None]:
    """The house style (STYLE) for the figures made, drawn and saved inside; matplotlib's
    settings are restored on leaving."""
    with matplotlib.rc_context(STYLE):
        yield


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
             dpi: float | None = None, layout: str | None = None, **kwargs):
    """(figure, axes) as pyplot.subplots makes them, but on a Figure of its own drawn by
    the Agg canvas: no backend is selected and pyplot never holds the figure."""
    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig, path: str | Path, dpi: int = DPI) -> Path:
    """Write fig as PNG through a temp file and a rename (a killed run never leaves half a
    figure), then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(path) as f:
            fig.savefig(f, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        _close(fig)
    return path


def figure_pixels(fig) -> np.ndarray:
    """The figure drawn at its own size and dpi, as an RGB uint8 array (rows, columns, 3)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
    _close(fig)
    return pixels


def _close(fig) -> None:
    """Let go of a figure; one made through pyplot (the legacy `plt` below) is closed there."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


def _variants(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(variant, arch) in display order: plain, residual, dense, others."""
    pairs = table[["variant", "arch", "settings"]].drop_duplicates()
    pairs = pairs.assign(_o=pairs["arch"].map(lambda a: (ARCH_ORDER.get(a, len(ARCH_ORDER)), a)))
    pairs = pairs.sort_values(["_o", "settings"], kind="stable")
    return list(zip(pairs["variant"], pairs["arch"]))


def _arch_colours(variants: list[tuple[str, str]]) -> dict[str, str]:
    colours, spare, used = {}, iter(OTHER_COLOURS * 4), set()
    for variant, arch in variants:
        c = ARCH_COLOURS.get(arch)
        colours[variant] = c if c and c not in used else next(spare)
        used.add(colours[variant])
    return colours


def _depth_colours(depths) -> dict[float, tuple]:
    depths = sorted(set(depths))
    cmap = matplotlib.colormaps["viridis"]
    if len(depths) == 1:
        return {depths[0]: cmap(0.35)}
    return {d: cmap(0.8 * i / (len(depths) - 1)) for i, d in enumerate(depths)}


def _panels(n: int, *, rows: int = 1, width: float = 5.2, height: float = 3.9):
    fig, axes = subplots(rows, n, figsize=(width * n, height * rows), squeeze=False)
    return fig, axes


def _title_of(variant: str) -> str:
    """"plain nets", or "residual nets\n(norm=none, ...)" wrapped to fit a panel."""
    arch, _, rest = variant.partition(" (")
    return f"{arch} nets" + ("\n" + textwrap.fill(f"({rest}", 48) if rest else "")


def _suptitle(fig, text: str, y: float = 1.02) -> None:
    """The figure title, lifted above the tallest panel title (two-line titles name settings)."""
    lines = max((ax.get_title().count("\n") + 1 for ax in fig.axes if ax.get_title()), default=1)
    fig.suptitle(text, y=y + 0.05 * (lines - 1) * 3.9 / fig.get_figheight())


def _seed_note(n: int) -> str:
    return "" if n <= 1 else f" ({n} seeds)"


@style()
def plot_error_curves(table: pd.DataFrame, path: str | Path) -> Path:
    """Training (thin dashed) and test (bold) error vs epoch; one panel per architecture,
    one colour per depth, seeds averaged per epoch."""
    trained = table[table["status"].isin(TRAINED)]
    curves: dict[tuple[str, float], list[pd.DataFrame]] = {}
    for _, r in trained.iterrows():
        m = epoch_metrics(r["run_dir"])
        if m is not None and ("train_error" in m or "test_error" in m):
            curves.setdefault((r["variant"], r["depth"]), []).append(m)
    if not curves:
        raise NothingToPlot("no completed or running run has a metrics_epochs.csv")
    variants = [v for v in _variants(trained) if any(k[0] == v[0] for k in curves)]
    colours = _depth_colours(k[1] for k in curves)
    fig, axes = _panels(len(variants))
    top = 0.0
    for ax, (variant, _arch) in zip(axes[0], variants):
        for (v, depth), frames in sorted(curves.items(), key=lambda kv: kv[0][1]):
            if v != variant:
                continue
            both = pd.concat(frames)
            mean = both.groupby("epoch").mean(numeric_only=True)
            c = colours[depth]
            marker = "o" if len(mean) <= 20 else None
            label = f"depth {depth:g}{_seed_note(len(frames))}"
            if "train_error" in mean:
                tr = mean["train_error"].dropna()
                ax.plot(tr.index, 100 * tr.values, "--", color=c, lw=1.0, marker=marker, ms=2.5)
                top = max(top, 100 * tr.max()) if len(tr) else top
            if "test_error" in mean:
                te = mean["test_error"].dropna()
                ax.plot(te.index, 100 * te.values, "-", color=c, lw=2.2, marker=marker, ms=3.5,
                        label=label)
                top = max(top, 100 * te.max()) if len(te) else top
        ax.set_title(_title_of(variant))
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="0.3", ls="--", lw=1.0),
                    Line2D([], [], color="0.3", ls="-", lw=2.2)]
        labels += ["train", "test"]
        ax.legend(handles, labels, loc="upper right")
    for ax in axes[0]:
        ax.set_ylim(0, max(top * 1.08, 1.0))
        ax.xaxis.get_major_locator().set_params(integer=True)
    _suptitle(fig, "Training error (thin dashed) and test error (bold) per epoch")
    return save_figure(fig, path)


def _depth_axis(ax, depths) -> None:
    """Ticks at the depths run; log scale when they span 10x or more (20 .. 1202);
    a label too close to the previous one is left out so none overlap."""
    depths = sorted(float(d) for d in depths)
    log = len(depths) > 1 and depths[-1] / depths[0] >= 10
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
    pos = np.log10(depths) if log else np.array(depths)
    span = (pos[-1] - pos[0]) or 1.0
    labels, last = [], -np.inf
    for d, p in zip(depths, pos):
        keep = (p - last) / span >= 0.06
        labels.append(f"{d:g}" if keep else "")
        last = p if keep else last
    ax.set_xticks(depths)
    ax.set_xticklabels(labels)


@style()
def plot_final_error(table: pd.DataFrame, path: str | Path) -> Path:
    """Final training and test error vs depth, one line per architecture;
    error bars span the seeds (min to max)."""
    agg = aggregate(table)
    agg = agg[agg["final_train_error_n"] + agg["final_test_error_n"] > 0]
    if agg.empty:
        raise NothingToPlot("no completed run has a final error")
    variants = [v for v in _variants(table) if v[0] in set(agg["variant"])]
    colours = _arch_colours(variants)
    fig, axes = _panels(2)
    depths = sorted(agg["depth"].unique())
    for ax, col, what in zip(axes[0], ("final_train_error", "final_test_error"),
                             ("training", "test")):
        for variant, _arch in variants:
            g = agg[(agg["variant"] == variant) & (agg[f"{col}_n"] > 0)].sort_values("depth")
            if g.empty:
                continue
            mean = 100 * g[f"{col}_mean"].to_numpy()
            lo = mean - 100 * g[f"{col}_min"].to_numpy()
            hi = 100 * g[f"{col}_max"].to_numpy() - mean
            ax.errorbar(g["depth"], mean, yerr=[lo, hi], color=colours[variant], marker="o",
                        ms=5, lw=2, capsize=4, label=f"{variant}{_seed_note(int(g['n'].max()))}")
        ax.set_title(f"Final {what} error")
        ax.set_xlabel("depth (weighted layers)")
        ax.set_ylabel(f"{what} error (%)")
        _depth_axis(ax, depths)
        ax.set_ylim(bottom=0)
        ax.legend(loc="best")
    seeds = int(agg["n"].max())
    _suptitle(fig, "Final error vs depth" + (" (mean over seeds; bars: min to max)" if seeds > 1 else ""))
    return save_figure(fig, path)


def _profiles(table: pd.DataFrame, which: str, column: str = "grad_norm",
              ) -> dict[tuple[str, float], tuple[pd.Series, int]]:
    """(variant, depth) -> (geometric mean of `column` per position, runs averaged):
    grad_norm per main-path layer (gradflow.csv), or back_norm per block (activations.csv)."""
    read = gradflow_profile if column == "grad_norm" else (
        lambda run_dir, which: block_profile(run_dir, which, column))
    out = {}
    trained = table[table["status"].isin(TRAINED)]
    for (variant, depth), g in trained.groupby(["variant", "depth"], sort=False):
        logs = []
        for run_dir in g["run_dir"]:
            p = read(run_dir, which)
            v = p[column].astype(float)
            p = p[np.isfinite(v) & (v > 0)]
            if not p.empty:
                logs.append(np.log10(p.set_index("position")[column].astype(float)))
        if logs:
            out[(variant, depth)] = (10 ** pd.concat(logs, axis=1).mean(axis=1), len(logs))
    return out


def _plot_init_and_end(table: pd.DataFrame, path: str | Path, *, column: str, unit: str,
                       quantity: str, title: str, missing: str) -> Path:
    """One line per depth of `column` against position (1 = input side), log scale; one
    column of panels per architecture, top row at initialisation (step 0), bottom row
    at the last recorded step."""
    rows = {which: _profiles(table, which, column) for which in ("init", "end")}
    if not rows["init"] and not rows["end"]:
        raise NothingToPlot(missing)
    keys = set(rows["init"]) | set(rows["end"])
    variants = [v for v in _variants(table) if any(k[0] == v[0] for k in keys)]
    colours = _depth_colours(k[1] for k in keys)
    fig, axes = _panels(len(variants), rows=2, height=3.6)
    for r, (which, when) in enumerate((("init", "at init (step 0)"),
                                       ("end", "at the end (last step)"))):
        for ax, (variant, _arch) in zip(axes[r], variants):
            for (v, depth), (prof, n) in sorted(rows[which].items(), key=lambda kv: kv[0][1]):
                if v != variant:
                    continue
                ax.plot(prof.index, prof.values, color=colours[depth], lw=1.8,
                        marker="." if len(prof) <= 60 else None,
                        label=f"depth {depth:g}{_seed_note(n)}")
            ax.set_yscale("log")
            if r == 0:
                ax.set_title(_title_of(variant))
            ax.set_xlabel(f"{unit} (1 = input side)")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_ylabel(f"{quantity} {when}\n(L2, log scale)")
            if ax.has_data():
                ax.legend(loc="best")
            else:
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="0.5")
    for r in range(2):  # one y range per row, so panels compare at a glance
        lims = [ax.get_ylim() for ax in axes[r] if ax.has_data()]
        if lims:
            lo, hi = min(lo for lo, _ in lims), max(hi for _, hi in lims)
            for ax in axes[r]:
                ax.set_ylim(lo, hi)
                if hi / lo > 100:  # label decades only: readable (and quick to draw)
                    ax.yaxis.set_minor_formatter(NullFormatter())
    _suptitle(fig, title, y=1.0)
    fig.subplots_adjust(hspace=0.35, wspace=0.3)
    return save_figure(fig, path)


@style()
def plot_gradflow_layers(table: pd.DataFrame, path: str | Path) -> Path:
    """Gradient norm vs layer (1 = input side), log scale, one line per depth; one column
    per architecture, top row at initialisation (step 0), bottom row at the last
    recorded step."""
    return _plot_init_and_end(
        table, path, column="grad_norm", unit="layer", quantity="gradient norm",
        title="Gradient norm per main-path layer at initialisation (top) and at the end "
              "(bottom), one line per depth",
        missing="no completed or running run has a gradflow.csv")


@style()
def plot_back_norm_blocks(table: pd.DataFrame, path: str | Path) -> Path:
    """The backward signal ||dL/dh_b|| (L2 norm of the loss gradient at block b's output)
    vs block (1 = input side), log scale, one line per depth; one column per
    architecture, top row at initialisation, bottom row at the last recorded step."""
    return _plot_init_and_end(
        table, path, column="back_norm", unit="block", quantity="||dL/dh||",
        title="Backward signal at each block's output, ||dL/dh||, at initialisation (top) "
              "and at the end (bottom)",
        missing="no completed or running run has a backward signal (back_norm) in its "
                "activations.csv")


@style()
def plot_grad_ratio_over_training(table: pd.DataFrame, path: str | Path) -> Path:
    """log10(first / last main-path layer gradient norm) vs training step, one line per
    depth, one panel per architecture; seeds averaged on their common steps. Diverged
    runs are drawn up to their last finite record and end in a cross: where the
    gradients blew up is part of the finding."""
    runs = table[table["status"].isin((*TRAINED, "diverged"))]
    series: dict[tuple[str, float], list[pd.Series]] = {}
    diverged: set[tuple[str, float]] = set()
    for _, r in runs.iterrows():
        s = grad_ratio_series(r["run_dir"])
        if not s.empty:
            key = (r["variant"], r["depth"])
            series.setdefault(key, []).append(s.set_index("step")["log10_ratio"])
            if r["status"] == "diverged":
                diverged.add(key)
    if not series:
        raise NothingToPlot("no run has a gradflow.csv with finite first and last gradient norms")
    variants = [v for v in _variants(table) if any(k[0] == v[0] for k in series)]
    colours = _depth_colours(k[1] for k in series)
    fig, axes = _panels(len(variants), height=3.8)
    for ax, (variant, _arch) in zip(axes[0], variants):
        for (v, depth), parts in sorted(series.items(), key=lambda kv: kv[0][1]):
            if v != variant:
                continue
            mean = pd.concat(parts, axis=1).mean(axis=1).dropna()
            gone = (v, depth) in diverged
            ax.plot(mean.index, mean.values, color=colours[depth], lw=1.6,
                    label=f"depth {depth:g}{_seed_note(len(parts))}"
                          + (" (diverged)" if gone else ""))
            if gone:
                ax.plot(mean.index[-1:], mean.values[-1:], "x", color=colours[depth], ms=9, mew=2)
        ax.axhline(0, color="0.4", lw=0.8, ls=":")
        ax.set_title(_title_of(variant))
        ax.set_xlabel("training step")
        ax.set_ylabel("log10(first / last layer\ngradient norm)")
        ax.legend(loc="best")
    lims = [ax.get_ylim() for ax in axes[0]]
    for ax in axes[0]:  # one y range, so panels compare at a glance
        ax.set_ylim(min(lo for lo, _ in lims), max(hi for _, hi in lims))
    _suptitle(fig, "Gradient reaching the first layer relative to the last, over training "
                 "(0 = equal; below 0 = vanishing towards the input)")
    fig.subplots_adjust(wspace=0.3)
    return save_figure(fig, path)


def _edges(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return np.array([values[0] - 0.5, values[0] + 0.5])
    mid = (values[1:] + values[:-1]) / 2
    return np.concatenate([[values[0] - (mid[0] - values[0])], mid,
                           [values[-1] + (values[-1] - mid[-1])]])


def log10_norms(grad_norms) -> np.ndarray:
    """log10 of gradient norms as floats; NaN where a norm is zero, negative or not finite."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.asarray(grad_norms, dtype=float))
    logs[~np.isfinite(logs)] = np.nan
    return logs


def heatmap_figure(steps: Sequence[float], grad_norms, *, title: str,
                   rows: Sequence[float] | None = None, row_labels: Sequence[str] | None = None,
                   max_row_labels: int = 40, figsize: tuple[float, float] | None = None,
                   dpi: float | None = None, layout: str | None = None) -> Figure:
    """THE gradient heatmap: log10 gradient norm of each layer (y, input side at the bottom)
    at each recorded step (x); cells whose norm is zero or not finite are left blank.

    grad_norms: layers x steps, rows in depth order (row 0 = the input side). rows:
    the y value of each row (default 1, 2, ...); row_labels: names written on the y
    axis instead of numbers (at most max_row_labels, evenly spaced). Call inside
    style(); save with save_figure or draw with figure_pixels.
    """
    logs = log10_norms(grad_norms)
    steps = np.asarray(steps, dtype=float)
    rows = np.arange(1, len(logs) + 1, dtype=float) if rows is None else np.asarray(rows, float)
    if figsize is None:
        figsize = (8.5, max(3.6, min(9.0, 2.0 + 0.06 * len(rows))))
    fig, ax = subplots(figsize=figsize, dpi=dpi, layout=layout)
    mesh = ax.pcolormesh(_edges(steps), _edges(rows), np.ma.masked_invalid(logs),
                         cmap="viridis", shading="flat")
    if np.isfinite(logs).any():
        bar = fig.colorbar(mesh, ax=ax, pad=0.02)
        bar.set_label("log10 gradient norm (L2)")
    if row_labels is not None:
        every = max(1, math.ceil(len(rows) / max_row_labels))
        ax.set_yticks(rows[::every])
        ax.set_yticklabels(list(row_labels)[::every], fontsize=7)
    ax.set_xlabel("training step")
    ax.set_ylabel("layer (1 = input side)")
    ax.grid(False)
    ax.set_title(title)
    return fig


@style()
def plot_gradflow_heatmap(run_dir: str | Path, path: str | Path, *, name: str | None = None) -> Path:
    """log10 gradient norm of every main-path layer (y, 1 = input side) at every recorded
    step (x) of one run."""
    frame = gradflow(run_dir)
    if frame is None:
        raise NothingToPlot(f"{run_dir} has no gradflow.csv")
    grid = frame.pivot_table(index="position", columns="step", values="grad_norm", aggfunc="last")
    if np.isnan(log10_norms(grid.to_numpy(dtype=float))).all():
        raise NothingToPlot(f"{run_dir}: no finite gradient norm in gradflow.csv")
    steps, layers = grid.columns.to_numpy(dtype=float), grid.index.to_numpy(dtype=float)
    label = name or Path(run_dir).name
    fig = heatmap_figure(steps, grid.to_numpy(dtype=float), rows=layers,
                         title=f"Gradient norm per layer over training: {label} "
                               f"({len(layers)} layers, {len(steps)} recorded steps)")
    return save_figure(fig, path)


@style()
def gradflow_heatmap_pixels(steps: Sequence[float], grad_norms, *, title: str,
                            row_labels: Sequence[str] | None = None, max_row_labels: int = 40,
                            figsize: tuple[float, float] | None = None,
                            dpi: float = 100) -> np.ndarray:
    """The heatmap of `heatmap_figure` as an RGB uint8 array (for W&B): a fixed size for a
    given figsize and dpi whatever the numbers, laid out to fit (constrained layout)."""
    fig = heatmap_figure(steps, grad_norms, title=title, row_labels=row_labels,
                         max_row_labels=max_row_labels, figsize=figsize, dpi=dpi,
                         layout="constrained")
    return figure_pixels(fig)
