"""summary.csv: the run table, one row per run, with the same columns for every row.

Blanks a summary leaves (a failure recorded before the run started, an older
summary) are filled from the run's config.yaml where it tells them; counts stay
integers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from depthlab import rundir
from depthlab.analysis import KNOWN_CLASSES

# summary.csv: counts stay integers (blank where unknown, never "8.0").
INTEGER_COLUMNS = ("depth", "seed", "params", "flops", "epochs", "epochs_completed",
                   "steps_completed", "total_steps", "train_subset", "num_classes", "train_size",
                   "test_size")
# Summary keys that the run's config also holds: filled from config.yaml where a
# summary lacks them (a failure recorded before the run started, an older summary).
CONFIG_KEYS = {"data": ("data", "name"), "num_classes": ("data", "num_classes"),
               "train_subset": ("data", "train_subset"), "layout": ("arch", "layout"),
               "norm": ("arch", "norm"), "preact": ("arch", "preact"),
               "zero_init_residual": ("arch", "zero_init_residual"), "seed": ("seed",),
               "depth": ("depth",), "epochs": ("trainer", "epochs")}


def _run_config(run_dir: Any) -> dict[str, Any]:
    """The run's config.yaml (what it trained with), else Hydra's .hydra/config.yaml."""
    import yaml

    if not isinstance(run_dir, str):
        return {}
    for path in (Path(run_dir) / rundir.CONFIG, Path(run_dir) / rundir.HYDRA_CONFIG):
        try:
            cfg = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(cfg, dict):
            return cfg
    return {}


def _from_config(cfg: dict[str, Any], key: str) -> Any:
    if key == "epochs" and (cfg.get("trainer") or {}).get("iterations"):
        return None  # epochs then follow from the training set's size
    node: Any = cfg
    for part in CONFIG_KEYS[key]:
        node = node.get(part) if isinstance(node, dict) else None
    if key == "num_classes" and node is None:
        node = KNOWN_CLASSES.get(((cfg.get("data") or {}).get("name")))
    return node


def summary_csv_table(table: pd.DataFrame) -> pd.DataFrame:
    """The run table as summary.csv holds it: every row carries the same columns
    (blanks filled from the run's config where it tells them) and counts are integers."""
    out = table.copy()
    blank = out.isna()
    for i, row in out.iterrows():
        missing = [k for k in CONFIG_KEYS if k in out.columns and blank.at[i, k]]
        if not missing:
            continue
        cfg = _run_config(row.get("run_dir"))
        for key in missing:
            value = _from_config(cfg, key)
            if value is None:
                continue
            if out[key].dtype != object and (isinstance(value, bool)
                                             or not isinstance(value, (int, float))):
                out[key] = out[key].astype(object)  # e.g. a norm into an all-blank float column
            out.at[i, key] = value
    for col in INTEGER_COLUMNS:
        if col not in out.columns:
            continue
        values = pd.to_numeric(out[col], errors="coerce")
        whole = values.dropna()
        if len(whole) == out[col].notna().sum() and (whole == whole.round()).all():
            out[col] = values.round().astype("Int64")
    return out
