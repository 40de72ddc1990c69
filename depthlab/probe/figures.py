"""The probe's four figures, from its tables.

Every use of depthlab.plots in the probe is in the first section below, imported only
when figures are made: the house style, the figure maker, the architecture colours and
the atomic save.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from depthlab.models import ARCHS, NORMS

from .measure import ProbeResult

# --------------------------------------------------------------------------- depthlab.plots
# The probe's only imports of depthlab.plots, made when figures are (not at import).


def _style():
    """The house style (depthlab.plots.style) for the figures made, drawn and saved inside."""
    from depthlab.plots import style

    return style()


def _styled(make):
    """A figure maker that runs inside _style(), entered at call time."""
    @functools.wraps(make)
    def styled(*args, **kwargs):
        with _style():
            return make(*args, **kwargs)

    return styled


def _subplots(*args, **kwargs):
    """(figure, axes), as pyplot.subplots, on a figure of its own (Agg canvas, not pyplot's)."""
    from depthlab.plots import subplots

    return subplots(*args, **kwargs)


def _arch_colours() -> dict[str, str]:
    from depthlab.plots import ARCH_COLOURS

    return ARCH_COLOURS


def _save(fig, path: Path) -> Path:
    from depthlab.plots import save_figure  # atomic write

    return save_figure(fig, path, dpi=120)


# --------------------------------------------------------------------------- figures

FIGURES = {
    "profile": ("gradflow_vs_position.png",
                "Gradient norm of each main-path layer vs its relative depth position"),
    "ratio": ("ratio_vs_depth.png", "First / last layer gradient-norm ratio vs depth"),
    "act": ("act_std_vs_depth.png", "Standard deviation of the last block's output vs depth"),
    "back": ("back_norm_vs_position.png",
             "Backward signal ||dL/dh|| at each block's output vs its relative position"),
}

SHORTCUT_COLOURS = {"A": "#1f77b4", "B": "#9467bd", "C": "#17becf"}
NORM_STYLE = {"batch": "-", "none": "--"}
NORM_WORDS = {"batch": "batch norm", "none": "no norm"}


BRANCH_COLOURS = {"skipinit": "#ff7f0e", "rezero": "#8c564b", "fixup": "#e377c2"}


def _fold_branch(frame: pd.DataFrame) -> pd.DataFrame:
    """A norm-free residual branch shown as its own architecture ("residual fixup")."""
    if "branch" not in frame:
        return frame
    branch = frame["branch"].fillna("standard")
    named = branch != "standard"
    return frame.assign(arch=frame["arch"].where(~named, frame["arch"] + " " + branch))


def _variants(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(arch, shortcut) pairs in display order."""
    pairs = frame[["arch", "shortcut"]].fillna("").drop_duplicates()
    order = {a: i for i, a in enumerate(ARCHS)}
    return sorted(((a, s) for a, s in pairs.itertuples(index=False)),
                  key=lambda p: (order.get(p[0], 9), p[1]))


def _variant_colour(arch: str, shortcut: str, multi: bool) -> str:
    arch_colours = _arch_colours()
    if " " in arch:  # a norm-free branch
        return BRANCH_COLOURS.get(arch.split(" ", 1)[1], "#7f7f7f")
    if arch == "residual" and multi:
        return SHORTCUT_COLOURS.get(shortcut, arch_colours["residual"])
    return arch_colours.get(arch, "#7f7f7f")


def _geomean(values: pd.Series) -> float:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else math.nan


def plot_profiles(layers: pd.DataFrame, path: Path, *, seeds: int) -> Path:
    """Gradient norm vs relative depth position (main-path layer index / depth), one line
    per depth, one panel per (architecture, shortcut) x norm, log scale; seeds averaged
    geometrically; non-finite or zero norms are left out of the line."""
    main = layers[layers.shortcut_layer == 0].copy()
    main["position"] = main.layer_index / main.depth
    note = f"geometric mean over {seeds} seeds" if seeds > 1 else "one seed"
    return _profile_panels(
        main, "grad_norm", path, xlabel="relative depth position (layer index / depth)",
        ylabel="gradient norm (L2, weights)",
        title=f"Gradient norm per layer at initialisation ({note}; 0 = input, 1 = output)")


def plot_back_profiles(blocks: pd.DataFrame, path: Path, *, seeds: int) -> Path:
    """The backward signal ||dL/dh_b|| at each block's output vs the block's relative
    position (block / blocks), as plot_profiles draws the weight gradients."""
    b = blocks.copy()
    keys = [k for k in ("arch", "depth", "norm", "shortcut", "branch", "seed") if k in b]
    count = b.groupby(keys, dropna=False)["block_index"]
    b["position"] = (b.block_index + 1) / count.transform("max").add(1)
    note = f"geometric mean over {seeds} seeds" if seeds > 1 else "one seed"
    return _profile_panels(
        b, "back_norm", path, xlabel="relative block position (block / blocks)",
        ylabel="||dL/dh|| at the block output (L2)",
        title=f"Backward signal per block at initialisation ({note}; 0 = input, 1 = output)")


@_styled
def _profile_panels(frame: pd.DataFrame, value: str, path: Path, *, xlabel: str, ylabel: str,
                    title: str) -> Path:
    """`value` vs `position`, one line per depth, one panel per (architecture, shortcut)
    x norm, log scale; seeds averaged geometrically."""
    from matplotlib import colormaps

    frame = _fold_branch(frame.copy())
    frame["shortcut"] = frame["shortcut"].fillna("")
    variants = _variants(frame)
    norms = [n for n in NORMS if n in set(frame.norm)]
    depths = sorted(frame.depth.unique())
    cmap = colormaps["viridis"]
    colour = {d: cmap(0.85 * i / max(1, len(depths) - 1)) for i, d in enumerate(depths)}
    fig, axes = _subplots(len(norms), len(variants), figsize=(4.6 * len(variants),
                             3.6 * len(norms)), squeeze=False)
    grouped = frame.groupby(["arch", "shortcut", "norm", "depth", "position"],
                            sort=True)[value].apply(_geomean).reset_index()
    multi = len([v for v in variants if v[0] == "residual"]) > 1
    for i, norm in enumerate(norms):
        for j, (arch, sc) in enumerate(variants):
            ax = axes[i][j]
            g = grouped[(grouped.arch == arch) & (grouped.shortcut == sc) & (grouped.norm == norm)]
            for depth in depths:
                d = g[(g.depth == depth) & np.isfinite(g[value])]
                if d.empty:
                    continue
                ax.plot(d.position, d[value], color=colour[depth], lw=1.4, label=f"depth {depth}")
            ax.set_yscale("log")
            name = f"{arch} (shortcut {sc})" if sc and multi else arch
            ax.set_title(f"{name}, {NORM_WORDS[norm]}")
            ax.set_xlim(0, 1)
            if i == len(norms) - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
            if ax.has_data():
                ax.legend(loc="best", fontsize=7.5)
            else:  # e.g. Fixup's zero gradients at step 0, or no such net (fixup with batch norm)
                ax.text(0.5, 0.5, "nothing to draw\n(no such net, or every value 0 / not finite)",
                        transform=ax.transAxes, ha="center", va="center", color="0.5")
    fig.suptitle(title, y=1.01)
    fig.tight_layout()
    return _save(fig, path)


@_styled
def _lines_vs_depth(summary: pd.DataFrame, path: Path, *, ratio: bool, seeds: int) -> Path:
    from matplotlib.ticker import NullLocator

    fig, ax = _subplots(figsize=(7.2, 4.6))
    s = _fold_branch(summary.copy())
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
        "back": plot_back_profiles(result.blocks, out / FIGURES["back"][0], seeds=seeds),
    }
