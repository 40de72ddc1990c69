"""What a probe's summary says, in words: one sentence per (architecture, norm)."""

from __future__ import annotations

import math

import pandas as pd


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
    branches = summary["branch"] if "branch" in summary else ["standard"] * len(summary)
    s = summary.assign(variant=[_variant(a, sc, multi) + ("" if b == "standard" else f" {b}")
                                for a, sc, b in zip(summary.arch, summary.shortcut, branches)])
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
            zero = all("zero-initialised classifier" in str(r.note) for r in bad.itertuples())
            text += ("; no ratio (a zero gradient, by construction) at depth " if zero
                     else "; outside float32's range at depth ") + ", ".join(
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
