"""Finding run directories, loading them into one table, and reading a run's files.

Reads only what a run leaves on disk (see `depthlab.rundir` for the format):
summary.json gives one table row per run; metrics_epochs.csv and gradflow.csv are
read per run for the curves and gradient profiles.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from depthlab import rundir

log = logging.getLogger("depthlab")

SUMMARY_KEYS = [
    "name", "group", "arch", "depth", "layout", "norm", "shortcut", "seed", "params", "flops",
    "final_train_error", "final_test_error", "best_test_error", "epochs_completed", "epochs",
    "steps_completed", "diverged", "grad_ratio_first_last", "grad_ratio_first_last_init",
    "wall_seconds", "device", "status", "error", "data", "train_subset", "num_classes",
]
# Settings that train.run's summary does not hold, read from the run's config.yaml into
# the table: key -> its path in the config (None where the config has no such key).
# precision / channels_last: summary.json holds what `auto` resolved to; runs made before it
# recorded them fall back on their config (fp32, contiguous: the only path then).
CONFIG_SETTINGS = {"start": ("start", "name"), "branch": ("arch", "branch"),
                   "precision": ("trainer", "precision"), "channels_last": ("trainer", "channels_last"),
                   # the training error is counted over whole batches: its sampling noise needs it
                   "batch_size": ("trainer", "batch_size")}
NUMERIC = ["depth", "seed", "params", "flops", "final_train_error", "final_test_error",
           "best_test_error", "epochs_completed", "epochs", "steps_completed",
           "grad_ratio_first_last", "grad_ratio_first_last_init", "wall_seconds", "train_subset",
           "log10_grad_ratio_init", "log10_grad_ratio", "num_classes"]
# Classes of the data sets whose runs predate summary.json's num_classes.
KNOWN_CLASSES = {"cifar10": 10, "synthetic": 10, "imagenet": 1000}
ARCH_ORDER = {"plain": 0, "residual": 1, "dense": 2}
# Settings that make runs of one architecture different experiments, not seeds.
SETTINGS = ("start", "branch", "layout", "norm", "data", "train_subset", "epochs", "shortcut",
            "preact", "zero_init_residual", "precision", "channels_last")
# Settings of the skip path only: ignored for plain nets.
SKIP_PATH_SETTINGS = ("shortcut", "zero_init_residual", "branch")
# Settings another one already names: left out of a label that has the first
# (start=zero_init sets zero_init_residual=true).
IMPLIED = {"start": ("zero_init_residual",)}
# Settings named for every architecture once they differ anywhere in the table: plain nets
# trained with one start beside residual nets with three are "plain (start=warmup)".
TABLE_WIDE = ("start",)
# The files analysis reads: a path to one of them stands for its run directory.
RUN_FILES = (rundir.SUMMARY, rundir.CONFIG, rundir.METRICS_EPOCHS, rundir.GRADFLOW)


# --------------------------------------------------------------------------- finding and loading


def is_run_dir(path: Path) -> bool:
    """A run directory holds summary.json, or config.yaml and metrics_epochs.csv."""
    path = Path(path)
    return rundir.holds_run({name for name in (rundir.SUMMARY, rundir.CONFIG,
                                                rundir.METRICS_EPOCHS) if (path / name).is_file()})


def _find(paths: Iterable[str | Path], warnings: list[str]) -> list[Path]:
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        path = Path(path)
        if path.is_file() and path.name in RUN_FILES:
            path = path.parent
        if not path.is_dir():
            _warn(warnings, f"skipping {path}: no such directory")
            continue
        for root, dirs, files in os.walk(path):
            if rundir.holds_run(set(files)):
                key = Path(root).resolve()
                if key not in seen:
                    seen.add(key)
                    found.append(Path(root))
                dirs[:] = []  # a run holds no runs
            else:
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .hydra, .submitit
    return found


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run directory under `paths` (each may itself be a run directory), in path order."""
    return _find(paths, [])


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    log.warning(message)


def load_summary(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A run's summary.json as a dict, or (None, why it cannot be used) in one line."""
    if not (Path(run_dir) / rundir.SUMMARY).is_file():
        return None, ("no summary.json (the run never started, or its directory was copied "
                      "without it)")
    try:
        summary = rundir.read_summary(run_dir)
    except (OSError, UnicodeDecodeError) as err:
        return None, f"summary.json is unreadable ({err})"
    except json.JSONDecodeError as err:
        return None, f"summary.json is not valid JSON, half-written? ({err})"
    if not isinstance(summary, dict):
        return None, "summary.json does not hold a JSON object"
    missing = [k for k in ("arch", "depth") if summary.get(k) is None]
    if missing:
        return None, f"summary.json has no {' or '.join(missing)}"
    try:
        int(summary["depth"])
    except (TypeError, ValueError):
        return None, f"summary.json has a depth that is not a number ({summary['depth']!r})"
    return summary, None


def _config(run_dir: Path) -> dict[str, Any]:
    """The run's config.yaml as a dict ({} when it is missing or unreadable)."""
    import yaml

    try:
        cfg = yaml.safe_load((Path(run_dir) / rundir.CONFIG).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _select(cfg: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def _scalar(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def load_runs(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """The run table and one warning per run that was skipped or is missing files.

    Runs whose summary.json is missing or unreadable are skipped; runs missing
    metrics_epochs.csv or gradflow.csv stay in the table (their summary holds
    the numbers) and are left out of the figures that need those files.
    """
    warnings: list[str] = []
    rows = []
    for run_dir in _find(paths, warnings):
        summary, problem = load_summary(run_dir)
        if problem:
            _warn(warnings, f"skipping {run_dir}: {problem}")
            continue
        row = {k: _scalar(summary.get(k)) for k in SUMMARY_KEYS}
        row.update({k: _scalar(v) for k, v in summary.items() if k not in row})
        if any(row.get(k) is None for k in CONFIG_SETTINGS):
            cfg = _config(run_dir)
            for key, path in CONFIG_SETTINGS.items():
                if row.get(key) is None:
                    row[key] = _scalar(_select(cfg, path))
        if row.get("branch") is None and row.get("arch") in ("plain", "residual"):
            row["branch"] = "standard"  # runs made before arch.branch existed, and every plain net
        if row.get("name") is None:
            row["name"] = run_dir.name
        if row.get("status") is None:
            row["status"] = "failed" if row.get("error") else "running"
        row["run_dir"] = str(run_dir)
        rows.append(row)
        if row["status"] != "failed":
            missing = [f for f in (rundir.METRICS_EPOCHS, rundir.GRADFLOW)
                       if not (run_dir / f).is_file()]
            if missing:
                _warn(warnings, f"{run_dir}: no {' or '.join(missing)}; the run stays in the "
                                "table but is left out of the figures that need it")
    table = _to_table(rows)
    dupes = table[table.duplicated(["variant", "depth", "seed"], keep=False)]
    for (variant, depth, seed), g in dupes.groupby(["variant", "depth", "seed"], sort=False):
        _warn(warnings, f"{len(g)} runs of {variant}-{depth} with seed {seed:g} "
                        f"({', '.join(g.run_dir)}): all are counted, as if different seeds")
    return table, warnings


def load_table(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run: the summary keys, log10 gradient ratios, variant and run_dir."""
    return load_runs(paths)[0]


def _to_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = list(dict.fromkeys([*SUMMARY_KEYS, *CONFIG_SETTINGS, "log10_grad_ratio_init",
                                  "log10_grad_ratio", *(k for r in rows for k in r), "run_dir",
                                  "variant", "settings"]))
    table = pd.DataFrame(rows, columns=columns)
    for col in NUMERIC:
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    # from the ratios when present (a summary written before the log10 keys existed)
    for log_col, ratio_col in (("log10_grad_ratio_init", "grad_ratio_first_last_init"),
                               ("log10_grad_ratio", "grad_ratio_first_last")):
        from_ratio = table[ratio_col].map(rundir.log10_or_nan)
        table[log_col] = from_ratio.where(from_ratio.notna(), table[log_col]).astype(float)
    table["depth"] = table["depth"].astype(int)
    if table["seed"].notna().all():
        table["seed"] = table["seed"].astype(int)
    table["diverged"] = table["diverged"].map(lambda v: bool(v) if v is not None and v == v else False)
    table["arch"] = table["arch"].astype(str)
    table["status"] = table["status"].astype(str)
    _add_variants(table)
    if len(table):
        order = table["arch"].map(lambda a: (ARCH_ORDER.get(a, len(ARCH_ORDER)), a))
        table = (table.assign(_order=order)
                 .sort_values(["_order", "settings", "depth", "seed", "name"],
                              na_position="last", kind="stable")
                 .drop(columns="_order").reset_index(drop=True))
    return table


def setting_value(value: Any) -> str:
    """A setting as text: "none" for a missing one, 8.0 as "8"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _add_variants(table: pd.DataFrame) -> None:
    """variant = arch (+ the settings that differ between that architecture's runs).

    Which settings differ is judged on the runs that started: a run that failed
    early has a summary without them (shown as "?" if they differ elsewhere).
    """
    table["variant"] = table["arch"]
    table["settings"] = ""
    everywhere = table[table["status"] != "failed"]
    wide = {k for k in TABLE_WIDE if k in table
            and everywhere[k].map(setting_value).nunique() > 1}
    for arch, g in table.groupby("arch", sort=False):
        started = g[g["status"] != "failed"]
        started = started if len(started) else g
        keys = [k for k in SETTINGS if k in table
                and not (arch == "plain" and k in SKIP_PATH_SETTINGS)
                and (k in wide or started[k].map(setting_value).nunique() > 1)]
        keys = [k for k in keys if not any(k in IMPLIED.get(other, ()) for other in keys)]
        if not keys:
            continue

        def label(r: pd.Series) -> str:
            values = {k: setting_value(r[k]) for k in keys}
            if r["status"] == "failed":  # an early failure's summary may lack the settings
                values = {k: "?" if v == "none" else v for k, v in values.items()}
            if values.get("train_subset") == "none":
                values["train_subset"] = "all"
            return ", ".join(f"{k}={v}" for k, v in values.items())

        labels = g.apply(label, axis=1)
        table.loc[g.index, "settings"] = labels
        table.loc[g.index, "variant"] = arch + " (" + labels + ")"


# --------------------------------------------------------------------------- per-run files


def read_csv(run_dir: str | Path, name: str) -> pd.DataFrame | None:
    """A run's CSV with numeric columns as floats, or None when it is missing or empty.

    A line torn by a kill (too few fields) becomes NaNs, dropped by the callers.
    """
    path = Path(run_dir) / name
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, on_bad_lines="skip")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, UnicodeDecodeError) as err:
        log.warning("%s: unreadable (%s)", path, err)
        return None
    if frame.empty:
        return None
    for col in frame.columns:
        if col not in rundir.TEXT_COLUMNS:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def epoch_metrics(run_dir: str | Path) -> pd.DataFrame | None:
    """metrics_epochs.csv: epoch, train_error, test_error, ... (fractions), or None."""
    frame = read_csv(run_dir, rundir.METRICS_EPOCHS)
    if frame is None or "epoch" not in frame:
        return None
    frame = frame.dropna(subset=["epoch"]).drop_duplicates("epoch", keep="last")
    return frame.sort_values("epoch").reset_index(drop=True)


def gradflow(run_dir: str | Path) -> pd.DataFrame | None:
    """gradflow.csv restricted to main-path layers, with `position` = 1 (input side) .. depth."""
    frame = read_csv(run_dir, rundir.GRADFLOW)
    if frame is None or not {"step", "layer_index", "grad_norm"} <= set(frame.columns):
        return None
    frame = frame.dropna(subset=["step", "layer_index"])
    if "shortcut" in frame:
        frame = frame[frame["shortcut"].fillna(0) == 0]
    if frame.empty:
        return None
    positions = {idx: i + 1 for i, idx in enumerate(sorted(frame["layer_index"].unique()))}
    frame = frame.assign(position=frame["layer_index"].map(positions))
    return frame.sort_values(["step", "layer_index"]).reset_index(drop=True)


def grad_ratio_series(run_dir: str | Path) -> pd.DataFrame:
    """log10(gradient norm of the first / last main-path layer) at every recorded step.

    Columns step, log10_ratio; only steps where both norms are finite and positive
    (a diverged run's series stops where its gradients did). Empty without gradflow.csv.
    """
    frame = gradflow(run_dir)
    if frame is None:
        return pd.DataFrame(columns=["step", "log10_ratio"])
    ends = frame.groupby("step")["position"].agg(["min", "max"])
    first = frame[frame["position"] == frame["step"].map(ends["min"])]
    last = frame[frame["position"] == frame["step"].map(ends["max"])]
    first = first.drop_duplicates("step", keep="last").set_index("step")["grad_norm"]
    last = last.drop_duplicates("step", keep="last").set_index("step")["grad_norm"]
    both = pd.concat([first.rename("first"), last.rename("last")], axis=1).dropna()
    both = both[np.isfinite(both).all(axis=1) & (both > 0).all(axis=1)]
    out = np.log10(both["first"] / both["last"]).rename("log10_ratio").reset_index()
    return out[out["step"].map(ends["max"]) == ends["max"].max()].reset_index(drop=True)


def gradflow_profile(run_dir: str | Path, which: str = "init") -> pd.DataFrame:
    """Gradient norm of each main-path layer at the first ("init") or last ("end") recorded step.

    Returns columns layer_index (as in layers.csv), layer, position (1 = the
    first layer on the input side), step, grad_norm; empty when the run has no
    gradflow.csv. "end" takes the last step that has every layer (a kill can
    leave the last one partial).
    """
    if which not in ("init", "end"):
        raise ValueError(f"which must be 'init' or 'end', not {which!r}")
    frame = gradflow(run_dir)
    columns = ["layer_index", "layer", "position", "step", "grad_norm"]
    if frame is None:
        return pd.DataFrame(columns=columns)
    if "layer" not in frame:
        frame = frame.assign(layer="")
    counts = frame.groupby("step")["layer_index"].nunique()
    if which == "init":
        step = counts.index.min()
    else:
        full = counts[counts == counts.max()]
        step = full.index.max()
    rows = frame[frame["step"] == step].drop_duplicates("layer_index", keep="last")
    return rows[columns].reset_index(drop=True)


def block_profile(run_dir: str | Path, which: str = "init", column: str = "back_norm") -> pd.DataFrame:
    """One per-block statistic of activations.csv (back_norm: the backward signal
    ||dL/dh_b|| at the block's output; act_std: its std) at the first ("init") or the
    last complete ("end") recorded step.

    Returns columns block_index, block, position (1 = the block nearest the input),
    step and `column`; empty when the run has no activations.csv or never recorded
    `column` (runs made before back_norm existed).
    """
    if which not in ("init", "end"):
        raise ValueError(f"which must be 'init' or 'end', not {which!r}")
    columns = ["block_index", "block", "position", "step", column]
    frame = read_csv(run_dir, rundir.ACTIVATIONS)
    if frame is None or not {"step", "block_index", column} <= set(frame.columns):
        return pd.DataFrame(columns=columns)
    frame = frame.dropna(subset=["step", "block_index", column])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    if "block" not in frame:
        frame = frame.assign(block="")
    counts = frame.groupby("step")["block_index"].nunique()
    step = counts.index.min() if which == "init" else counts[counts == counts.max()].index.max()
    rows = frame[frame["step"] == step].drop_duplicates("block_index", keep="last")
    rows = rows.sort_values("block_index")
    rows = rows.assign(position=range(1, len(rows) + 1))
    return rows[columns].reset_index(drop=True)
