"""The run table summarised: one row per (variant, depth), and the tables people read.

    aggregate(table)        # seeds, statuses, mean/std/min/max per (variant, depth)
    comparison_rows(table)  # the side-by-side table as strings (COMPARISON_HEADERS)
    run_rows(table)         # one row per run as strings (RUN_HEADERS)
    markdown_table(headers, rows)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import pandas as pd

from depthlab.rundir import STATUSES

from .runs import ARCH_ORDER, setting_value

# Per (architecture, depth) statistics: errors are fractions, ratios log10.
STAT_COLUMNS = ["final_train_error", "final_test_error", "best_test_error",
                "log10_grad_ratio_init", "log10_grad_ratio"]


# --------------------------------------------------------------------------- aggregation


def status_counts(statuses: Iterable[str]) -> str:
    """How many runs of each status, e.g. "2 completed, 1 diverged" (one run: "completed")."""
    counts = pd.Series(list(statuses)).value_counts()
    order = sorted(counts.index, key=lambda s: (STATUSES.index(s) if s in STATUSES else 99, s))
    if len(order) == 1:
        return order[0] if counts[order[0]] == 1 else f"{counts[order[0]]} {order[0]}"
    return ", ".join(f"{counts[s]} {s}" for s in order)


def _first(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.iloc[0]) if len(values) else math.nan


def aggregate(table: pd.DataFrame, *, statuses: Sequence[str] = ("completed",)) -> pd.DataFrame:
    """One row per (variant, depth): seeds, statuses and statistics over the completed runs.

    Columns: arch, variant, settings, depth, runs (all runs), n (runs counted:
    status in `statuses`), seeds, statuses ("2 completed, 1 diverged"), params,
    flops, and for each of final_train_error, final_test_error,
    best_test_error, log10_grad_ratio_init, log10_grad_ratio: _mean, _std
    (sample std, ddof=1; NaN for one run), _min, _max.
    """
    rows = []
    for (variant, depth), g in table.groupby(["variant", "depth"], sort=False):
        ok = g[g["status"].isin(statuses)]
        row: dict[str, Any] = {
            "arch": g["arch"].iloc[0], "variant": variant, "settings": g["settings"].iloc[0],
            "depth": depth, "runs": len(g), "n": len(ok),
            "seeds": ",".join(setting_value(s) for s in ok["seed"]),
            "statuses": status_counts(g["status"]),
            "params": _first(g["params"]), "flops": _first(g["flops"]),
        }
        for col in STAT_COLUMNS:
            v = ok[col].dropna().astype(float)
            row[f"{col}_mean"] = float(v.mean()) if len(v) else math.nan
            row[f"{col}_std"] = float(v.std(ddof=1)) if len(v) > 1 else math.nan
            row[f"{col}_min"] = float(v.min()) if len(v) else math.nan
            row[f"{col}_max"] = float(v.max()) if len(v) else math.nan
            row[f"{col}_n"] = len(v)
        rows.append(row)
    return pd.DataFrame(rows)


def counted(table: pd.DataFrame) -> pd.DataFrame:
    """The runs the verdicts use: completed ones."""
    return table[table["status"] == "completed"]


# --------------------------------------------------------------------------- tables for people


COMPARISON_HEADERS = ["depth", "architecture", "params (M)", "FLOPs", "train error %",
                      "test error %", "log10 grad ratio init", "log10 grad ratio end", "status"]


def format_flops(flops: float) -> str:
    if flops != flops:
        return "-"
    return f"{flops / 1e9:.2f}G" if flops >= 1e9 else f"{flops / 1e6:.1f}M"


def _fixed(x: float, digits: int) -> str:
    """f"{x:.{digits}f}" without a minus sign on a value that rounds to zero."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _stat(row: pd.Series, col: str, scale: float, digits: int, sep: str) -> str:
    mean, std, n = row[f"{col}_mean"], row[f"{col}_std"], row[f"{col}_n"]
    if mean != mean:
        return "-"
    text = _fixed(scale * mean, digits)
    if n > 1:
        text += f"{sep}{_fixed(scale * std, digits)}"
    return text


def comparison_rows(table: pd.DataFrame, *, compact: bool = False) -> list[list[str]]:
    """The side-by-side table as strings (COMPARISON_HEADERS), one row per (variant, depth),
    sorted by depth then architecture.

    Errors are final errors in % and gradient ratios log10(first / last
    main-path layer gradient norm), as mean ± sample std over the completed
    seeds; the status column counts the runs ("2 completed, 1 diverged").
    Params in millions, FLOPs per image (forward, multiply-add = 2).
    compact: "9.8±0.3" and ratios to one decimal (for an 80-column terminal).
    """
    agg = aggregate(table)
    if agg.empty:
        return []
    order = agg["arch"].map(lambda a: (ARCH_ORDER.get(a, len(ARCH_ORDER)), a))
    agg = agg.assign(_o=order).sort_values(["depth", "_o", "settings"], kind="stable")
    sep, rdigits = ("±", 1) if compact else (" ± ", 2)
    rows = []
    for _, r in agg.iterrows():
        rows.append([
            f"{r['depth']:g}", r["variant"],
            "-" if r["params"] != r["params"] else f"{r['params'] / 1e6:.2f}",
            format_flops(r["flops"]),
            _stat(r, "final_train_error", 100, 1, sep), _stat(r, "final_test_error", 100, 1, sep),
            _stat(r, "log10_grad_ratio_init", 1, rdigits, sep),
            _stat(r, "log10_grad_ratio", 1, rdigits, sep),
            r["statuses"],
        ])
    return rows


RUN_HEADERS = ["run", "status", "train error %", "test error %", "best test %", "epochs",
               "log10 ratio init", "log10 ratio end", "wall time", "run directory"]


def _num(x: Any, digits: int, scale: float = 1.0) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "-"
    return "-" if x != x else _fixed(scale * x, digits)


def format_duration(seconds: Any) -> str:
    """Seconds for people: "45 s", "3.2 min", "1.5 h"; "-" when unknown."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "-"
    if s != s:
        return "-"
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")


def run_rows(table: pd.DataFrame) -> list[list[str]]:
    """One row per run, as strings (the per-run table of the report)."""
    rows = []
    for _, r in table.iterrows():
        epochs = "-" if r["epochs_completed"] != r["epochs_completed"] else (
            f"{r['epochs_completed']:g}/{r['epochs']:g}" if r["epochs"] == r["epochs"]
            else f"{r['epochs_completed']:g}")
        status = r["status"]
        if status == "failed" and isinstance(r.get("error"), str) and r["error"]:
            status = f"failed: {r['error']}"
        rows.append([r["name"] if r["variant"] == r["arch"] else f"{r['name']} ({r['settings']})",
                     status,
                     _num(r["final_train_error"], 2, 100), _num(r["final_test_error"], 2, 100),
                     _num(r["best_test_error"], 2, 100), epochs,
                     _num(r["log10_grad_ratio_init"], 2), _num(r["log10_grad_ratio"], 2),
                     format_duration(r["wall_seconds"]), str(r["run_dir"])])
    return rows


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(x: Any) -> str:
        return " ".join(str(x).split()).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)
