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
  per group there is no spread, and the text says it is a single seed.
- A difference between two error rates is also called only when it exceeds
  `NOISE_SE` = 2 standard errors of the errors' own sampling noise, seeds or
  not. An error rate p measured on N images has the binomial standard error
  sqrt(p (1 - p) / N); the mean of n seeds has sqrt(sum_i p_i (1 - p_i) / N_i) / n
  (one seed's divided by sqrt(n) when the seeds agree); the two groups compared
  combine as sqrt(se_a^2 + se_b^2). A difference within 2 of those is "about
  the same" (holds None), and the text says so: "the difference of 0.1 points is
  within 2 standard errors of sampling noise (2.5 points on 3,000 images each)",
  the points being the 2 combined standard errors. Both rules must pass (the
  sampling noise is the measurement's, the seeds' spread the training's); a
  call that passes both reads as it did before this rule.
- N for the training error: the final training error is the error over the
  batches of the run's last epoch (summed over the ranks), so N is the training
  images that epoch saw. That is summary.json's train_size (the images after
  train_subset, all ranks together; train_subset for a run that predates
  train_size) in whole batches, the last incomplete one being dropped: 9,984 of
  10,000 images at batch 128, 2,944 of 3,000, fewer in the partial last epoch of
  an `iterations` run. Where the table holds the run's batch_size they are
  counted so; without it N is train_size, under one batch too many per epoch
  (a standard error under 1% too small at these sizes). N for the test error
  is test_size (the whole test set). A run that records neither is judged on
  the seed rule alone.
- Gradient ratios (first / last main-path layer gradient norm) are compared in
  log10; a change of less than `MIN_DECADES` (a factor of 2) is not called.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from .aggregation import counted
from .groups import (
    MIN_DECADES,
    Diff,
    Group,
    Verdict,
    compare,
    error_groups,
    exp10,
    nets_label,
    pct,
    pts,
    seeds_note,
    untrained_note,
)
from .numerics import precision_verdicts
from .runs import SETTINGS, setting_value

# What two architectures must share to be compared at equal depth.
# precision and channels_last too: an fp32 plain net is not set against a bf16 residual net
SHARED_SETTINGS = ("layout", "norm", "data", "train_subset", "epochs", "start", "precision",
                   "channels_last")


def degradation_verdicts(table: pd.DataFrame) -> list[Verdict]:
    """Per architecture: does the deepest net end at a higher training error than the shallowest?

    holds is True when it does (degradation), False when it does not, None when
    the difference is within the seeds' spread or the sampling noise ("about the
    same"), or there is only one depth.
    """
    verdicts = []
    for (variant, arch, settings), by_depth in error_groups(table, "final_train_error").items():
        plain = arch == "plain"
        prefix = f"Degradation in {nets_label(arch, settings)}" if plain else nets_label(arch, settings, True)
        if len(by_depth) < 2:
            depth = next(iter(by_depth))
            verdicts.append(Verdict("degradation", None,
                                    f"{prefix}: cannot tell - only depth {depth} has completed runs",
                                    variant))
            continue
        shallow, deep = by_depth[min(by_depth)], by_depth[max(by_depth)]
        untrained = untrained_note(shallow, deep)
        if untrained:
            verdicts.append(Verdict("degradation", None, f"{prefix}: {untrained}", variant))
            continue
        d = compare(shallow, deep)
        tie = d.within_spread or d.within_noise  # the numbers cannot tell a direction
        holds = (d.diff > 0) if d.called else (None if tie else False)  # no difference at all: no
        if d.within_noise:
            answer = "about the same"
        elif plain:
            answer = {True: "yes", False: "no", None: "inconclusive"}[holds]
        else:
            answer = {True: "deeper is worse", None: "inconclusive",
                      False: "deeper trains lower" if d.diff < 0 else "deeper is not worse"}[holds]
        text = (f"{prefix}: {answer} - {deep.label} ends at {pct(deep.mean)} training error vs "
                f"{pct(shallow.mean)} for {shallow.label} "
                f"({seeds_note(shallow, deep, d, unit='points', fmt=pts)})")
        if len(by_depth) > 2:
            text += "; by depth: " + ", ".join(f"{k}: {pct(g.mean)}" for k, g in by_depth.items())
        gone = [g.label for g in by_depth.values() if g.at_chance]
        if gone:
            text += f"; at chance ({pct(deep.chance)}), i.e. not trained: {', '.join(gone)}"
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
    seeds' spread or the sampling noise ("about the same"). Only runs with the
    same SHARED_SETTINGS (layout, norm, data, train_subset, epochs, start) are
    paired.
    """
    train = error_groups(table, "final_train_error")
    test = error_groups(table, "final_test_error")
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
                d = compare(a, b)
                holds = (d.diff < 0) if d.called else None
                at = f"At depth {depth}" + (f" ({where})" if where else "")
                untrained = untrained_note(a, b)
                if untrained:
                    verdicts.append(Verdict(f"plain_vs_{o[1]}", None, f"{at}: {untrained}",
                                            f"{o[0]} vs {p[0]} @ {depth}"))
                    continue
                if d.within_noise:
                    head = f"{at}, {o[1]} and plain train about the same"
                elif holds is None:
                    head = f"{at}, {o[1]} and plain train alike"
                elif holds:
                    head = f"{at}, {o[1]} trains lower than plain"
                else:
                    head = f"{at}, plain trains lower than {o[1]}"
                text = (f"{head}: {b.label} {pct(b.mean)} vs {a.label} {pct(a.mean)} training error "
                        f"({seeds_note(a, b, d, unit='points', fmt=pts)})")
                ta, tb = test.get(p, {}).get(depth), test.get(o, {}).get(depth)
                if ta and tb:
                    text += f"; test error {pct(tb.mean)} vs {pct(ta.mean)}"
                verdicts.append(Verdict(f"plain_vs_{o[1]}", holds, text, f"{o[0]} vs {p[0]} @ {depth}"))
    return verdicts


def _vanishing_call(shallow: Group, deep: Group) -> tuple[bool | None, str, str, Diff]:
    """(holds, answer, why, diff) for log10 first/last ratios of the shallowest and deepest net."""
    d = compare(shallow, deep, MIN_DECADES)
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


def _change_note(d: Diff, when: str | None) -> str:
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
    init = error_groups(table, "log10_grad_ratio_init")
    end = error_groups(table, "log10_grad_ratio")
    verdicts = []
    for key in dict.fromkeys([*init, *end]):
        variant, arch, settings = key
        prefix = f"Vanishing gradients in {nets_label(arch, settings)}"
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
                    parts.append(f"{label} the first layer gets {exp10(groups[hi].mean)} of the last "
                                 f"layer's gradient norm at depth {hi} vs {exp10(groups[lo].mean)} "
                                 f"at depth {lo}")
                else:
                    parts.append(f"{label} {exp10(groups[hi].mean)} vs {exp10(groups[lo].mean)}")
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


def findings(table: pd.DataFrame) -> list[Verdict]:
    """Degradation, plain vs shortcuts and vanishing gradients."""
    return [*degradation_verdicts(table), *comparison_verdicts(table), *vanishing_verdicts(table)]


def verdicts(table: pd.DataFrame) -> list[Verdict]:
    """All verdicts: degradation, plain vs shortcuts, vanishing gradients, excluded runs."""
    if counted(table).empty:
        found = [Verdict("none", None, "No completed runs yet: nothing to judge")]
    else:
        found = [*findings(table), *precision_verdicts(table, findings)]
    return [*found, *excluded_verdicts(table)]
