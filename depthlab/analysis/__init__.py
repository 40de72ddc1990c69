"""Run directories -> one table -> verdicts: does depth hurt, and do shortcuts fix it?

Reads only what a run leaves on disk (see `depthlab.rundir` for the format),
so it works on runs made yesterday, on another machine or by SLURM.
It never imports torch or matplotlib, and it draws and writes nothing: figures
are `depthlab.plots`, report.md / summary.csv are `depthlab.report`.

    table, warnings = load_runs(["runs/my-sweep"])   # one row per run
    aggregate(table)                                 # one row per (architecture, depth)
    verdicts(table)                                  # [Verdict(kind, holds, text), ...]

    runs         finding run directories, the run table, a run's files (csv readers,
                 per-layer gradient and per-block backward-signal profiles)
    aggregation  per (variant, depth) statistics; the tables people read
    groups       groups of runs compared: seeds' spread and sampling noise
    verdict      the verdicts and the rules they follow (see its docstring)
    numerics     does the precision change the science? fp32 against bf16 runs
"""

from __future__ import annotations

from .aggregation import (
    COMPARISON_HEADERS,
    RUN_HEADERS,
    STAT_COLUMNS,
    STATUSES,
    aggregate,
    comparison_rows,
    counted,
    format_duration,
    format_flops,
    markdown_table,
    run_rows,
    status_counts,
)
from .groups import CHANCE_MARGIN, MIN_DECADES, NOISE_SE
from .numerics import precision_verdicts
from .runs import (
    ARCH_ORDER,
    KNOWN_CLASSES,
    NUMERIC,
    RUN_FILES,
    SETTINGS,
    SKIP_PATH_SETTINGS,
    SUMMARY_KEYS,
    block_profile,
    epoch_metrics,
    find_runs,
    grad_ratio_series,
    gradflow,
    gradflow_profile,
    is_run_dir,
    load_runs,
    load_summary,
    load_table,
    read_csv,
    setting_value,
)
from .verdict import (
    SHARED_SETTINGS,
    Verdict,
    comparison_verdicts,
    degradation_verdicts,
    excluded_verdicts,
    vanishing_verdicts,
    verdicts,
)

__all__ = [
    "ARCH_ORDER", "CHANCE_MARGIN", "COMPARISON_HEADERS", "KNOWN_CLASSES", "MIN_DECADES",
    "NOISE_SE", "NUMERIC", "RUN_FILES", "RUN_HEADERS", "SETTINGS", "SHARED_SETTINGS",
    "SKIP_PATH_SETTINGS",
    "STATUSES", "STAT_COLUMNS", "SUMMARY_KEYS", "Verdict", "aggregate", "block_profile",
    "comparison_rows",
    "comparison_verdicts", "counted", "degradation_verdicts", "epoch_metrics",
    "excluded_verdicts", "find_runs", "precision_verdicts", "format_duration", "format_flops", "grad_ratio_series",
    "gradflow", "gradflow_profile", "is_run_dir", "load_runs", "load_summary", "load_table",
    "markdown_table", "read_csv", "run_rows", "setting_value", "status_counts",
    "vanishing_verdicts", "verdicts",
]
