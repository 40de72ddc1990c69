"""Verdicts: the findings in words, each carrying its numbers.

    verdicts(table)   # [Verdict(kind, holds, text, subject), ...]

Rules the verdicts follow:

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

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .aggregation import _fixed, counted
from .runs import KNOWN_CLASSES, SETTINGS, setting_value

# A net within this many points of chance training error did not train: no verdict on it.
CHANCE_MARGIN = 0.02
# What two architectures must share to be compared at equal depth.
SHARED_SETTINGS = ("layout", "norm", "data", "train_subset", "epochs", "start")
MIN_DECADES = math.log10(2)  # gradient-ratio changes below a factor of 2 are not called


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


def _settings_of(row: pd.Series, keys: Sequence[str]) -> dict[str, str]:
    return {k: setting_value(row.get(k)) for k in keys}


def _comparable(settings_a: dict[str, str], settings_b: dict[str, str]) -> bool:
    return all(settings_a.get(k) == settings_b.get(k) for k in SHARED_SETTINGS)


def comparison_verdicts(table: pd.DataFrame) -> list[Verdict]:
    """Plain vs each net with shortcuts, at every depth both have: which trains lower?

    holds is True when the net with shortcuts ends at the lower training error,
    False when the plain net does, None when the difference is within the
    seeds' spread. Only runs with the same SHARED_SETTINGS (layout, norm,
    data, train_subset, epochs, start) are paired.
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
