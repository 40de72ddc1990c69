"""`depthlab report`: table, verdicts and figures from run directories alone (no training).

`print_comparison`, `print_verdicts` and `build_report` are also what `sweep`
and `compare` call at their end. Nothing here imports torch.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Sequence

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from depthlab.cli.common import console, fail, out

STATUS_STYLE = {"diverged": "red", "failed": "red", "running": "yellow", "interrupted": "yellow"}


def print_comparison(table, *, title: str = "Comparison") -> None:
    """The side-by-side table (one row per architecture and depth) on stdout."""
    from depthlab.analysis import comparison_rows

    rows = comparison_rows(table, compact=True)
    grid = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                 padding=(0, 0),
                 caption="errors: final, in %; ratio: log10(gradient norm of the first / last "
                         "main-path layer); mean±std over completed seeds",
                 caption_justify="left")
    headers = ["depth", "arch", "params\n(M)", "FLOPs", "train\nerr %", "test\nerr %",
               "ratio\ninit", "ratio\nend", "status"]
    for i, h in enumerate(headers):
        grid.add_column(h, justify="left" if i in (1, 8) else "right", no_wrap=i != 8,
                        overflow="fold")
    for i, row in enumerate(rows):
        status = row[-1]
        style = next((s for k, s in STATUS_STYLE.items() if k in status), None)
        last_of_depth = i + 1 == len(rows) or rows[i + 1][0] != row[0]
        grid.add_row(*row[:-1], f"[{style}]{status}[/]" if style else status,
                     end_section=last_of_depth)
    out.print(grid)


def print_verdicts(verdicts: Sequence) -> None:
    """The verdicts in words, one bullet each (hanging indent), on stdout."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for v in verdicts:
        head, sep, rest = v.text.partition(": ")
        text = Text.assemble((head, "bold"), sep + rest) if sep else Text(v.text)
        grid.add_row("•", text)
    out.print(Text("Verdicts", style="bold"))
    out.print(grid)


def build_report(paths: Sequence[str | Path], *, out_dir: str | Path | None = None,
                 title: str | None = None, commands: Sequence[str] | None = None,
                 heatmap_run: str | None = None, machine: str | None = None,
                 about: Sequence[str] | None = None,
                 wandb_mode: str | None = None) -> dict[str, Path]:
    """Load the runs under `paths`, print the table and verdicts, write the report,
    then add the comparison to W&B as one run (see `report_to_wandb`).

    User errors (no such path, no runs, unknown --heatmap-run) end in `fail`
    before anything is written. Returns the paths written (see write_report).
    """
    from depthlab.analysis import load_runs, verdicts
    from depthlab.report import FIGURES, choose_heatmap_run, write_report

    paths = [Path(p) for p in paths]
    if not paths:
        fail("give at least one run or sweep directory, e.g. depthlab report runs/my-sweep")
    for p in paths:
        if not p.exists():
            fail(f"no such file or directory: {p}")
    table, warnings = load_runs(paths)
    if table.empty:
        skipped = f" ({len(warnings)} skipped as broken, see the warnings above)" if warnings else ""
        fail(f"no runs found under {', '.join(map(str, paths))}{skipped}: a run directory holds "
             "summary.json (or config.yaml and metrics_epochs.csv), as depthlab train and "
             "depthlab sweep write them, e.g. runs/<sweep>/<arch>-<depth>-s<seed>/")
    try:
        choose_heatmap_run(table, heatmap_run)
    except KeyError as err:
        fail(f"--heatmap-run: {err.args[0]}")
    if out_dir is None:
        out_dir = paths[0] if paths[0].is_dir() else paths[0].parent
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir} is a file; give a directory for report.md and the figures")
    title = title or f"depthlab report: {', '.join(map(str, paths))}"
    print_comparison(table, title=title)
    print_verdicts(verdicts(table))
    try:
        written = write_report(table, out_dir, title=title, commands=commands,
                               machine=machine, heatmap_run=heatmap_run,
                               warnings=warnings, about=about)
    except OSError as err:
        fail(f"cannot write the report into {out_dir}: {err}", code=1)
    figures = [k for k in FIGURES if k in written]
    console.print(f"report: {written['markdown']} and {written['html'].name}, "
                  f"{written['summary'].name}, {len(figures)} figures in {out_dir}",
                  highlight=False)
    from depthlab.report.figures import OPTIONAL

    left_out = [FIGURES[k][0] for k in FIGURES if k not in written and k not in OPTIONAL]
    if left_out:
        console.print(f"left out (no data for them, see report.md): {', '.join(left_out)}",
                      highlight=False)
    # the report run's W&B files go beside the runs' (not into --out, e.g. results/)
    runs_root = Path(os.path.commonpath([str(Path(d).resolve()) for d in table["run_dir"]]))
    if len(table) == 1:
        runs_root = runs_root.parent
    report_to_wandb(table, written, title=title, commands=commands, root=runs_root,
                    mode=wandb_mode)
    return written


def report_to_wandb(table, written: dict[str, Path], *, title: str,
                    commands: Sequence[str] | None, root: Path, mode: str | None = None) -> None:
    """One W&B run (job type "report") in the runs' group with the comparison table, the
    verdicts and the figures, made the way the runs logged (their logger.wandb: mode auto
    by default, nothing after logger=none) unless `mode` says otherwise; re-reporting the
    same runs resumes the same report run. W&B trouble is one warning line: the report
    files are written already."""
    import yaml

    from depthlab.analysis import COMPARISON_HEADERS, comparison_rows, verdicts
    from depthlab.report import FIGURES
    from depthlab.rundir import CONFIG
    from depthlab.tracking.safe import one_line
    from depthlab.tracking.wandb_report import log_report_run, report_settings

    configs = []
    for run_dir in table["run_dir"]:
        try:
            configs.append(yaml.safe_load((Path(run_dir) / CONFIG).read_text()))
        except (OSError, yaml.YAMLError):  # a run that never started: no config, no logger
            continue
    try:
        settings = report_settings(configs, mode)
    except ValueError as err:  # a WANDB_MODE that W&B would not take
        console.print(f"[yellow]warning:[/] W&B report run not written: {err} "
                      "(the report files are unaffected)", highlight=False, soft_wrap=True)
        return
    if settings is None:
        return
    groups = [g for g in dict.fromkeys(table["group"]) if isinstance(g, str) and g]
    group = groups[0] if len(groups) == 1 else "report"  # runs of several sweeps: a group of its own
    try:
        sync_dir = log_report_run(
            settings, group=group, root=root, columns=COMPARISON_HEADERS,
            rows=comparison_rows(table),
            verdicts=[(v.kind, v.holds, v.text, v.subject) for v in verdicts(table)],
            figures={k: written[k] for k in FIGURES if k in written}, title=title,
            config={"title": title, "commands": list(commands or []),
                    "runs": [str(n) for n in table["name"]],
                    "run_dirs": [str(d) for d in table["run_dir"]]})
    except Exception as err:  # noqa: BLE001 - W&B is extra; never fail a written report
        console.print(f"[yellow]warning:[/] W&B report run not written: {one_line(err)} "
                      "(the report files are unaffected)", highlight=False, soft_wrap=True)
        return
    where = (f"; upload with: wandb sync {sync_dir}" if settings.mode == "offline" else "")
    console.print(f"W&B: report run ({settings.mode}) in group {group}{where}", highlight=False,
                  soft_wrap=True)


def report(
    paths: list[Path] = typer.Argument(
        ..., metavar="PATH...", help="Run directories, or directories above them (a sweep, runs/)."),
    out_dir: Path = typer.Option(
        None, "--out", help="Where to write the report (default: the first PATH)."),
    title: str = typer.Option(None, "--title", help="Title of report.md / report.html."),
    heatmap_run: str = typer.Option(None, "--heatmap-run", metavar="NAME",
                                    help="Run for the gradient heatmap, e.g. plain-56-s0 "
                                         "(default: the deepest plain run)."),
    made_by: list[str] = typer.Option(None, "--command", metavar="TEXT",
                                      help="The command that made these runs, written into "
                                           "report.md above the report command (repeatable)."),
    notes: list[str] = typer.Option(None, "--note", metavar="TEXT",
                                    help="A paragraph of context at the top of report.md, e.g. "
                                         "what data the runs saw (repeatable)."),
    wandb_mode: str = typer.Option(None, "--wandb", metavar="MODE",
                                   help="offline, online or disabled: how to add the comparison "
                                        "to W&B as a run of job type report (default: as the "
                                        "runs logged, their logger.wandb.mode)."),
) -> None:
    """Rebuild the comparison table, verdicts and figures from run directories alone (no training).

    depthlab report runs/sweep-depth20,56

    depthlab report runs/a runs/b --out results/degradation --title "Plain vs residual, CIFAR-10"

    depthlab report runs/sweep-depth20,56 --heatmap-run plain-56-s0

    depthlab report runs/cifar10-degradation --out results/cifar10-degradation --command "depthlab compare plain residual experiment=cifar10_degradation seed=0,1 sweep.name=cifar10-degradation" --note "Real CIFAR-10, JPEG re-encoded."

    Works on runs made on another machine or a cluster: it reads only the run
    directories (summary.json, metrics_epochs.csv, gradflow.csv). Prints the
    side-by-side table and the verdicts (degradation, plain vs residual at
    equal depth, vanishing gradients) and writes report.md, a self-contained
    report.html, summary.csv (one row per run) and the figures (error curves,
    final error vs depth, gradient norm per layer, gradient heatmap) into --out.
    Broken runs are skipped with a warning; failed and diverged runs are listed
    and left out of the verdicts.

    W&B: the comparison also becomes one W&B run in the runs' group (job type
    report: the table as a wandb.Table, the verdicts in its notes and summary,
    the figures as images), logged as the runs logged (logger.wandb.mode auto by
    default: WANDB_MODE, else online where W&B finds an API key, else offline;
    none after logger=none; --wandb to choose). Reporting the same sweep again
    resumes its one report run (id in <sweep>/wandb_report.json) and replaces
    its table and verdicts. `depthlab dashboard --sync` uploads it with the
    runs and lays them all out in one workspace.
    """
    if wandb_mode is not None and wandb_mode not in ("offline", "online", "disabled"):
        fail(f"--wandb must be offline, online or disabled, got {wandb_mode!r}")
    command = ["depthlab", "report", *map(str, paths)]
    if out_dir is not None:
        command += ["--out", str(out_dir)]
    if title is not None:
        command += ["--title", title]
    if heatmap_run is not None:
        command += ["--heatmap-run", heatmap_run]
    for text in made_by or []:
        command += ["--command", text]
    for text in notes or []:
        command += ["--note", text]
    build_report(paths, out_dir=out_dir, title=title,
                 commands=[*(made_by or []), shlex.join(command)],
                 heatmap_run=heatmap_run, about=notes, wandb_mode=wandb_mode)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
