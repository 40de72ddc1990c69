"""One row of a benchmark table: per-rep values to medians and a ratio, and the table they make."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

COLUMNS = ["benchmark", "depthlab", "baseline", "ratio (median)", "spread (min-max)", "target",
           "met", "reps"]


@dataclass
class Row:
    key: str  # stable id: "<benchmark>/<what>"
    bench: str  # the benchmark it belongs to (the key's first part)
    name: str  # what the table shows
    depthlab: float | None
    baseline: float | None
    unit: str  # of depthlab and baseline: "img/s", "ms/step", "MB"
    ratio: float | None  # median of the per-rep ratios
    spread: tuple[float, float] | None  # min, max of the per-rep ratios
    ratio_unit: str  # "x" or "%"
    target: str  # e.g. ">= 0.97x"
    met: bool | None  # None: skipped
    reps: int
    baseline_is: str = ""  # what the baseline column holds
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def compare(op: str, value: float | None, bound: float) -> bool | None:
    if value is None or not math.isfinite(value):
        return None
    return {">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]


def make_row(key: str, name: str, *, depthlab: list[float], baseline: list[float],
             ratios: list[float], unit: str, target: tuple[str, float], ratio_unit: str = "x",
             baseline_is: str = "", note: str = "", detail: dict[str, Any] | None = None) -> Row:
    """A row from per-rep values: medians of each side, median and min-max of the ratios."""
    op, bound = target
    ratio = statistics.median(ratios)
    shown = f"{100 * bound:g}%" if ratio_unit == "%" else f"{bound:g}x"
    return Row(
        key=key, bench=key.split("/")[0], name=name,
        depthlab=statistics.median(depthlab), baseline=statistics.median(baseline), unit=unit,
        ratio=ratio, spread=(min(ratios), max(ratios)), ratio_unit=ratio_unit,
        target=f"{op} {shown}", met=compare(op, ratio, bound), reps=len(ratios),
        baseline_is=baseline_is, note=note,
        detail={"per_rep": {"depthlab": depthlab, "baseline": baseline, "ratio": ratios},
                **(detail or {})},
    )


def ratio_row(key: str, name: str, got: dict[str, list[float]], a: str, b: str, *,
              target: tuple[str, float], baseline_is: str, detail: dict[str, Any],
              unit: str = "img/s", note: str = "") -> Row:
    """make_row of side `a` over side `b` of interleaved() results (rep by rep)."""
    ratios = [x / y for x, y in zip(got[a], got[b])]
    return make_row(key, name, depthlab=got[a], baseline=got[b], ratios=ratios, unit=unit,
                    target=target, baseline_is=baseline_is, note=note, detail=detail)


def skipped_row(key: str, name: str, why: str, target: str) -> Row:
    return Row(key=key, bench=key.split("/")[0], name=name, depthlab=None, baseline=None, unit="",
               ratio=None, spread=None, ratio_unit="x", target=target, met=None, reps=0,
               note=f"skipped: {why}")


def failed_row(key: str, name: str, err: BaseException) -> Row:
    """A skipped row that says why its measurement raised (one line, at most 300 characters)."""
    return skipped_row(key, name, f"failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}",
                       "-")


# --- formatting -----------------------------------------------------------------------------

def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "img/s":
        return f"{v:,.0f} img/s" if v >= 100 else f"{v:.1f} img/s"
    if unit == "ms/step":
        return f"{v:.2f} ms/step" if v < 100 else f"{v:,.0f} ms/step"
    if unit == "MB":
        return f"{v:,.0f} MB"
    return f"{v:g} {unit}"


def fmt_ratio(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "%":
        return f"{100 * v:.2f}%"
    return f"{v:.1f}x" if abs(v) >= 10 else f"{v:.3f}x" if abs(v) < 2 else f"{v:.2f}x"


def fmt_met(met: bool | None) -> str:
    return {True: "yes", False: "no", None: "skipped"}[met]


def table_cells(row: Row, with_baseline_is: bool = True) -> list[str]:
    spread = "-" if row.spread is None else (
        f"{fmt_ratio(row.spread[0], row.ratio_unit)} - {fmt_ratio(row.spread[1], row.ratio_unit)}")
    baseline = fmt_value(row.baseline, row.unit)
    if with_baseline_is and row.baseline_is and row.baseline is not None:
        baseline = f"{baseline} ({row.baseline_is})"
    return [row.name, fmt_value(row.depthlab, row.unit), baseline,
            fmt_ratio(row.ratio, row.ratio_unit), spread, row.target, fmt_met(row.met),
            str(row.reps)]


def markdown_rows(rows: list[Row]) -> str:
    """The markdown table of `rows` (COLUMNS), without the notes."""
    from depthlab.analysis import markdown_table

    return markdown_table(COLUMNS, [table_cells(row) for row in rows])


def notes(rows: list[Row]) -> list[str]:
    """One markdown list item per row that has a note."""
    return [f"- {row.name}: {row.note}" for row in rows if row.note]


def print_table(rows: list[Row], title: str = "depthlab benchmark") -> None:
    """The table on the terminal (rich), met in colour, then each row's note."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a pipe or a log file: room for the whole row
        console = Console(width=180)
    table = Table(title=title, show_lines=False)
    for c in COLUMNS:
        table.add_column(c, overflow="fold")
    for row in rows:
        cells = table_cells(row, with_baseline_is=False)
        style = {True: "green", False: "red", None: "yellow"}[row.met]
        cells[6] = f"[{style}]{cells[6]}[/{style}]"
        table.add_row(*cells)
    console.print(table)
    for row in rows:
        if row.note:
            console.print(f"{row.name}: {row.note}", markup=False)
