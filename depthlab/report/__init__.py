"""A report from run directories: composes depthlab.analysis (the numbers and verdicts)
and depthlab.plots (the figures) into files.

    table, warnings = depthlab.analysis.load_runs(["runs/my-sweep"])
    write_report(table, "results/my-sweep", title="Plain vs residual", warnings=warnings)
    # -> summary.csv, report.md, report.html (figures embedded) and the figures' PNGs

    figures      which figures a report has (FIGURES), the heatmap's run, drawing them
    summary_csv  summary.csv: the run table with blanks filled from config.yaml
    write        report.md and report.html

Imports run one way: report -> plots -> analysis.
"""

from __future__ import annotations

from .figures import FIGURES, choose_heatmap_run, make_figures
from .summary_csv import CONFIG_KEYS, INTEGER_COLUMNS, summary_csv_table
from .write import write_report

__all__ = ["CONFIG_KEYS", "FIGURES", "INTEGER_COLUMNS", "choose_heatmap_run", "make_figures",
           "summary_csv_table", "write_report"]
