"""The report's figures: which exist, which run the heatmap shows, and drawing them all.

    make_figures(table, "results/x")          # {"error_curves": Path, ...}
    choose_heatmap_run(table, "plain-56-s0")  # the run row, KeyError for an unknown name
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from depthlab import plots, rundir

FIGURES = {
    "error_curves": ("error_curves.png", "Training (dashed) and test (solid) error per epoch"),
    "final_error": ("final_error_vs_depth.png", "Final training and test error vs depth"),
    "gradflow_layers": ("gradflow_layers.png",
                        "Gradient norm per layer, at initialisation and at the end"),
    "gradflow_heatmap": ("gradflow_heatmap.png", "Gradient norm per layer over training"),
    "grad_ratio": ("grad_ratio_over_training.png",
                   "log10 gradient-norm ratio first / last layer over training"),
    "back_norm": ("back_norm_blocks.png",
                  "Backward signal ||dL/dh|| at each block's output, at initialisation and at the end"),
}
# Figures of series that older runs did not record: left out without a note when no run has them.
OPTIONAL = ("back_norm",)


def choose_heatmap_run(table: pd.DataFrame, name: str | None = None) -> pd.Series | None:
    """The run whose gradient heatmap the report shows.

    `name` matches a run's name (plain-56-s0), its directory's name or path.
    Default: the deepest completed plain run (lowest seed; else the deepest
    plain run of any status), else the same among all runs; only runs with a
    gradflow.csv. None when no run has one.
    Raises KeyError (with the valid names) for an unknown `name`.
    """
    if name is not None:
        hits = table[(table["name"] == name) | (table["run_dir"].map(lambda d: Path(d).name) == name)
                     | (table["run_dir"].map(lambda d: str(Path(d))) == str(Path(name)))]
        if hits.empty:
            raise KeyError(f"no run named {name!r}; runs: {', '.join(table['name'].astype(str))}")
        return hits.iloc[0]
    has = table[table["run_dir"].map(lambda d: (Path(d) / rundir.GRADFLOW).is_file())]
    if has.empty:
        return None
    plain = has[has["arch"] == "plain"]
    pool = plain if not plain.empty else has
    pool = pool.assign(_done=(pool["status"] != "completed").astype(int))
    pool = pool.sort_values(["_done", "depth", "seed"], ascending=[True, False, True],
                            na_position="last", kind="stable")
    return pool.iloc[0].drop("_done")


def make_figures(table: pd.DataFrame, out_dir: str | Path, *, heatmap_run: str | None = None,
                 notes: list[str] | None = None) -> dict[str, Path]:
    """Every figure of the report into `out_dir`; a figure with nothing to show is left out
    (and a note saying why appended to `notes`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = notes if notes is not None else []
    made: dict[str, Path] = {}
    jobs = {
        "error_curves": lambda p: plots.plot_error_curves(table, p),
        "final_error": lambda p: plots.plot_final_error(table, p),
        "gradflow_layers": lambda p: plots.plot_gradflow_layers(table, p),
        "grad_ratio": lambda p: plots.plot_grad_ratio_over_training(table, p),
        "back_norm": lambda p: plots.plot_back_norm_blocks(table, p),
    }
    run = choose_heatmap_run(table, heatmap_run)
    if run is not None:
        jobs["gradflow_heatmap"] = lambda p: plots.plot_gradflow_heatmap(run["run_dir"], p,
                                                                         name=str(run["name"]))
    else:
        notes.append("No gradient heatmap: no run has a gradflow.csv.")
    for key, job in jobs.items():
        filename, _ = FIGURES[key]
        try:
            made[key] = job(out_dir / filename)
        except plots.NothingToPlot as err:
            if key not in OPTIONAL:
                notes.append(f"No {filename}: {err}.")
    return made
