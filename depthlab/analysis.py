"""Run directories -> one table -> verdicts: does depth hurt, and do shortcuts fix it?

Reads only what a run leaves on disk (see `depthlab.tracking.local` for the
format), so it works on runs made yesterday, on another machine or by SLURM,
and never imports torch:

    table, warnings = load_runs(["runs/my-sweep"])   # one row per run
    aggregate(table)                                 # one row per (architecture, depth)
    verdicts(table)                                  # [Verdict(kind, holds, text), ...]
    write_report(table, "runs/my-sweep", title="Plain vs residual")

Rules the verdicts follow (each verdict's text carries the numbers):

- Only completed runs count; failed, diverged, running and interrupted runs are
  listed in an "excluded" verdict.
- Runs are grouped per *variant*: the architecture, plus any setting (layout,
  norm, data, train_subset, epochs, shortcut, ...) whose value differs between
  that architecture's runs, so that e.g. plain nets with and without batch norm
  are never averaged together as if they were seeds.
- A difference between two groups is called only when it exceeds the seeds'
  spread (max - min over seeds, the larger of the two groups); with one seed
  per group the difference is called and the text says it is a single seed.
- Gradient ratios (first / last main-path layer gradient norm) are compared in
  log10; a change of less than `MIN_DECADES` (a factor of 2) is not called.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger("depthlab")

SUMMARY_KEYS = [
    "name", "group", "arch", "depth", "layout", "norm", "shortcut", "seed", "params", "flops",
    "final_train_error", "final_test_error", "best_test_error", "epochs_completed", "epochs",
    "steps_completed", "diverged", "grad_ratio_first_last", "grad_ratio_first_last_init",
    "wall_seconds", "device", "status", "error", "data", "train_subset", "num_classes",
]
NUMERIC = ["depth", "seed", "params", "flops", "final_train_error", "final_test_error",
           "best_test_error", "epochs_completed", "epochs", "steps_completed",
           "grad_ratio_first_last", "grad_ratio_first_last_init", "wall_seconds", "train_subset",
           "log10_grad_ratio_init", "log10_grad_ratio", "num_classes"]
# Classes of the data sets whose runs predate summary.json's num_classes.
KNOWN_CLASSES = {"cifar10": 10, "synthetic": 10, "imagenet": 1000}
# A net within this many points of chance training error did not train: no verdict on it.
CHANCE_MARGIN = 0.02
# Per (architecture, depth) statistics: errors are fractions, ratios log10.
STAT_COLUMNS = ["final_train_error", "final_test_error", "best_test_error",
                "log10_grad_ratio_init", "log10_grad_ratio"]
STATUSES = ("completed", "diverged", "running", "interrupted", "failed")
ARCH_ORDER = {"plain": 0, "residual": 1, "dense": 2}
# Settings that make runs of one architecture different experiments, not seeds.
SETTINGS = ("layout", "norm", "data", "train_subset", "epochs", "shortcut", "preact",
            "zero_init_residual")
# Settings of the skip path only: ignored for plain nets.
SKIP_PATH_SETTINGS = ("shortcut", "zero_init_residual")
# What two architectures must share to be compared at equal depth.
SHARED_SETTINGS = ("layout", "norm", "data", "train_subset", "epochs")
MIN_DECADES = math.log10(2)  # gradient-ratio changes below a factor of 2 are not called
RUN_FILES = ("summary.json", "config.yaml", "metrics_epochs.csv", "gradflow.csv")


# --------------------------------------------------------------------------- finding and loading


def is_run_dir(path: Path) -> bool:
    """A run directory holds summary.json, or config.yaml and metrics_epochs.csv."""
    path = Path(path)
    return (path / "summary.json").is_file() or (
        (path / "config.yaml").is_file() and (path / "metrics_epochs.csv").is_file())


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
            names = set(files)
            if "summary.json" in names or {"config.yaml", "metrics_epochs.csv"} <= names:
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


def read_summary(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A run's summary.json as a dict, or (None, why it cannot be used) in one line."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None, ("no summary.json (the run never started, or its directory was copied "
                      "without it)")
    try:
        summary = json.loads(path.read_text())
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


def _scalar(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _log10(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return math.log10(value) if math.isfinite(value) and value > 0 else math.nan


def load_runs(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """The run table and one warning per run that was skipped or is missing files.

    Runs whose summary.json is missing or unreadable are skipped; runs missing
    metrics_epochs.csv or gradflow.csv stay in the table (their summary holds
    the numbers) and are left out of the figures that need those files.
    """
    warnings: list[str] = []
    rows = []
    for run_dir in _find(paths, warnings):
        summary, problem = read_summary(run_dir)
        if problem:
            _warn(warnings, f"skipping {run_dir}: {problem}")
            continue
        row = {k: _scalar(summary.get(k)) for k in SUMMARY_KEYS}
        row.update({k: _scalar(v) for k, v in summary.items() if k not in row})
        if row.get("name") is None:
            row["name"] = run_dir.name
        if row.get("status") is None:
            row["status"] = "failed" if row.get("error") else "running"
        row["run_dir"] = str(run_dir)
        rows.append(row)
        if row["status"] != "failed":
            missing = [f for f in ("metrics_epochs.csv", "gradflow.csv")
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
    columns = list(dict.fromkeys([*SUMMARY_KEYS, "log10_grad_ratio_init", "log10_grad_ratio",
                                  *(k for r in rows for k in r), "run_dir", "variant", "settings"]))
    table = pd.DataFrame(rows, columns=columns)
    for col in NUMERIC:
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    # from the ratios when present (a summary written before the log10 keys existed)
    for log_col, ratio_col in (("log10_grad_ratio_init", "grad_ratio_first_last_init"),
                               ("log10_grad_ratio", "grad_ratio_first_last")):
        from_ratio = table[ratio_col].map(_log10)
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


def _setting_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _settings_of(row: pd.Series, keys: Sequence[str]) -> dict[str, str]:
    return {k: _setting_value(row.get(k)) for k in keys}


def _add_variants(table: pd.DataFrame) -> None:
    """variant = arch (+ the settings that differ between that architecture's runs).

    Which settings differ is judged on the runs that started: a run that failed
    early has a summary without them (shown as "?" if they differ elsewhere).
    """
    table["variant"] = table["arch"]
    table["settings"] = ""
    for arch, g in table.groupby("arch", sort=False):
        started = g[g["status"] != "failed"]
        started = started if len(started) else g
        keys = [k for k in SETTINGS if k in table
                and not (arch == "plain" and k in SKIP_PATH_SETTINGS)
                and started[k].map(_setting_value).nunique() > 1]
        if not keys:
            continue

        def label(r: pd.Series) -> str:
            values = {k: _setting_value(r[k]) for k in keys}
            if r["status"] == "failed":  # an early failure's summary may lack the settings
                values = {k: "?" if v == "none" else v for k, v in values.items()}
            if values.get("train_subset") == "none":
                values["train_subset"] = "all"
            return ", ".join(f"{k}={v}" for k, v in values.items())

        labels = g.apply(label, axis=1)
        table.loc[g.index, "settings"] = labels
        table.loc[g.index, "variant"] = arch + " (" + labels + ")"


# --------------------------------------------------------------------------- aggregation


def _status_counts(statuses: Iterable[str]) -> str:
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
            "seeds": ",".join(_setting_value(s) for s in ok["seed"]),
            "statuses": _status_counts(g["status"]),
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


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """One finding in words. holds: True / False, or None when the numbers cannot tell."""

    kind: str  # degradation | plain_vs_<arch> | vanishing | excluded | none
    holds: bool | None
    text: str
    subject: str = ""  # the variant (or depth) it is about

    def __str__(self) -> str:
        return self.text


@dataclass
class _Group:
    label: str  # e.g. plain-56
    values: list[float]
    chance: float | None = None  # training error of guessing (1 - 1/classes); None: unknown

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def range(self) -> float:
        return max(self.values) - min(self.values)

    @property
    def at_chance(self) -> bool:
        """Training error within CHANCE_MARGIN of guessing: the net did not train."""
        return self.chance is not None and self.mean >= self.chance - CHANCE_MARGIN


@dataclass
class _Diff:
    diff: float  # b - a
    spread: float | None  # larger max-min of the groups with >= 2 values; None: single seeds
    threshold: float

    @property
    def called(self) -> bool:
        return abs(self.diff) > self.threshold

    @property
    def within_spread(self) -> bool:
        return self.spread is not None and abs(self.diff) <= self.spread


def _diff(a: _Group, b: _Group, minimum: float = 0.0) -> _Diff:
    ranges = [g.range for g in (a, b) if g.n >= 2]
    spread = max(ranges) if ranges else None
    return _Diff(b.mean - a.mean, spread, max(spread or 0.0, minimum))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pts(x: float) -> str:
    return f"{100 * abs(x):.1f}"


def _exp(x: float) -> str:
    return "10^" + _fixed(x, 1)


def _seeds_note(a: _Group, b: _Group, d: _Diff, *, unit: str, fmt) -> str:
    """How many seeds stand behind a comparison and how the spread bears on it."""
    if d.spread is None:
        return f"single seed: no spread to judge the difference of {fmt(d.diff)} {unit} against"
    counts = f"means of {a.n} and {b.n} seeds" if a.n != b.n else f"means of {a.n} seeds each"
    rel = "is within" if d.within_spread else "exceeds"
    return (f"{counts}; the difference of {fmt(d.diff)} {unit} {rel} the seeds' spread "
            f"(max - min) of {fmt(d.spread)} {unit}")


def _nets(arch: str, settings: str, capital: bool = False) -> str:
    name = f"{arch.capitalize() if capital else arch} nets"
    return f"{name} ({settings})" if settings else name


def _groups(table: pd.DataFrame, column: str) -> dict[tuple[str, str, str], dict[int, _Group]]:
    """(variant, arch, settings) -> depth -> values of `column` over completed runs."""
    out: dict[tuple[str, str, str], dict[int, _Group]] = {}
    ok = counted(table)
    ok = ok[ok[column].notna()]
    for (variant, depth), g in ok.groupby(["variant", "depth"], sort=False):
        key = (variant, g["arch"].iloc[0], g["settings"].iloc[0])
        out.setdefault(key, {})[int(depth)] = _Group(f"{g['arch'].iloc[0]}-{int(depth)}",
                                                      [float(v) for v in g[column]],
                                                      _chance_error(g.iloc[0]))
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def _chance_error(row: pd.Series) -> float | None:
    """1 - 1/classes of the run's data set (summary.json's num_classes, else KNOWN_CLASSES)."""
    classes = row.get("num_classes")
    if classes is None or classes != classes:
        classes = KNOWN_CLASSES.get(str(row.get("data")))
    return 1.0 - 1.0 / float(classes) if classes else None


def _untrained(a: _Group, b: _Group) -> str | None:
    """When both nets stayed at chance, the words saying so (no verdict can be drawn)."""
    if not (a.at_chance and b.at_chance):
        return None
    return (f"cannot tell - {a.label} and {b.label} both stayed at chance "
            f"({_pct(a.mean)} and {_pct(b.mean)} training error; guessing gives "
            f"{_pct(a.chance)}): neither trained, so depth or shortcuts made no difference "
            "that these runs can show")


def degradation_verdicts(table: pd.DataFrame) -> list[Verdict]:
    """Per architecture: does the deepest net end at a higher training error than the shallowest?

    holds is True when it does (degradation), False when it does not, None when
    the difference is within the seeds' spread or there is only one depth.
    """
    verdicts = []
    for (variant, arch, settings), by_depth in _groups(table, "final_train_error").items():
        plain = arch == "plain"
        prefix = f"Degradation in {_nets(arch, settings)}" if plain else _nets(arch, settings, True)
        if len(by_depth) < 2:
            depth = next(iter(by_depth))
            verdicts.append(Verdict("degradation", None,
                                    f"{prefix}: cannot tell - only depth {depth} has completed runs",
                                    variant))
            continue
        shallow, deep = by_depth[min(by_depth)], by_depth[max(by_depth)]
        untrained = _untrained(shallow, deep)
        if untrained:
            verdicts.append(Verdict("degradation", None, f"{prefix}: {untrained}", variant))
            continue
        d = _diff(shallow, deep)
        holds = (d.diff > 0) if d.called else (None if d.within_spread else False)  # a tie: no
        if plain:
            answer = {True: "yes", False: "no", None: "inconclusive"}[holds]
        else:
            answer = {True: "deeper is worse", False: "deeper is not worse",
                      None: "inconclusive"}[holds]
        text = (f"{prefix}: {answer} - {deep.label} ends at {_pct(deep.mean)} training error vs "
                f"{_pct(shallow.mean)} for {shallow.label} "
                f"({_seeds_note(shallow, deep, d, unit='points', fmt=_pts)})")
        if len(by_depth) > 2:
            text += "; by depth: " + ", ".join(f"{k}: {_pct(g.mean)}" for k, g in by_depth.items())
        gone = [g.label for g in by_depth.values() if g.at_chance]
        if gone:
            text += f"; at chance ({_pct(deep.chance)}), i.e. not trained: {', '.join(gone)}"
        verdicts.append(Verdict("degradation", holds, text, variant))
    return verdicts


def _comparable(settings_a: dict[str, str], settings_b: dict[str, str]) -> bool:
    return all(settings_a.get(k) == settings_b.get(k) for k in SHARED_SETTINGS)


def comparison_verdicts(table: pd.DataFrame) -> list[Verdict]:
    """Plain vs each net with shortcuts, at every depth both have: which trains lower?

    holds is True when the net with shortcuts ends at the lower training error,
    False when the plain net does, None when the difference is within the
    seeds' spread. Only runs with the same SHARED_SETTINGS (layout, norm,
    data, train_subset, epochs) are paired.
    """
    train = _groups(table, "final_train_error")
    test = _groups(table, "final_test_error")
    ok = counted(table)
    keys = [k for k in SETTINGS if k in table]
    settings_of = {v: _settings_of(g.iloc[0], keys) for v, g in ok.groupby("variant", sort=False)}
    plains = [k for k in train if k[1] == "plain"]
    others = [k for k in train if k[1] != "plain"]
    verdicts = []
    for p in plains:
        for o in others:
            if not _comparable(settings_of[p[0]], settings_of[o[0]]):
                continue
            where = ", ".join(dict.fromkeys(s for s in (p[2], o[2]) if s))  # once if equal
            for depth in sorted(set(train[p]) & set(train[o])):
                a, b = train[p][depth], train[o][depth]
                d = _diff(a, b)
                holds = (d.diff < 0) if d.called else None
                at = f"At depth {depth}" + (f" ({where})" if where else "")
                untrained = _untrained(a, b)
                if untrained:
                    verdicts.append(Verdict(f"plain_vs_{o[1]}", None, f"{at}: {untrained}",
                                            f"{o[0]} vs {p[0]} @ {depth}"))
                    continue
                if holds is None:
                    head = f"{at}, {o[1]} and plain train alike"
                elif holds:
                    head = f"{at}, {o[1]} trains lower than plain"
                else:
                    head = f"{at}, plain trains lower than {o[1]}"
                text = (f"{head}: {b.label} {_pct(b.mean)} vs {a.label} {_pct(a.mean)} training error "
                        f"({_seeds_note(a, b, d, unit='points', fmt=_pts)})")
                ta, tb = test.get(p, {}).get(depth), test.get(o, {}).get(depth)
                if ta and tb:
                    text += f"; test error {_pct(tb.mean)} vs {_pct(ta.mean)}"
                verdicts.append(Verdict(f"plain_vs_{o[1]}", holds, text, f"{o[0]} vs {p[0]} @ {depth}"))
    return verdicts


def _vanishing_call(shallow: _Group, deep: _Group) -> tuple[bool | None, str, str, _Diff]:
    """(holds, answer, why, diff) for log10 first/last ratios of the shallowest and deepest net."""
    d = _diff(shallow, deep, MIN_DECADES)
    if abs(d.diff) <= MIN_DECADES:
        return False, "no", "about the same at every depth", d
    if d.within_spread:
        return None, "inconclusive", "", d
    if d.diff < 0 and deep.mean < 0:
        return True, "yes", "", d
    if d.diff > 0 and deep.mean > 0:
        return False, "no", ("the deeper net's first layer gets relatively more: "
                             "gradients grow toward the input"), d
    return False, "no", ("the deeper net's first layer gets relatively more"
                         if d.diff > 0 else "the first layer still gets more than the last"), d


def _change_note(d: _Diff, when: str | None) -> str:
    change = f"{abs(d.diff):.1f} decades" + (f" at {when}" if when else "")
    if abs(d.diff) <= MIN_DECADES:
        return f"a change of {change}, under a factor of 2"
    if d.spread is not None:
        rel = "is within" if d.within_spread else "exceeds"
        return f"the change of {change} {rel} the seeds' spread of {d.spread:.1f} decades"
    return f"a change of {change}"


def vanishing_verdicts(table: pd.DataFrame) -> list[Verdict]:
    """Per architecture: does the first layer's share of the gradient shrink with depth?

    Compares log10(first / last main-path layer gradient norm) of the deepest
    and the shallowest net, at initialisation and at the end of training. The
    two can disagree (with batch norm a deep plain net's gradients grow toward
    the input at init, then fall below the shallow net's as it trains); the
    verdict then names both. holds is True when the deeper net's ratio is lower
    by more than the seeds' spread and a factor of 2, and below 1 (vanishing),
    at init or at the end; False when neither; None when a change is within the
    seeds' spread and none is called.
    """
    init = _groups(table, "log10_grad_ratio_init")
    end = _groups(table, "log10_grad_ratio")
    verdicts = []
    for key in dict.fromkeys([*init, *end]):
        variant, arch, settings = key
        prefix = f"Vanishing gradients in {_nets(arch, settings)}"
        times = [(label, groups) for label, groups in (("init", init.get(key, {})),
                                                        ("end", end.get(key, {})))
                 if len(groups) >= 2]
        if not times:
            verdicts.append(Verdict("vanishing", None,
                                    f"{prefix}: cannot tell - gradient ratios at one depth only",
                                    variant))
            continue
        basis = times[0][1]
        lo, hi = min(basis), max(basis)
        calls = {label: _vanishing_call(groups[lo], groups[hi]) for label, groups in times
                 if lo in groups and hi in groups}
        parts = []
        for label, groups in (("at init", init.get(key, {})), ("at the end", end.get(key, {}))):
            if lo in groups and hi in groups:
                if not parts:
                    parts.append(f"{label} the first layer gets {_exp(groups[hi].mean)} of the last "
                                 f"layer's gradient norm at depth {hi} vs {_exp(groups[lo].mean)} "
                                 f"at depth {lo}")
                else:
                    parts.append(f"{label} {_exp(groups[hi].mean)} vs {_exp(groups[lo].mean)}")
        answers = {label: c[1] for label, c in calls.items()}
        first = next(iter(calls))
        if len(set(answers.values())) == 1:  # init and end agree (or only one is known)
            holds, answer, why, d = calls[first]
            notes = [why, _change_note(d, first)]
        else:
            answer = ", ".join(f"{a} at init" if label == "init" else f"{a} by the end of training"
                               for label, a in answers.items())
            held = [c[0] for c in calls.values()]
            holds = True if True in held else (None if None in held else False)
            notes = [f"{'at init' if label == 'init' else 'by the end'}: "
                     + ", ".join(x for x in (c[2], _change_note(c[3], None)) if x)
                     for label, c in calls.items()]
        shallow, deep = basis[lo], basis[hi]
        seeds = ("single seed" if shallow.n < 2 and deep.n < 2 else
                 f"means of {shallow.n} and {deep.n} seeds" if shallow.n != deep.n
                 else f"means of {shallow.n} seeds each")
        note = "; ".join(x for x in (*notes, seeds) if x)
        text = f"{prefix}: {answer} - {'; '.join(parts)} ({note})"
        verdicts.append(Verdict("vanishing", holds, text, variant))
    return verdicts


def excluded_verdicts(table: pd.DataFrame) -> list[Verdict]:
    """The runs the verdicts leave out (failed, diverged, running, interrupted), with why."""
    left = table[table["status"] != "completed"]
    if left.empty:
        return []
    items = []
    for _, r in left.iterrows():
        status = r["status"]
        done, planned = r.get("epochs_completed"), r.get("epochs")
        if status == "failed":
            error = r.get("error")
            why = f"failed: {error}" if isinstance(error, str) and error else "failed"
        elif done == done and planned == planned and done is not None and planned is not None:
            why = f"{status} after {int(done)} of {int(planned)} epochs"
        else:
            why = status
        items.append(f"{r['name']} ({why})")
    return [Verdict("excluded", None, "Left out of the verdicts: " + "; ".join(items))]


def verdicts(table: pd.DataFrame) -> list[Verdict]:
    """All verdicts: degradation, plain vs shortcuts, vanishing gradients, excluded runs."""
    if counted(table).empty:
        found = [Verdict("none", None, "No completed runs yet: nothing to judge")]
    else:
        found = [*degradation_verdicts(table), *comparison_verdicts(table),
                 *vanishing_verdicts(table)]
    return [*found, *excluded_verdicts(table)]


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
        if col not in ("layer", "stage", "block", "name", "kind"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def epoch_metrics(run_dir: str | Path) -> pd.DataFrame | None:
    """metrics_epochs.csv: epoch, train_error, test_error, ... (fractions), or None."""
    frame = read_csv(run_dir, "metrics_epochs.csv")
    if frame is None or "epoch" not in frame:
        return None
    frame = frame.dropna(subset=["epoch"]).drop_duplicates("epoch", keep="last")
    return frame.sort_values("epoch").reset_index(drop=True)


def gradflow(run_dir: str | Path) -> pd.DataFrame | None:
    """gradflow.csv restricted to main-path layers, with `position` = 1 (input side) .. depth."""
    frame = read_csv(run_dir, "gradflow.csv")
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


def _duration(seconds: Any) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "-"
    if s != s:
        return "-"
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")


def _run_time(table: pd.DataFrame) -> str:
    """Training time summed over the runs, and the longest run (their own wall_seconds)."""
    seconds = pd.to_numeric(table.get("wall_seconds"), errors="coerce").dropna()
    if seconds.empty:
        return "not recorded"
    return (f"{_duration(seconds.sum())} of training summed over {len(seconds)} runs "
            f"(longest run {_duration(seconds.max())}; wall time of one run after another)")


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
                     _duration(r["wall_seconds"]), str(r["run_dir"])])
    return rows


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(x: Any) -> str:
        return " ".join(str(x).split()).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the report


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
    has = table[table["run_dir"].map(lambda d: (Path(d) / "gradflow.csv").is_file())]
    if has.empty:
        return None
    plain = has[has["arch"] == "plain"]
    pool = plain if not plain.empty else has
    pool = pool.assign(_done=(pool["status"] != "completed").astype(int))
    pool = pool.sort_values(["_done", "depth", "seed"], ascending=[True, False, True],
                            na_position="last", kind="stable")
    return pool.iloc[0].drop("_done")


def _atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
            values = started[col].map(_setting_value).unique()
            if len(values) == 1 and values[0] != "none":
                same.append(f"{col}={values[0]}")
    return ", ".join(same)


FIGURES = {
    "error_curves": ("error_curves.png", "Training (dashed) and test (solid) error per epoch"),
    "final_error": ("final_error_vs_depth.png", "Final training and test error vs depth"),
    "gradflow_layers": ("gradflow_layers.png",
                        "Gradient norm per layer, at initialisation and at the end"),
    "gradflow_heatmap": ("gradflow_heatmap.png", "Gradient norm per layer over training"),
    "grad_ratio": ("grad_ratio_over_training.png",
                   "log10 gradient-norm ratio first / last layer over training"),
}


def make_figures(table: pd.DataFrame, out_dir: str | Path, *, heatmap_run: str | None = None,
                 notes: list[str] | None = None) -> dict[str, Path]:
    """Every figure of the report into `out_dir`; a figure with nothing to show is left out
    (and a note saying why appended to `notes`)."""
    from depthlab import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = notes if notes is not None else []
    made: dict[str, Path] = {}
    jobs = {
        "error_curves": lambda p: plots.plot_error_curves(table, p),
        "final_error": lambda p: plots.plot_final_error(table, p),
        "gradflow_layers": lambda p: plots.plot_gradflow_layers(table, p),
        "grad_ratio": lambda p: plots.plot_grad_ratio_over_training(table, p),
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
            notes.append(f"No {filename}: {err}.")
    return made


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
    for path in (Path(run_dir) / "config.yaml", Path(run_dir) / ".hydra" / "config.yaml"):
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
            ("Runs", f"{len(table)} ({_status_counts(table['status'])}); completed seeds per "
                     f"architecture and depth: {seeds_text}"),
            ("Run time", _run_time(table)),
            ("Settings", _settings_line(table) or "see the per-run table")]
    cmds = list(commands or [])

    paths: dict[str, Path] = {}
    summary_path = out_dir / "summary.csv"
    _atomic_write(summary_path, summary_csv_table(table).to_csv(index=False))
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
    _atomic_write(md_path, "\n".join(md))
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
    _atomic_write(html_path, page)
    paths["html"] = html_path
    paths.update(figures)
    return paths
