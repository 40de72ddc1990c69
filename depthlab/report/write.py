"""report.md and report.html: the run table, verdicts and figures in one document each.

    write_report(table, "results/x", title="Plain vs residual", commands=[...])
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

import pandas as pd

from depthlab.analysis import (
    COMPARISON_HEADERS,
    RUN_HEADERS,
    SETTINGS,
    SKIP_PATH_SETTINGS,
    aggregate,
    comparison_rows,
    format_duration,
    markdown_table,
    run_rows,
    setting_value,
    status_counts,
    verdicts,
)
from depthlab.rundir import atomic_write

from .figures import FIGURES, make_figures
from .summary_csv import summary_csv_table


def _machine_line(table: pd.DataFrame) -> str:
    def unique(col: str) -> list[str]:
        if col not in table:
            return []
        return [str(v) for v in dict.fromkeys(table[col].dropna()) if str(v)]

    machines, devices = unique("machine"), unique("device")
    parts = []
    if machines:
        parts.append("; ".join(machines))
    if devices:
        parts.append(f"device {', '.join(devices)}")
    return ", ".join(parts) if parts else "not recorded in the runs' summaries"


def _settings_line(table: pd.DataFrame) -> str:
    """The settings every run that started shares, e.g. "layout=cifar, norm=batch"."""
    started = table[table["status"] != "failed"]
    same = []
    for col in SETTINGS:
        if col in started and col not in SKIP_PATH_SETTINGS:
            values = started[col].map(setting_value).unique()
            if len(values) == 1 and values[0] != "none":
                same.append(f"{col}={values[0]}")
    return ", ".join(same)


def _run_time(table: pd.DataFrame) -> str:
    """Training time summed over the runs, and the longest run (their own wall_seconds)."""
    seconds = pd.to_numeric(table.get("wall_seconds"), errors="coerce").dropna()
    if seconds.empty:
        return "not recorded"
    return (f"{format_duration(seconds.sum())} of training summed over {len(seconds)} runs "
            f"(longest run {format_duration(seconds.max())}; wall time of one run after another)")


def write_report(table: pd.DataFrame, out_dir: str | Path, *, title: str,
                 commands: Sequence[str] | None = None, machine: str | None = None,
                 heatmap_run: str | None = None,
                 warnings: Sequence[str] | None = None,
                 about: Sequence[str] | None = None) -> dict[str, Path]:
    """Write summary.csv, report.md, report.html and the figures into `out_dir`.

    report.md: title, `about` (paragraphs of context the caller gives: what data,
    what it reproduces), machine, run time, command(s), settings, the comparison table,
    verdicts, figures (by relative path), the per-run table and any warnings;
    report.html holds the same with the figures embedded (base64 PNG), so it
    is one self-contained file. Every file is written to a temp file and
    renamed. `machine` defaults to what the runs' summaries recorded.
    Returns {"summary": ..., "markdown": ..., "html": ..., <figure key>: ...}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = list(warnings or [])
    figures = make_figures(table, out_dir, heatmap_run=heatmap_run, notes=notes)
    found = verdicts(table)
    machine = machine or _machine_line(table)
    agg = aggregate(table)
    seeds = sorted(set(int(n) for n in agg["n"] if n > 0)) if not agg.empty else []
    seeds_text = ("none" if not seeds else f"{seeds[0]}" if len(seeds) == 1
                  else f"{seeds[0]} to {seeds[-1]}")
    meta = [("Machine", machine),
            ("Runs", f"{len(table)} ({status_counts(table['status'])}); completed seeds per "
                     f"architecture and depth: {seeds_text}"),
            ("Run time", _run_time(table)),
            ("Settings", _settings_line(table) or "see the per-run table")]
    cmds = list(commands or [])

    paths: dict[str, Path] = {}
    summary_path = out_dir / "summary.csv"
    atomic_write(summary_path, summary_csv_table(table).to_csv(index=False))
    paths["summary"] = summary_path

    comp = comparison_rows(table)
    legend = ("Errors: final training / test error in %, mean ± sample std over completed seeds. "
              "Grad ratio: log10 of the first main-path layer's gradient norm over the last "
              "layer's, at step 0 (init) and at the last recorded step (end). FLOPs: forward, "
              "per image, multiply-add = 2.")

    about = list(about or [])
    md = [f"# {title}", ""]
    md += [x for paragraph in about for x in (paragraph, "")]
    md += [f"- **{k}:** {v}" for k, v in meta]
    if cmds:
        md += ["- **Command:**", "", "```", *cmds, "```"]
    md += ["", "## Comparison", "", markdown_table(COMPARISON_HEADERS, comp), "", legend, "",
           "## Verdicts", ""]
    md += [f"- {v.text}" for v in found]
    md += ["", "## Figures", ""]
    for key, path in figures.items():
        md += [f"![{FIGURES[key][1]}]({path.name})", "", f"*{FIGURES[key][1]}.*", ""]
    md += ["## Runs", "", markdown_table(RUN_HEADERS, run_rows(table)), ""]
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    md_path = out_dir / "report.md"
    atomic_write(md_path, "\n".join(md))
    paths["markdown"] = md_path

    e = html.escape

    def html_table(headers, rows) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in row) + "</tr>"
                       for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    imgs = []
    for key, path in figures.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        imgs.append(f'<figure><img alt="{e(FIGURES[key][1])}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(FIGURES[key][1])}</figcaption></figure>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 80rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }}
th {{ background: #f3f3f3; }} td:nth-child(2) {{ text-align: left; }}
pre {{ background: #f6f6f6; padding: 0.6rem; overflow-x: auto; }}
img {{ max-width: 100%; }} figure {{ margin: 1.5rem 0; }} figcaption {{ font-style: italic; }}
</style></head><body>
<h1>{e(title)}</h1>
{''.join(f"<p>{e(p)}</p>" for p in about)}
<ul>{''.join(f'<li><b>{e(k)}:</b> {e(v)}</li>' for k, v in meta)}</ul>
{f"<p><b>Command:</b></p><pre>{e(chr(10).join(cmds))}</pre>" if cmds else ""}
<h2>Comparison</h2>
{html_table(COMPARISON_HEADERS, comp)}
<p>{e(legend)}</p>
<h2>Verdicts</h2>
<ul>{''.join(f'<li>{e(v.text)}</li>' for v in found)}</ul>
<h2>Figures</h2>
{''.join(imgs)}
<h2>Runs</h2>
{html_table(RUN_HEADERS, run_rows(table))}
{('<h2>Notes</h2><ul>' + ''.join(f'<li>{e(n)}</li>' for n in notes) + '</ul>') if notes else ''}
</body></html>
"""
    html_path = out_dir / "report.html"
    atomic_write(html_path, page)
    paths["html"] = html_path
    paths.update(figures)
    return paths
