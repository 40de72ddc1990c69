"""`depthlab lesion`: delete one block at a time from trained nets (Veit et al. 2016)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from depthlab.cli.common import console, fail, out, step_progress


def print_lesion_table(table, name: str) -> None:
    t = table[table.run == name]
    orig = t[t.status == "original"].iloc[0]
    grid = Table(title=f"{name}: test error with one block deleted", title_justify="left",
                 box=box.SIMPLE_HEAD, pad_edge=False)
    for col, justify in (("#", "right"), ("deleted block", "left"), ("stage", "left"),
                         ("downsampling", "left"), ("test error %", "right"),
                         ("change (points)", "right")):
        grid.add_column(col, justify=justify, no_wrap=True)
    grid.add_row("-", "none (intact net)", "", "", f"{100 * orig.test_error:.2f}", "",
                 end_section=True)
    for r in t[t.status != "original"].itertuples():
        if r.status == "n/a":
            grid.add_row(str(r.block_index), r.block, r.stage, "yes" if r.downsampling else "",
                         Text("n/a", style="dim"), Text("changes shape", style="dim"))
            continue
        style = "bold" if r.downsampling else ""
        grid.add_row(str(r.block_index), r.block, r.stage, "yes" if r.downsampling else "",
                     Text(f"{100 * r.test_error:.2f}", style=style),
                     f"{100 * r.delta_error:+.2f}")
    out.print(grid)


def lesion(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR...",
                                          help="Trained run directories (config.yaml + checkpoint.pt)."),
    out_dir: Path = typer.Option(None, "--out", help="Where lesion.csv and lesion.png go "
                                                     "(default: the first RUN_DIR)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    batch_size: int = typer.Option(None, "--batch-size", min=1,
                                   help="Evaluation batch size (default: the run's "
                                        "trainer.eval_batch_size)."),
    test_subset: int = typer.Option(None, "--test-subset", min=1,
                                    help="Evaluate on a class-balanced subset of this many test "
                                         "images (default: the run's data.test_subset)."),
    data_root: str = typer.Option(None, "--data-root",
                                  help="Where the data set lives on this machine (default: the "
                                       "run's data.root)."),
) -> None:
    """Delete one block at a time from trained nets and measure the test error (Veit et al. 2016).

    For each block in turn, its residual branch is removed (the shortcut stays: x, the
    zero-padding or the projection) and the test set is evaluated; plain blocks become
    the identity where their input and output shapes agree (n/a where they change
    them). Prints a table per run and the verdict against the paper: deleting one
    block of a residual net barely hurts (except downsampling blocks), a plain net
    collapses to chance. Writes lesion.csv and lesion.png (residual and plain side by
    side when both are given) into --out.

      depthlab lesion runs/residual-56-s0

      depthlab lesion runs/sweep/residual-56-s0 runs/sweep/plain-56-s0 --out results/lesion

      depthlab lesion runs/residual-110-s0 --test-subset 2000 --device cuda
    """
    from depthlab.lesion import PAPER, LesionError, run_lesion

    with step_progress("lesion") as progress:
        tasks: dict[str, int] = {}

        def on_step(name, what, done, total):
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, description=f"{name}: {what}")

        problem, code = None, 2
        try:
            table, verdicts, paths, runs = run_lesion(
                run_dirs, out=out_dir, device=device, eval_batch_size=batch_size,
                test_subset=test_subset, data_root=data_root, on_step=on_step)
        except LesionError as err:
            problem = str(err)
        except OSError as err:
            problem, code = f"cannot write lesion.csv / lesion.png: {err}", 1
    if problem:  # after the progress bar is gone
        fail(problem, code=code)
    for run in runs:
        print_lesion_table(table, run.name)
        if run.recorded_test_error is not None:
            orig = table[(table.run == run.name) & (table.status == "original")].test_error.iloc[0]
            same = abs(orig - run.recorded_test_error) < 5e-4
            console.print(f"{run.name}: intact test error {100 * orig:.2f}% "
                          + ("(as the run recorded)" if same else
                             f"(the run recorded {100 * run.recorded_test_error:.2f}%: a "
                             "different test set or subset?)"),
                          highlight=False)
    out.print(Text("Verdict", style="bold"))
    out.print(Text("• " + PAPER))
    for _holds, text in verdicts:
        out.print(Text("• " + text))
    console.print(f"wrote {paths['csv']} and {paths['figure'].name}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("lesion")(lesion)
