"""Does the precision change the science? Runs that differ only in trainer.precision /
trainer.channels_last, set side by side: each net's errors and gradient ratios, and the
findings (degradation, plain vs shortcuts, vanishing gradients) of each precision.

    precision_verdicts(table, findings)   # [] unless the table holds fp32 runs and runs of another precision

Per (architecture, settings, depth), the other precision's group is compared with fp32's (the
reference) by the rules of verdict.py: an error difference is called only beyond the seeds'
spread and 2 standard errors of sampling noise; a gradient-ratio difference only beyond the
spread and a factor of 2. The net "stands in" (holds True) when nothing is called. Then the
findings of the two precisions are compared verdict by verdict: the same call (yes / no /
about the same) or not.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from .aggregation import counted
from .groups import MIN_DECADES, Verdict, compare, error_groups, pct, pts, seeds_note
from .runs import SETTINGS, _add_variants, setting_value

NUMERICS = ("precision", "channels_last")  # the settings this module compares
REFERENCE = ("fp32", "false")  # setting_value of precision, channels_last


def _numerics_of(row: pd.Series) -> tuple[str, str]:
    return tuple(setting_value(row.get(k)).lower() for k in NUMERICS)


def _words(numerics: tuple[str, str]) -> str:
    precision, channels_last = numerics
    return precision + (" + channels_last" if channels_last == "true" else "")


def _base_key(row: pd.Series) -> tuple:
    """What a run is apart from its numerics: architecture and the other settings."""
    return (row["arch"], *(setting_value(row.get(k)) for k in SETTINGS
                           if k not in NUMERICS and k in row.index))


def _split(table: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    numerics = table.apply(_numerics_of, axis=1) if len(table) else pd.Series(dtype=object)
    return {key: table[numerics == key] for key in dict.fromkeys(numerics)}


def _net_verdicts(ref: pd.DataFrame, other: pd.DataFrame, label: str) -> list[Verdict]:
    """One verdict per net (architecture, settings, depth) that both precisions trained."""
    columns = {c: (error_groups(ref, c), error_groups(other, c))
               for c in ("final_train_error", "final_test_error", "log10_grad_ratio_init",
                         "log10_grad_ratio")}
    base_of = {}
    for t in (ref, other):
        for variant, g in counted(t).groupby("variant", sort=False):
            base_of[variant] = _base_key(g.iloc[0])
    out = []
    ref_train, other_train = columns["final_train_error"]
    for rkey, rdepths in ref_train.items():
        for okey, odepths in other_train.items():
            if base_of.get(rkey[0]) != base_of.get(okey[0]):
                continue
            for depth in sorted(set(rdepths) & set(odepths)):
                parts, called = [], []
                for column, (r, o) in columns.items():
                    a, b = r.get(rkey, {}).get(depth), o.get(okey, {}).get(depth)
                    if a is None or b is None:
                        continue
                    error = column.endswith("error")
                    d = compare(a, b, 0.0 if error else MIN_DECADES)
                    if d.called:
                        called.append(column)
                    what = {"final_train_error": "training error", "final_test_error": "test error",
                            "log10_grad_ratio_init": "log10 first/last gradient at init",
                            "log10_grad_ratio": "log10 first/last gradient at the end"}[column]
                    if error:
                        parts.append(f"{what} {pct(b.mean)} vs {pct(a.mean)} "
                                     f"({seeds_note(a, b, d, unit='points', fmt=pts)})")
                    else:
                        spread = (f"seeds' spread {d.spread:.2f}" if d.spread is not None
                                  else "single seed")
                        parts.append(f"{what} {b.mean:+.2f} vs {a.mean:+.2f} ({spread}; "
                                     f"{'called' if d.called else 'not called'} beyond the "
                                     f"spread and a factor of 2)")
                net = f"{rkey[1]}-{depth}" + (f" ({rkey[2]})" if rkey[2] and "precision" not in rkey[2] else "")
                head = (f"{net}: {label} trains as fp32 does" if not called else
                        f"{net}: {label} differs from fp32 in "
                        + ", ".join(c.replace("final_", "").replace("_", " ") for c in called))
                out.append(Verdict("precision", not called, f"{head} - {'; '.join(parts)}",
                                   f"{net} {label}"))
    return out


Findings = Callable[[pd.DataFrame], list[Verdict]]


def _relabelled(t: pd.DataFrame) -> pd.DataFrame:
    """The runs of one precision, their variants labelled without it (it no longer differs)."""
    t = t.copy()
    _add_variants(t)
    return t


def _finding_verdicts(ref: pd.DataFrame, other: pd.DataFrame, label: str,
                      findings: Findings) -> list[Verdict]:
    # only the nets both precisions completed: a finding one arm cannot judge yet (a depth
    # still training) is not a different call
    def nets(t: pd.DataFrame) -> set[tuple]:
        return {(*_base_key(r), int(r["depth"])) for _, r in counted(t).iterrows()}

    both = nets(ref) & nets(other)

    def shared(t: pd.DataFrame) -> pd.DataFrame:
        keep = [(*_base_key(r), int(r["depth"])) in both for _, r in t.iterrows()]
        return _relabelled(t[keep])

    def judged(t: pd.DataFrame) -> dict[tuple[str, str], Verdict]:
        return {(v.kind, v.subject): v for v in findings(shared(t)) if ": cannot tell" not in v.text}

    a, b = judged(ref), judged(other)
    same = [k for k in a if k in b and a[k].holds == b[k].holds]
    differ = [k for k in a if k in b and a[k].holds != b[k].holds]
    if not same and not differ:
        return []
    words = {True: "yes", False: "no", None: "about the same / cannot tell"}
    text = f"Findings, {label} vs fp32: {len(same)} of {len(same) + len(differ)} the same call"
    if differ:
        text += "; different: " + "; ".join(
            f"{k[0]} {k[1]}: fp32 {words[a[k].holds]}, {label} {words[b[k].holds]}" for k in differ)
    return [Verdict("precision_findings", not differ, text, label)]


def precision_verdicts(table: pd.DataFrame, findings: Findings) -> list[Verdict]:
    """fp32 (contiguous) against each other precision / memory format in the table;
    `findings(table)` gives the verdicts to compare per precision (verdict.py's)."""
    if not all(k in table for k in NUMERICS):
        return []
    arms = _split(counted(table))
    if REFERENCE not in arms or len(arms) < 2:
        return []
    ref = table[table.apply(_numerics_of, axis=1) == REFERENCE]
    out = []
    for numerics in arms:
        if numerics == REFERENCE:
            continue
        other = table[table.apply(_numerics_of, axis=1) == numerics]
        label = _words(numerics)
        out += _net_verdicts(ref, other, label) + _finding_verdicts(ref, other, label, findings)
    return out
