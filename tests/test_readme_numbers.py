"""Numbers have one home (issue #28, item 7): the results files, not the prose.

Every result table in README.md and results/README.md is checked cell by cell against the
committed file it is copied from, and every number the READMEs, the conf/experiment headers and
scripts/reproduce_cifar10.sh's header quote from results/ is checked against its file, to the
precision it is printed with ("53.1" must be the file's value rounded to one decimal, "3e-4" to
one significant figure). The expected numbers are computed here from the files (summary.csv
columns, probe summary.csv, lesion.csv, latest.md, latest.json, probe.json, timing.json,
history.json); only the words around them are written in this module.

To add a check: a row in TABLES (a table: its header line, its file, a function building the
expected rows) or in QUOTES (a sentence with `{}` where each number stands, its file, a function
returning the numbers). The README's main job (`experiment=quick`) has no results folder yet:
its rows go in QUICK_QUOTES once results/quick/ exists (test_main_job_numbers says so).

Reads only files in the checkout (and, for results/benchmarks/history.json, the git objects it
names); no torch, no training.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = "README.md"
RESULTS_README = "results/README.md"

# --------------------------------------------------------------------------------------------
# reading the files


@cache
def text(rel: str) -> str:
    return (ROOT / rel).read_text(encoding="utf-8")


def flat(s: str) -> str:
    """Prose with its line breaks and runs of spaces folded to one space."""
    return re.sub(r"\s+", " ", s)


@cache
def table_csv(rel: str) -> tuple[dict, ...]:
    with (ROOT / rel).open(newline="", encoding="utf-8") as f:
        return tuple(csv.DictReader(f))


@cache
def json_file(rel: str):
    return json.loads(text(rel))


def fnum(s) -> float | None:
    """A CSV cell as a float; None for an empty or non-finite cell."""
    if s is None or str(s).strip() == "":
        return None
    v = float(s)
    return v if math.isfinite(v) else None


def summary(folder: str) -> str:
    return f"results/{folder}/summary.csv"


def runs(folder: str, **where) -> list[dict]:
    """The rows of results/<folder>/summary.csv whose columns equal `where` (compared as text)."""
    out = [r for r in table_csv(summary(folder))
           if all(str(r.get(k)) == str(v) for k, v in where.items())]
    assert out, f"no run in {summary(folder)} with {where}"
    return out


def col(folder: str, column: str, scale: float = 1.0, **where) -> list[float]:
    vals = [fnum(r[column]) for r in runs(folder, **where)]
    assert all(v is not None for v in vals), f"{summary(folder)}: {column} empty for {where}"
    return [v * scale for v in vals]


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def sample_std(xs: Sequence[float]) -> float:
    mu = mean(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - 1))


def mean_std(folder: str, column: str, scale: float = 100.0, **where) -> tuple[float, float]:
    """Mean and sample std over the seeds, of the fractions, then scaled (as the reports do)."""
    xs = col(folder, column, **where)
    return scale * mean(xs), scale * sample_std(xs)


def diff_spread(folder: str, column: str, a: dict, b: dict) -> tuple[float, float]:
    """(mean of b - mean of a, the larger max - min of the two groups), in % points: what
    depthlab's verdicts call the difference and the seeds' spread."""
    xa, xb = col(folder, column, **a), col(folder, column, **b)
    return 100 * (mean(xb) - mean(xa)), 100 * max(max(xa) - min(xa), max(xb) - min(xb))


def span_minutes(folder: str, **where) -> float:
    """Minutes from the first run's start to the last run's end (summary.csv started_at /
    finished_at; a resumed run's started_at is its last start, so this is the sweep's wall
    time with the pauses between sittings included)."""
    rs = runs(folder, **where)
    start = min(datetime.fromisoformat(r["started_at"]) for r in rs)
    end = max(datetime.fromisoformat(r["finished_at"]) for r in rs)
    return (end - start).total_seconds() / 60


def one_after_another(folder: str, **where) -> bool:
    rs = sorted(runs(folder, **where), key=lambda r: r["started_at"])
    return all(b["started_at"] >= a["finished_at"] for a, b in itertools.pairwise(rs))


def hours_minutes(minutes: float) -> tuple[int, int]:
    m = round(minutes)
    return m // 60, m % 60


def report_run_time(folder: str) -> float:
    """The hours or minutes number of report.md's 'Run time' line."""
    m = re.search(r"\*\*Run time:\*\* ([\d.]+) (?:h|min) of training summed",
                  text(f"results/{folder}/report.md"))
    assert m, f"results/{folder}/report.md has no run-time line"
    return float(m.group(1))


def probe(folder: str, arch: str, depth: int, norm: str, branch: str | None = None) -> dict:
    rs = [r for r in table_csv(summary(folder))
          if r["arch"] == arch and r["depth"] == str(depth) and r["norm"] == norm
          and (branch is None or r.get("branch") == branch)]
    assert len(rs) == 1, f"{summary(folder)}: {len(rs)} rows for {arch}-{depth} {norm} {branch}"
    return rs[0]


def lesion(folder: str, run: str) -> tuple[dict, list[dict], list[dict]]:
    """(the intact net's row, rows of shape-keeping blocks, rows of downsampling blocks)."""
    rs = [r for r in table_csv(f"results/{folder}/lesion.csv") if r["run"] == run]
    intact = [r for r in rs if r["status"] == "original"]
    assert len(intact) == 1, f"results/{folder}/lesion.csv: no intact row for {run}"
    blocks = [r for r in rs if r["status"] != "original"]
    keep = [r for r in blocks if r["downsampling"] == "False"]
    down = [r for r in blocks if r["downsampling"] == "True"]
    return intact[0], keep, down


def lesion_stats(folder: str, run: str) -> dict:
    intact, keep, _ = lesion(folder, run)
    errs = [float(r["test_error"]) * 100 for r in keep]
    base = float(intact["test_error"]) * 100
    return {"intact": base, "median": statistics.median(errs), "best": min(errs),
            "worst": max(errs), "n": len(errs),
            "within5": sum(1 for e in errs if e - base <= 5.0),
            "by_block": {r["block"]: float(r["test_error"]) * 100 for r in keep}}


def bench_rows() -> dict[str, dict]:
    return {r["key"]: r for r in json_file("results/benchmarks/latest.json")["rows"]}


def bench_history() -> list[dict]:
    return json_file("results/benchmarks/history.json")["runs"]


def epyc_train_range(label: str) -> tuple[float, float]:
    rs = [r["training_step_ratio"][label]["ratio"] for r in bench_history()
          if r["cpu"] == "AMD EPYC" and not r["backward_signal"]]
    return min(rs), max(rs)


# --------------------------------------------------------------------------------------------
# comparing a printed number with the file's value

NUM = r"[+\-\u2212]?\d[\d,]*(?:\.\d+)?(?:e[+\-]?\d+)?"


def printed_as(token: str, value) -> bool:
    """Is `token` (as the README prints it) `value` rounded to the token's own precision?
    Decimals for fixed notation ("53.1", "+0.53", "1,202"), significant figures for
    e-notation ("3e-4", "1.1e-27"); a sign of zero is ignored ("-0.0" == "0.0"). A value
    within float noise (1e-9 relative) of a rounding midpoint may be printed either way
    (50.15 from two different summation orders is 50.1 or 50.2)."""
    if value is None:
        return False
    v = float(value)
    if not math.isfinite(v):
        return False
    t = token.replace("\u2212", "-").replace(",", "")
    m = re.fullmatch(r"([+-]?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?", t)
    if m is None:
        return False
    if m.group(4) is not None:
        digits = (m.group(2) + (m.group(3) or "")).lstrip("0") or "0"
        spec = f".{max(len(digits) - 1, 0)}e"
    else:
        spec = f".{len(m.group(3) or '')}f"
    eps = 1e-9 * abs(v)
    return any(float(format(x, spec)) == float(t) for x in (v, v - eps, v + eps))


@dataclass(frozen=True)
class Expect:
    """Text with `{}` where each number stands, and the numbers (from the files)."""
    pattern: str
    values: tuple = ()

    def __post_init__(self):
        assert self.pattern.count("{}") == len(self.values), (self.pattern, self.values)

    def regex(self) -> str:
        parts = flat(self.pattern).split("{}")
        return f"({NUM})".join(re.escape(p) for p in parts)

    def show(self) -> str:
        return flat(self.pattern).format(*(f"{v:.4g}" if isinstance(v, float) else v
                                          for v in self.values))


def check_cell(cell: str, exp: Expect | str) -> str | None:
    """None when the table cell says what the file says, else what differs."""
    exp = Expect(exp) if isinstance(exp, str) else exp
    m = re.fullmatch(exp.regex(), flat(cell).strip())
    if m is None:
        return f"{cell!r} is not of the form {exp.show()!r}"
    bad = [f"{tok} (file: {v:.6g})" for tok, v in zip(m.groups(), exp.values)
           if not printed_as(tok, v)]
    return f"{cell!r}: {', '.join(bad)}" if bad else None


def check_quote(doc_text: str, exp: Expect) -> str | None:
    """None when the prose holds the sentence with the file's numbers, else what differs."""
    found = list(re.finditer(exp.regex(), flat(doc_text)))
    if not found:
        return f"no sentence of the form {exp.show()!r} (reworded? update the check)"
    for m in found:
        if all(printed_as(tok, v) for tok, v in zip(m.groups(), exp.values)):
            return None
    return f"it says {found[0].group(0)!r}; the files say {exp.show()!r}"


def doc_table(doc_text: str, header: str) -> list[list[str]]:
    """The rows (cells stripped) of the markdown table whose header line is `header`."""
    lines = doc_text.splitlines()
    at = [i for i, line in enumerate(lines) if line.strip() == header.strip()]
    assert len(at) == 1, f"{len(at)} tables with the header {header!r}"
    out = []
    for line in lines[at[0] + 2:]:
        if not line.startswith("|"):
            break
        out.append(split_row(line))
    return out


def split_row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def compare_table(doc_rows: list[list[str]], expected: list[list[Expect | str]]) -> list[str]:
    """Every cell of the document's table against the expected one; the differences."""
    out = []
    if len(doc_rows) != len(expected):
        out.append(f"{len(doc_rows)} rows, the file has {len(expected)}")
    for i, (drow, erow) in enumerate(zip(doc_rows, expected), start=1):
        if len(drow) != len(erow):
            out.append(f"row {i}: {len(drow)} cells, expected {len(erow)}")
            continue
        for j, (cell, exp) in enumerate(zip(drow, erow), start=1):
            err = check_cell(cell, exp)
            if err:
                out.append(f"row {i} ({drow[0]}), column {j}: {err}")
    return out


# --------------------------------------------------------------------------------------------
# the tables


def fig6_rows() -> list[list[Expect]]:
    """README's Fig. 6 recipe table: train / test error %, mean ± std, plain then residual."""
    rows = []
    for d in (20, 32, 44, 56):
        cells: list[Expect] = [Expect("{}", (d,))]
        for arch in ("plain", "residual"):
            cells.append(Expect("{} ± {} / {} ± {}", (
                *mean_std("cifar10-fig6", "final_train_error", arch=arch, depth=d),
                *mean_std("cifar10-fig6", "final_test_error", arch=arch, depth=d))))
        rows.append(cells)
    return rows


def degradation_rows(split: bool) -> list[list[Expect]]:
    f = "cifar10-degradation"
    rows = []
    for d in (20, 32, 44, 56):
        cells: list[Expect] = [Expect("{}", (d,))]
        for arch in ("plain", "residual"):
            tr = mean_std(f, "final_train_error", arch=arch, depth=d)
            te = mean_std(f, "final_test_error", arch=arch, depth=d)
            cells += ([Expect("{} ± {}", tr), Expect("{} ± {}", te)] if split
                      else [Expect("{} ± {} / {} ± {}", (*tr, *te))])
        if not split:
            for arch in ("plain", "residual"):
                cells.append(Expect("{} -> {}", (
                    mean(col(f, "log10_grad_ratio_init", arch=arch, depth=d)),
                    mean(col(f, "log10_grad_ratio", arch=arch, depth=d)))))
        rows.append(cells)
    return rows


INIT_STARTS = [  # label, arch, start, last cell (the word follows the sign of 56 - 20)
    ("paper (kaiming init, full lr)", "residual", "paper", "{word} {} points (seed spread {})"),
    ("zero-init residual branches", "residual", "zero_init", "{word} {} (spread {})"),
    ("lr warm-up over epoch 1", "residual", "warmup", "{word} {} (spread {})"),
    ("plain net, warm-up (control)", "plain", "warmup", "{word} {} (spread {})"),
]


def init_rows() -> list[list[Expect]]:
    f, rows = "cifar10-init", []
    for label, arch, start, last in INIT_STARTS:
        v = f"{arch} (start={start})"
        cells: list[Expect | str] = [label]
        for d in (20, 56):
            cells.append(Expect("{} ± {} / {} ± {}", (
                *mean_std(f, "final_train_error", depth=d, variant=v),
                *mean_std(f, "final_test_error", depth=d, variant=v))))
        diff, spread = diff_spread(f, "final_train_error", {"depth": 20, "variant": v},
                                   {"depth": 56, "variant": v})
        word = "worse by" if diff > 0 else "**lower** by"
        cells.append(Expect(last.replace("{word}", word), (abs(diff), spread)))
        rows.append(cells)
    return rows


def probe_entry(row: dict, column: str, words: dict[str, str]) -> Expect:
    """A number, or for a non-finite mean the word the table uses for the row's note."""
    v = fnum(row[column])
    if v is not None:
        return Expect("{}", (v,))
    for note, word in words.items():
        if note in row["note"]:
            return Expect(word)
    return Expect(f"<non-finite with an unknown note: {row['note']!r}>")


def joined(entries: list[Expect], sep: str) -> Expect:
    return Expect(sep.join(e.pattern for e in entries), sum((e.values for e in entries), ()))


PROBE_WORDS = {"first-layer gradient overflows": "overflow",
               "last-layer gradient underflows to 0": "last layer underflows to 0",
               "activations overflow": "activations overflow"}
STD_WORDS = {"": "overflow"}  # a non-finite last-block std: the activations overflowed


def probe_rows() -> list[list[Expect | str]]:
    rows = []
    for arch, norm in (("plain", "batch"), ("plain", "none"), ("residual", "batch"),
                       ("residual", "none")):
        ps = [probe("probe", arch, d, norm) for d in (20, 56, 110, 218, 1202)]
        rows.append([arch, norm,
                     joined([probe_entry(p, "log10_ratio_mean", PROBE_WORDS) for p in ps], " / "),
                     joined([probe_entry(p, "act_std_final_mean", STD_WORDS)
                             for p in (ps[0], ps[-1])], " -> ")])
    return rows


NORMFREE_WORDS = {"first-layer gradient overflows": "overflow",
                  "last-layer gradient underflows to 0": "underflow",
                  "activations overflow": "overflow"}


def probe_normfree_rows() -> list[list[Expect | str]]:
    rows = []
    for label, arch, norm, branch in (
            ("plain", "plain", "batch", "standard"), ("plain", "plain", "none", "standard"),
            ("residual", "residual", "batch", "standard"),
            ("residual", "residual", "none", "standard"),
            ("residual SkipInit", "residual", "none", "skipinit"),
            ("residual ReZero", "residual", "none", "rezero"),
            ("residual Fixup", "residual", "none", "fixup")):
        ps = [probe("probe-normfree", arch, d, norm, branch) for d in (20, 56, 218, 1202)]
        std = joined([probe_entry(p, "act_std_final_mean", STD_WORDS) for p in (ps[0], ps[-1])],
                     " -> ")
        if branch == "fixup":  # no finite ratio anywhere, by construction: said in words
            zero = all(fnum(p["log10_ratio_mean"]) is None and fnum(p["log10_back_ratio_mean"])
                       is None and "no gradient below the classifier" in p["note"] for p in ps)
            rows.append([label, norm,
                         "0 below the classifier (it starts at 0)" if zero else "<a finite ratio>",
                         "0 at every block" if zero else "<a finite ratio>", std])
            continue
        rows.append([label, norm,
                     joined([probe_entry(p, "log10_ratio_mean", NORMFREE_WORDS) for p in ps],
                            " / "),
                     joined([probe_entry(p, "log10_back_ratio_mean", NORMFREE_WORDS)
                             for p in ps], " / "),
                     std])
    return rows


def lesion_rows() -> list[list[Expect | str]]:
    rows = []
    for label, folder, run, down_text in (
            ("residual-56", "lesion-56", "residual-56-s0", None),
            ("plain-56", "lesion-56", "plain-56-s0", "n/a (shape changes)"),
            ("residual-20", "lesion-20", "residual-20-s0", None),
            ("plain-20", "lesion-20", "plain-20-s0", "n/a")):
        s = lesion_stats(folder, run)
        _, _, down = lesion(folder, run)
        if down_text is None:
            down_cell = Expect(", ".join("{}%" for _ in down),
                               tuple(float(r["test_error"]) * 100 for r in down))
        else:
            down_cell = Expect(down_text if all(r["status"] == "n/a" for r in down)
                               else "<downsampling blocks were deleted>")
        rows.append([label, Expect("{}%", (s["intact"],)),
                     Expect("{}% ({} - {}%)", (s["median"], s["best"], s["worst"])),
                     Expect("{} of {}", (s["within5"], s["n"])), down_cell])
    return rows


BENCH_HEADER = ("| benchmark | depthlab | baseline | ratio (median) | spread (min-max) | target "
                "| met | reps |")


def benchmark_rows() -> list[list[str]]:
    return doc_table(text("results/benchmarks/latest.md"), BENCH_HEADER)


def paper_rows() -> list[list[str]]:
    m = re.search(r"ResNet-20/32/44/56/110 = ([\d./]+) %",
                  text("conf/experiment/resnet_cifar_paper.yaml"))
    assert m, "resnet_cifar_paper.yaml no longer quotes the paper's test errors"
    gpu = (ROOT / "results/gpu-fig6").exists()
    return [["ResNet paper, residual test error % (He et al. 2015, Table 6)",
             *m.group(1).split("/")],
            ["depthlab, this recipe",
             "<results/gpu-fig6/ exists: put its numbers here>" if gpu
             else "not run yet: no GPU was lent to the sessions so far", "", "", "", ""]]


@dataclass(frozen=True)
class TableCheck:
    doc: str
    header: str
    source: str
    build: Callable[[], list[list[Expect | str]]]


TABLES = [
    TableCheck(README, "| depth | plain: train / test error % | residual: train / test error % "
               "| log10 first/last gradient, plain: init -> end | residual: init -> end |",
               "results/cifar10-degradation/summary.csv", lambda: degradation_rows(split=False)),
    TableCheck(README, "| depth | plain | residual |", "results/cifar10-fig6/summary.csv", fig6_rows),
    TableCheck(README, "| start | residual-20 train / test % | residual-56 train / test % "
               "| residual-56 vs residual-20 |", "results/cifar10-init/summary.csv", init_rows),
    TableCheck(README, "| arch | norm | log10 first/last gradient at depth 20 / 56 / 110 / 218 "
               "/ 1202 | last block output std, 20 -> 1202 |", "results/probe/summary.csv",
               probe_rows),
    TableCheck(README, "| net | intact | one block deleted: median (best - worst) | within 5 "
               "points of intact | downsampling blocks deleted |",
               "results/lesion-56/lesion.csv, results/lesion-20/lesion.csv", lesion_rows),
    TableCheck(README, BENCH_HEADER, "results/benchmarks/latest.md", benchmark_rows),
    TableCheck(RESULTS_README, "| depth | plain train % | plain test % | residual train % "
               "| residual test % |", "results/cifar10-degradation/summary.csv",
               lambda: degradation_rows(split=True)),
    TableCheck(RESULTS_README, "| net | norm | log10 first/last weight gradient, depth 20 / 56 "
               "/ 218 / 1202 | log10 back first/last, 20 / 56 / 218 / 1202 | last block output "
               "std, 20 -> 1202 |", "results/probe-normfree/summary.csv", probe_normfree_rows),
    TableCheck(RESULTS_README, "| depth | 20 | 32 | 44 | 56 | 110 |",
               "conf/experiment/resnet_cifar_paper.yaml (the paper's numbers)", paper_rows),
]


@pytest.mark.parametrize("check", TABLES, ids=lambda c: f"{c.doc}:{c.source.split(',')[0]}")
def test_table_matches_its_file(check: TableCheck):
    diffs = compare_table(doc_table(text(check.doc), check.header), check.build())
    assert not diffs, f"{check.doc}, the table copied from {check.source}:\n  " + "\n  ".join(diffs)


def test_every_results_table_is_checked():
    """A new markdown table in either README that quotes results/ must get a TableCheck."""
    checked = {(c.doc, c.header.strip()) for c in TABLES}
    not_results = {"| command | what it does |", "| folder | what it shows | command |"}
    missing = []
    for doc in (README, RESULTS_README):
        lines = text(doc).splitlines()
        for i, line in enumerate(lines[:-1]):
            if line.startswith("|") and re.fullmatch(r"\|(\s*-+\s*\|)+", lines[i + 1].strip()):
                header = line.strip()
                if (doc, header) not in checked and header not in not_results:
                    missing.append(f"{doc}: {header}")
    assert not missing, "tables with no TableCheck:\n  " + "\n  ".join(missing)


# --------------------------------------------------------------------------------------------
# numbers in the prose


@dataclass(frozen=True)
class Quote:
    doc: str
    pattern: str  # the sentence, `{}` for each number
    source: str  # the file the numbers come from
    values: Callable[[], tuple]


def q(doc: str, pattern: str, source: str, values: Callable[[], tuple]) -> Quote:
    return Quote(doc, pattern, source, values)


DEG, FULL, GRAD, INIT, NF = ("cifar10-degradation", "cifar10-fulldata", "cifar10-gradflow",
                             "cifar10-init", "cifar10-normfree")
S_DEG, S_FULL, S_GRAD, S_INIT, S_NF = (summary(f) for f in (DEG, FULL, GRAD, INIT, NF))


def m(folder: str, column: str = "final_train_error", scale: float = 100, **where) -> float:
    return scale * mean(col(folder, column, **where))


def steps(folder: str, **where) -> float:
    vals = {fnum(r["total_steps"]) for r in runs(folder, **where)}
    assert len(vals) == 1, f"{summary(folder)}: runs of different lengths {vals}"
    return vals.pop()


def deg_diffs() -> list[float]:  # residual below plain at each depth, % points
    return [-diff_spread(DEG, "final_train_error", {"arch": "plain", "depth": d},
                         {"arch": "residual", "depth": d})[0] for d in (20, 32, 44, 56)]


def deg_residual_ratios() -> list[float]:
    return [mean(col(DEG, c, arch="residual", depth=d))
            for d in (20, 32, 44, 56) for c in ("log10_grad_ratio_init", "log10_grad_ratio")]


def init_diff(start: str, arch: str = "residual") -> tuple[float, float]:
    v = f"{arch} (start={start})"
    return diff_spread(INIT, "final_train_error", {"depth": 20, "variant": v},
                       {"depth": 56, "variant": v})


def nf_branch(branch: str) -> dict:
    return {"variant": f"residual (branch={branch}, norm=none)"}


NF_RUNS = {"group": "cifar10-normfree"}
NF_BN_RERUN = {"group": "cifar10-init"}


def nf_over_bn20() -> tuple[float, float]:
    bn20 = m(INIT, depth=20, variant="residual (start=paper)")
    gaps = [m(NF, depth=d, **nf_branch(b)) - bn20 for b in ("skipinit", "rezero") for d in (20, 56)]
    return min(gaps), max(gaps)


def pr(folder: str, arch: str, depth: int, norm: str, column: str, branch: str | None = None):
    return fnum(probe(folder, arch, depth, norm, branch)[column])


def probe_std(arch: str, depth: int, norm: str) -> float:
    return pr("probe", arch, depth, norm, "log10_ratio_std")


def probe_std_typical() -> tuple[float, float]:
    """The spread of every finite row but the three named as exceptions."""
    named = {("plain", "218", "batch"), ("plain", "110", "none"), ("plain", "218", "none")}
    stds = [fnum(r["log10_ratio_std"]) for r in table_csv(summary("probe"))
            if (r["arch"], r["depth"], r["norm"]) not in named]
    stds = [s for s in stds if s is not None]
    return min(stds), max(stds)


def probe_slope() -> float:
    a, b = pr("probe", "plain", 20, "batch", "log10_ratio_mean"), pr("probe", "plain", 218,
                                                                     "batch", "log10_ratio_mean")
    return (b - a) / (218 - 20)


def probe_bn_drop(arch: str, depth: int) -> float:
    return (pr("probe", arch, depth, "batch", "log10_ratio_mean")
            - pr("probe", arch, depth, "none", "log10_ratio_mean"))


def residual_probe_max_abs(norm: str = "batch") -> float:
    return max(abs(pr("probe", "residual", d, norm, "log10_ratio_mean"))
               for d in (20, 56, 110, 218, 1202))


def nf_probe_range(branches: tuple[str, ...], norm: str, column: str) -> tuple[float, float]:
    vals = [pr("probe-normfree", "residual", d, norm, column, b)
            for b in branches for d in (20, 56, 110, 218, 1202)]
    return min(vals), max(vals)


def same_decade(values: list[float]) -> float:
    """The power of ten every value rounds to; NaN (a mismatch) when they do not agree."""
    decades = {round(v) for v in values}
    return float(decades.pop()) if len(decades) == 1 else float("nan")


def les(folder: str, run: str, key: str):
    return lesion_stats(folder, run)[key]


def bench(key: str, field: str = "ratio", scale: float = 1.0) -> float:
    return bench_rows()[key][field] * scale


def bench_parts(key: str) -> dict:
    return bench_rows()[key]["detail"]["probe_parts_ms"]


def bench_seconds_range() -> tuple[float, float]:
    secs = [r["seconds"] for r in bench_history()]
    return min(secs), max(secs)


def epyc_date() -> str:
    """The one day of the EPYC runs before the backward signal, the README says "the three"."""
    epyc = [r for r in bench_history() if r["cpu"] == "AMD EPYC" and not r["backward_signal"]]
    days = {r["date"][:10] for r in epyc}
    assert len(epyc) == 3 and len(days) == 1, (len(epyc), days)
    return days.pop()


def last_epyc_parts() -> dict:
    """The last EPYC run before the backward signal ("on the EPYC before the backward signal")."""
    epyc = [r for r in bench_history() if r["cpu"] == "AMD EPYC" and not r["backward_signal"]]
    return epyc[-1]["gradflow_parts_ms_residual20"]


def reproduce_times() -> tuple[float, ...]:
    return (span_minutes(DEG), span_minutes(GRAD, group="cifar10-gradflow"), span_minutes(FULL),
            span_minutes(INIT), span_minutes(NF, **NF_RUNS), span_minutes("cifar10-bf16"),
            span_minutes("cifar10-blocks"), span_minutes("cifar10-fig6"))


def reproduce_total() -> tuple[float, float]:
    total = sum(round(t) for t in reproduce_times())
    return total, total / 60


R, RR = README, RESULTS_README
F6 = "cifar10-fig6"
QUOTES = [
    # README, "What it finds": the Fig. 6 recipe
    q(R, "16 runs, {} min from the first run's start to the last run's end", summary(F6),
      lambda: (span_minutes(F6),)),
    q(R, "raises the training error, {}% -> {}% from 20 to 56 layers (seed spread {}).",
      summary(F6), lambda: (m(F6, arch="plain", depth=20), m(F6, arch="plain", depth=56),
                            diff_spread(F6, "final_train_error", {"arch": "plain", "depth": 20},
                                        {"arch": "plain", "depth": 56})[1])),
    q(R, "residual-20 ({}% and {}% vs {}%, beyond the seeds' spread)", summary(F6),
      lambda: (m(F6, arch="residual", depth=32), m(F6, arch="residual", depth=44),
               m(F6, arch="residual", depth=20))),
    q(R, "residual-56 does not ({}% vs {}%: within the sampling", summary(F6),
      lambda: (m(F6, arch="residual", depth=56), m(F6, arch="residual", depth=20))),
    q(RR, "(16 runs, two at a time on the idle AMD EPYC VM, 2026-12-07, as two sweeps side by side, "
      "`arch=residual` and `arch=plain`, which this command resumes to: {} min from the first "
      "run's start", summary(F6), lambda: (span_minutes(F6),)),
    # README, "What it finds": the degradation sweep
    q(R, "624 SGD steps, about {}% of the paper's schedule", S_DEG,
      lambda: (100 * steps(DEG) / 64000,)),
    q(R, "JPEG re-encoded copy; {} SGD steps", S_DEG, lambda: (steps(DEG),)),
    q(R, "{} h of training summed over the 16 runs", f"results/{DEG}/report.md",
      lambda: (report_run_time(DEG),)),
    q(R, "({} min from the first run's start to the last run's end, over three sittings", S_DEG,
      lambda: (span_minutes(DEG),)),
    q(R, "Training error rises with every step in depth, {}% -> {}% from 20 to 56 layers, far "
      "beyond the seeds' spread ({} points)", S_DEG,
      lambda: (m(DEG, arch="plain", depth=20), m(DEG, arch="plain", depth=56),
               diff_spread(DEG, "final_train_error", {"arch": "plain", "depth": 20},
                           {"arch": "plain", "depth": 56})[1])),
    q(R, "(by {} to {} points, beyond the spread)", S_DEG,
      lambda: (min(deg_diffs()), max(deg_diffs()))),
    q(R, "depth** ({}% -> {}%)", S_DEG,
      lambda: (m(DEG, arch="residual", depth=20), m(DEG, arch="residual", depth=56))),
    q(R, "is not reproduced in {} steps. Nor in {}:", f"{S_DEG}, {S_FULL}",
      lambda: (steps(DEG), steps(FULL))),
    q(R, "residual-20 / residual-56 end at {}% / {}% training error and plain-20 / plain-56 at "
      "{}% / {}%; the shortcut's advantage at depth 56 grows to {} points", S_FULL,
      lambda: (m(FULL, arch="residual", depth=20), m(FULL, arch="residual", depth=56),
               m(FULL, arch="plain", depth=20), m(FULL, arch="plain", depth=56),
               m(FULL, arch="plain", depth=56) - m(FULL, arch="residual", depth=56))),
    q(R, "gets *more* gradient than its last, 10^{} times at depth 20 and 10^{} at 56", S_DEG,
      lambda: (m(DEG, "log10_grad_ratio_init", 1, arch="plain", depth=20),
               m(DEG, "log10_grad_ratio_init", 1, arch="plain", depth=56))),
    q(R, "by the end plain-56's first layer gets 10^{} of its last layer's gradient vs 10^{} in "
      "plain-20", S_DEG,
      lambda: (m(DEG, "log10_grad_ratio", 1, arch="plain", depth=56),
               m(DEG, "log10_grad_ratio", 1, arch="plain", depth=20))),
    q(R, "Residual nets' ratio stays between 10^{} and 10^{} at every depth, at init and at the "
      "end", S_DEG, lambda: (min(deg_residual_ratios()), max(deg_residual_ratios()))),
    q(R, "shows the initialisation side up to {} layers", "results/probe/probe.json",
      lambda: (max(json_file("results/probe/probe.json")["settings"]["depths"]),)),
    q(R, "leaves {} of its {} non-downsampling blocks within 5 points of the intact error ({}%; "
      "median {}%), while the plain-56 goes toward chance (median {}%)",
      "results/lesion-56/lesion.csv",
      lambda: (les("lesion-56", "residual-56-s0", "within5"), les("lesion-56", "residual-56-s0", "n"),
               les("lesion-56", "residual-56-s0", "intact"),
               les("lesion-56", "residual-56-s0", "median"),
               les("lesion-56", "plain-56-s0", "median"))),
    # README: the start ablation
    q(R, "(an Intel Xeon; 16 runs, two at a time, {} h {} min from the first run's start to the "
      "last run's end)", S_INIT, lambda: hours_minutes(span_minutes(INIT))),
    q(R, "one seed ends near chance ({}%), the other at {}%", S_INIT,
      lambda: tuple(col(INIT, "final_train_error", 100, depth=56,
                        variant="residual (start=paper)"))),
    q(R, "remove most of the gap: {} points become {}, or residual-56 ends {} points *below* "
      "residual-20", S_INIT,
      lambda: (init_diff("paper")[0], init_diff("warmup")[0], -init_diff("zero_init")[0])),
    q(R, "Zero-init costs the shallow net {} points", S_INIT,
      lambda: (m(INIT, depth=20, variant="residual (start=zero_init)")
               - m(INIT, depth=20, variant="residual (start=paper)"),)),
    q(R, "still leaves residual-56 ({}%) {} points above residual-20 ({}%) on {} steps", S_INIT,
      lambda: (m(INIT, depth=56, variant="residual (start=warmup)"), init_diff("warmup")[0],
               m(INIT, depth=20, variant="residual (start=warmup)"), steps(INIT))),
    q(R, "degrades with the warm-up too ({}% -> {}%)", S_INIT,
      lambda: (m(INIT, depth=20, variant="plain (start=warmup)"),
               m(INIT, depth=56, variant="plain (start=warmup)"))),
    # README: norm-free nets
    q(R, "start, {} runs, {} min of wall time two at a time on this VM", S_NF,
      lambda: (len(runs(NF, **NF_RUNS)), span_minutes(NF, **NF_RUNS))),
    q(R, "Training error % at 20 / 56: SkipInit {} ± {} / {} ± {}, ReZero {} ± {} / {} ± {} "
      "(deeper lower by {} and {} points, just beyond the spreads of {} and {}); Fixup {} ± {} / "
      "{} ± {}, where one seed of Fixup-56 ended at chance ({}%, with no finite gradient ratio at "
      "the end). Both stay {}-{} points above batch-norm residual-20 ({}%)", S_NF,
      lambda: (*mean_std(NF, "final_train_error", depth=20, **nf_branch("skipinit")),
               *mean_std(NF, "final_train_error", depth=56, **nf_branch("skipinit")),
               *mean_std(NF, "final_train_error", depth=20, **nf_branch("rezero")),
               *mean_std(NF, "final_train_error", depth=56, **nf_branch("rezero")),
               -diff_spread(NF, "final_train_error", {"depth": 20, **nf_branch("skipinit")},
                            {"depth": 56, **nf_branch("skipinit")})[0],
               -diff_spread(NF, "final_train_error", {"depth": 20, **nf_branch("rezero")},
                            {"depth": 56, **nf_branch("rezero")})[0],
               diff_spread(NF, "final_train_error", {"depth": 20, **nf_branch("skipinit")},
                           {"depth": 56, **nf_branch("skipinit")})[1],
               diff_spread(NF, "final_train_error", {"depth": 20, **nf_branch("rezero")},
                           {"depth": 56, **nf_branch("rezero")})[1],
               *mean_std(NF, "final_train_error", depth=20, **nf_branch("fixup")),
               *mean_std(NF, "final_train_error", depth=56, **nf_branch("fixup")),
               max(col(NF, "final_train_error", 100, depth=56, **nf_branch("fixup"))),
               *nf_over_bn20(), m(INIT, depth=20, variant="residual (start=paper)"))),
    # README: the probe
    q(R, "depthlab probe # the default grid below: {} s on this 2-core CPU",
      "results/probe/probe.json", lambda: (json_file("results/probe/probe.json")["wall_seconds"],)),
    q(R, "(mean over {} seeds; sample std over the seeds {} to {} decades, except plain-218 with "
      "batch norm ({}) and the un-normalised plain-110 and plain-218 ({}, {}); residual nets use "
      "shortcut A; the default grid took {} s, `results/probe/probe.json`.)",
      "results/probe/summary.csv, results/probe/probe.json",
      lambda: (json_file("results/probe/probe.json")["settings"]["seeds"], *probe_std_typical(),
               probe_std("plain", 218, "batch"), probe_std("plain", 110, "none"),
               probe_std("plain", 218, "none"), json_file("results/probe/probe.json")["wall_seconds"])),
    q(R, "keep the first layer's gradient within a factor of {} of the last layer's at every depth "
      "from 20 to 1202 layers", "results/probe/summary.csv",
      lambda: (math.ceil(10 ** residual_probe_max_abs()),)),
    q(R, "grows by about {} decades per layer toward the input, 10^{} times the last layer's at "
      "depth 56, 10^{} at 218", "results/probe/summary.csv",
      lambda: (probe_slope(), pr("probe", "plain", 56, "batch", "log10_ratio_mean"),
               pr("probe", "plain", 218, "batch", "log10_ratio_mean"))),
    q(R, "by orders of magnitude ({} decades at depth 56, {} at depth 218) while a residual net's "
      "moves by less than {} decades at every depth", "results/probe/summary.csv",
      lambda: (probe_bn_drop("plain", 56), probe_bn_drop("plain", 218),
               math.ceil(10 * max(abs(probe_bn_drop("residual", d)) for d in (20, 56, 110, 218)))
               / 10)),
    q(R, "the last block's output std falls from {} (depth 20) to {} (218) and {} (1202)",
      "results/probe/summary.csv",
      lambda: tuple(pr("probe", "plain", d, "none", "act_std_final_mean") for d in (20, 218, 1202))),
    q(R, "adds its branch's variance to the signal: output std {} at depth 218",
      "results/probe/summary.csv", lambda: (pr("probe", "residual", 218, "none",
                                                "act_std_final_mean"),)),
    # README: lesion
    q(R, "results/lesion-56`, {} min on this 2-core CPU (`results/lesion-56/timing.json`)",
      "results/lesion-56/timing.json",
      lambda: (json_file("results/lesion-56/timing.json")["wall_minutes"],)),
    q(R, "(the exceptions are the first two blocks after the stem, `layer1.0` at {}% and "
      "`layer1.1` at {}%, and `layer2.2` at {}%)", "results/lesion-56/lesion.csv",
      lambda: tuple(les("lesion-56", "residual-56-s0", "by_block")[b]
                    for b in ("layer1.0", "layer1.1", "layer2.2"))),
    q(R, "At depth 20 every residual block matters (+{} to +{} points)",
      "results/lesion-20/lesion.csv",
      lambda: (les("lesion-20", "residual-20-s0", "best") - les("lesion-20", "residual-20-s0",
                                                                   "intact"),
               les("lesion-20", "residual-20-s0", "worst") - les("lesion-20", "residual-20-s0",
                                                                    "intact"))),
    # README: the benchmark
    q(R, "# about {}-{} minutes on 2 CPU cores; writes results/benchmarks/latest.md",
      "results/benchmarks/history.json",
      lambda: tuple(s / 60 for s in bench_seconds_range())),
    q(R, "[`results/benchmarks/latest.md`](results/benchmarks/latest.md)), measured {}-{}-{} on",
      "results/benchmarks/latest.json",
      lambda: tuple(float(x) for x in
                    json_file("results/benchmarks/latest.json")["date"][:10].split("-"))),
    q(R, "the three full runs on the AMD EPYC VM that git history holds ({}-{}-{}, before the "
      "backward signal was added;", "results/benchmarks/history.json",
      lambda: tuple(float(x) for x in epyc_date().split("-"))),
    q(R, "(depthlab and the baseline interleaved rep by rep, {} reps,",
      "results/benchmarks/latest.json",
      lambda: (json_file("results/benchmarks/latest.json")["settings"]["reps"],)),
    q(R, "with `python scripts/benchmark.py --profile` ({} s):", "results/benchmarks/latest.json",
      lambda: (json_file("results/benchmarks/latest.json")["seconds"],)),
    q(R, "ranged {}-{}x (residual-20), {}-{}x (residual-50) and {}-{}x (dense-BC-100); here {}x, "
      "{}x and {}x, the probe now costing {}-{}% of a step. The six committed runs took {}-{} s "
      "each.", "results/benchmarks/history.json, results/benchmarks/latest.json",
      lambda: (*epyc_train_range("residual-20 (cifar)"),
               *epyc_train_range("residual-50 (imagenet, 32 px)"),
               *epyc_train_range("dense-BC-100 (cifar)"),
               bench("train/residual-20-cifar"), bench("train/residual-50-imagenet"),
               bench("train/dense-100-cifar"),
               min(bench(k, scale=100) for k in bench_rows() if k.startswith("gradflow/share/")),
               max(bench(k, scale=100) for k in bench_rows() if k.startswith("gradflow/share/")),
               *bench_seconds_range())),
    q(R, "The share misses 2% in all three rows ({}%, {}%, {}%)", "results/benchmarks/latest.json",
      lambda: tuple(bench(f"gradflow/share/{k}", scale=100)
                    for k in ("residual-20-cifar", "residual-50-imagenet", "dense-100-cifar"))),
    q(R, "residual-20: {} ms in the block hooks (on each of {} block outputs",
      "results/benchmarks/latest.json",
      lambda: (bench_parts("gradflow/share/residual-20-cifar")["hooks"],
               bench_rows()["gradflow/share/residual-20-cifar"]["detail"]["blocks"])),
    q(R, "for ||dL/dh||; {} ms on the EPYC before the backward signal), {} ms in the record (one "
      "batched `torch._foreach_norm` over {} weights and their gradients, one host copy), {} ms "
      "writing `gradflow.csv`.", "results/benchmarks/history.json, results/benchmarks/latest.json",
      lambda: (last_epyc_parts()["hooks"], bench_parts("gradflow/share/residual-20-cifar")["record"],
               bench_rows()["gradflow/share/residual-20-cifar"]["detail"]["layers"],
               bench_parts("gradflow/share/residual-20-cifar")["write"])),
    q(R, "residual-50 at 32x32 and batch 4: {} ms of its {} ms is the record",
      "results/benchmarks/latest.json",
      lambda: (bench_parts("gradflow/share/residual-50-imagenet")["record"],
               bench("gradflow/share/residual-50-imagenet", "depthlab"))),
    # results/README: the folder table
    q(RR, "({} min of training summed over the 4 runs; two at a time, {} min from the first "
      "run's start to the last run's end in its `summary.csv`)", S_FULL,
      lambda: (report_run_time(FULL), span_minutes(FULL))),
    q(RR, "on all 50,000 training images, 4 epochs ({} steps), one seed", S_FULL,
      lambda: (steps(FULL),)),
    q(RR, "(two at a time on the Intel Xeon VM, 2026-12-01: {} h {} min from the first run's "
      "start to the last run's end in its `summary.csv`; the report's {} h sum is inflated",
      f"{S_INIT}, results/{INIT}/report.md",
      lambda: (*hours_minutes(span_minutes(INIT)), report_run_time(INIT))),
    q(RR, "Training error %, 20 / 56: SkipInit {} ± {} / {} ± {}, ReZero {} ± {} / {} ± {}, "
      "Fixup {} ± {} / {} ± {}, batch norm {} ± {} / {} ± {} |", f"{S_NF}",
      lambda: (*(x for b in ("skipinit", "rezero", "fixup") for d in (20, 56)
                 for x in mean_std(NF, "final_train_error", depth=d, **nf_branch(b))),
               *mean_std(NF, "final_train_error", depth=20, **NF_BN_RERUN),
               *mean_std(NF, "final_train_error", depth=56, **NF_BN_RERUN))),
    q(RR, "({} runs, {} min of wall time two at a time on the Intel Xeon VM, 2026-12-01; the {} "
      "batch-norm runs re-run with the `cifar10-init` command and `start=paper` took {} min", S_NF,
      lambda: (len(runs(NF, **NF_RUNS)), span_minutes(NF, **NF_RUNS), len(runs(NF, **NF_BN_RERUN)),
               span_minutes(NF, **NF_BN_RERUN))),
    q(RR, "({} s wall, `timing.json`; {} s of it probing, `probe.json`;",
      "results/probe-normfree/timing.json, results/probe-normfree/probe.json",
      lambda: (json_file("results/probe-normfree/timing.json")["wall_seconds"],
               json_file("results/probe-normfree/probe.json")["wall_seconds"])),
    q(RR, "and `cifar10-fig6/`. Its sweeps took {} min, about {} h, on 2 cores",
      "scripts/reproduce_cifar10.sh's header, results/*/summary.csv", reproduce_total),
    # results/README: what they show
    q(RR, "class-balanced 10,000-image subset = {} SGD steps, full 10,000-image test set; {} h of "
      "training summed over the 16 runs, two at a time, {} min from the first run's start to the "
      "last run's end in three sittings", f"{S_DEG}, results/{DEG}/report.md",
      lambda: (steps(DEG), report_run_time(DEG), span_minutes(DEG))),
    q(RR, "every step in depth raises the training error, {} points from 20 to 56 layers against "
      "a seed spread of {} points", S_DEG,
      lambda: diff_spread(DEG, "final_train_error", {"arch": "plain", "depth": 20},
                          {"arch": "plain", "depth": 56})),
    q(RR, "same depth at every depth (by {} to {} points, each beyond the seeds' spread), but on "
      "this budget they also get worse with depth (+{} points from 20 to 56)", S_DEG,
      lambda: (min(deg_diffs()), max(deg_diffs()),
               diff_spread(DEG, "final_train_error", {"arch": "residual", "depth": 20},
                           {"arch": "residual", "depth": 56})[0])),
    q(RR, "is **not** reproduced in {} steps, about {}% of the paper's 64,000 iterations", S_DEG,
      lambda: (steps(DEG), 100 * steps(DEG) / 64000)),
    q(RR, "(`cifar10-fulldata/`, 4 epochs = {} steps, one seed) does not change that either: "
      "residual-20 {}% vs residual-56 {}% training error (plain-20 {}%, plain-56 {}%: the plain "
      "net's degradation and the shortcut's advantage at depth 56, {} points,", S_FULL,
      lambda: (steps(FULL), m(FULL, arch="residual", depth=20), m(FULL, arch="residual", depth=56),
               m(FULL, arch="plain", depth=20), m(FULL, arch="plain", depth=56),
               m(FULL, arch="plain", depth=56) - m(FULL, arch="residual", depth=56))),
    q(RR, "the first layer gets 10^{} (depth 20) to 10^{} (depth 56) times the last layer's "
      "gradient norm", S_DEG,
      lambda: (m(DEG, "log10_grad_ratio_init", 1, arch="plain", depth=20),
               m(DEG, "log10_grad_ratio_init", 1, arch="plain", depth=56))),
    q(RR, "plain-56's first layer gets 10^{} of its last layer's gradient vs 10^{} in plain-20 "
      "(`grad_ratio_over_training.png`). Residual nets stay between 10^{} and 10^{} at every "
      "depth throughout.", S_DEG,
      lambda: (m(DEG, "log10_grad_ratio", 1, arch="plain", depth=56),
               m(DEG, "log10_grad_ratio", 1, arch="plain", depth=20),
               min(deg_residual_ratios()), max(deg_residual_ratios()))),
    q(RR, "(`cifar10-gradflow/`, one seed, {} epochs on {} images, lr 0.01 with warm-up): no net "
      "trains far in this budget (plain nets {} to {}% training error, chance is 90%; residual-20 "
      "{}%)", S_GRAD,
      lambda: (fnum(runs(GRAD, group="cifar10-gradflow")[0]["epochs"]),
               fnum(runs(GRAD, group="cifar10-gradflow")[0]["train_subset"]),
               min(col(GRAD, "final_train_error", 100, group="cifar10-gradflow", arch="plain")),
               max(col(GRAD, "final_train_error", 100, group="cifar10-gradflow", arch="plain")),
               m(GRAD, group="cifar10-gradflow", arch="residual", depth=20))),
    q(RR, "first/last ratio of plain nets stays between 10^{} and 10^{},", S_GRAD,
      lambda: (min(col(GRAD, c, group="cifar10-gradflow", arch="plain")[i]
                   for c in ("log10_grad_ratio_init", "log10_grad_ratio") for i in range(4)),
               max(col(GRAD, c, group="cifar10-gradflow", arch="plain")[i]
                   for c in ("log10_grad_ratio_init", "log10_grad_ratio") for i in range(4)))),
    q(RR, "it ends at chance ({}%), and residual-44 and residual-56 diverge (non-finite loss) by "
      "the first loss check, at step {}.", S_GRAD,
      lambda: (m(GRAD, group="cifar10-gradflow", arch="residual", depth=32),
               *{fnum(r["steps_completed"]) for r in runs(GRAD, group="cifar10-gradflow",
                                                          status="diverged")})),
    q(RR, "residual-20 / residual-56 end at {} / {} with the paper's start (residual-56's seeds: "
      "{} and {}), {} / {} with zero-initialised branches (the deeper net lower by {} points, "
      "spread {}), {} / {} with a warm-up (deeper worse by {}, spread {}); plain-20 / plain-56 "
      "with the warm-up {} / {}.", S_INIT,
      lambda: (m(INIT, depth=20, variant="residual (start=paper)"),
               m(INIT, depth=56, variant="residual (start=paper)"),
               *col(INIT, "final_train_error", 100, depth=56, variant="residual (start=paper)"),
               m(INIT, depth=20, variant="residual (start=zero_init)"),
               m(INIT, depth=56, variant="residual (start=zero_init)"),
               -init_diff("zero_init")[0], init_diff("zero_init")[1],
               m(INIT, depth=20, variant="residual (start=warmup)"),
               m(INIT, depth=56, variant="residual (start=warmup)"), *init_diff("warmup"),
               m(INIT, depth=20, variant="plain (start=warmup)"),
               m(INIT, depth=56, variant="plain (start=warmup)"))),
    q(RR, "training error % at 20 / 56): SkipInit {} ± {} / {} ± {} and ReZero {} ± {} / {} ± {} "
      "(the deeper net lower, by {} and {} points, each just beyond the seed spread of {} and {}); "
      "Fixup {} ± {} / {} ± {} (seeds {} and {}: seed 1 ends at chance, with no finite gradient "
      "ratio at the end); batch norm {} ± {} / {} ± {}.", S_NF,
      lambda: (*(x for b in ("skipinit", "rezero") for d in (20, 56)
                 for x in mean_std(NF, "final_train_error", depth=d, **nf_branch(b))),
               *(-diff_spread(NF, "final_train_error", {"depth": 20, **nf_branch(b)},
                              {"depth": 56, **nf_branch(b)})[0] for b in ("skipinit", "rezero")),
               *(diff_spread(NF, "final_train_error", {"depth": 20, **nf_branch(b)},
                             {"depth": 56, **nf_branch(b)})[1] for b in ("skipinit", "rezero")),
               *mean_std(NF, "final_train_error", depth=20, **nf_branch("fixup")),
               *mean_std(NF, "final_train_error", depth=56, **nf_branch("fixup")),
               *col(NF, "final_train_error", 100, depth=56, seed=0, **nf_branch("fixup")),
               *col(NF, "final_train_error", 100, depth=56, seed=1, **nf_branch("fixup")),
               *mean_std(NF, "final_train_error", depth=20, **NF_BN_RERUN),
               *mean_std(NF, "final_train_error", depth=56, **NF_BN_RERUN))),
    q(RR, "but on {} steps these nets train {}-{} points above batch-norm residual-20.", S_NF,
      lambda: (steps(NF), *nf_over_bn20())),
    q(RR, "(`probe-normfree/`, {} seeds, batch of {} N(0,1) images;",
      "results/probe-normfree/probe.json",
      lambda: (json_file("results/probe-normfree/probe.json")["settings"]["seeds"],
               json_file("results/probe-normfree/probe.json")["settings"]["batch"])),
    q(RR, "(with batch norm too: weight-gradient ratio {} to {}, last block output std {} to {}).",
      "results/probe-normfree/summary.csv",
      lambda: (*reversed(nf_probe_range(("skipinit", "rezero"), "batch", "log10_ratio_mean")),
               *nf_probe_range(("skipinit", "rezero"), "batch", "act_std_final_mean"))),
    q(RR, "its forward signal is the shortcut path's, {} to {} at every depth.",
      "results/probe-normfree/summary.csv",
      lambda: nf_probe_range(("fixup",), "none", "act_std_final_mean")),
    q(RR, "the ratio stays near 10^{} up to 218 layers, but ‖∂L/∂h‖ at the first block is 10^{} "
      "times that at the last at depth 56 and 10^{} at 218", "results/probe-normfree/summary.csv",
      lambda: (same_decade([pr("probe-normfree", "residual", d, "none", "log10_ratio_mean",
                               "standard") for d in (20, 56, 110, 218)]),
               pr("probe-normfree", "residual", 56, "none", "log10_back_ratio_mean", "standard"),
               pr("probe-normfree", "residual", 218, "none", "log10_back_ratio_mean", "standard"))),
    q(RR, "last block output std {} at depth 56 and {} at 218)",
      "results/probe-normfree/summary.csv",
      lambda: tuple(pr("probe-normfree", "residual", d, "none", "act_std_final_mean", "standard")
                    for d in (56, 218))),
    q(RR, "In an un-normalised plain net it vanishes toward the input instead: 10^{} at {} layers",
      "results/probe-normfree/summary.csv",
      lambda: (pr("probe-normfree", "plain", 1202, "none", "log10_back_ratio_mean", "standard"),
               1202)),
    q(RR, "residual-56, {} of {} non-downsampling blocks cost under 5 points (intact {}%, median "
      "{}%; worst: `layer1.0`, {}%); every one of plain-56's shape-keeping blocks sends it most of "
      "the way to chance (median {}%). At depth 20 every residual block matters too (median {}% "
      "vs {}% intact).", "results/lesion-56/lesion.csv, results/lesion-20/lesion.csv",
      lambda: (les("lesion-56", "residual-56-s0", "within5"), les("lesion-56", "residual-56-s0", "n"),
               les("lesion-56", "residual-56-s0", "intact"),
               les("lesion-56", "residual-56-s0", "median"),
               les("lesion-56", "residual-56-s0", "worst"),
               les("lesion-56", "plain-56-s0", "median"),
               les("lesion-20", "residual-20-s0", "median"),
               les("lesion-20", "residual-20-s0", "intact"))),
    # conf/experiment headers
    q("conf/experiment/cifar10_degradation.yaml", "8 epochs ({} steps)", S_DEG,
      lambda: (steps(DEG),)),
    q("conf/experiment/cifar10_degradation.yaml", "# {} h of training summed over the 16 runs; "
      "two at a time, one core each (trainer.threads=1, # hydra/launcher=joblib) on a 2-core CPU, "
      "{} min from the first run's start to the last run's # end, in three sittings",
      f"{S_DEG}, results/{DEG}/report.md", lambda: (report_run_time(DEG), span_minutes(DEG))),
    q("conf/experiment/cifar10_gradflow.yaml", "The {} runs took {} min one after another, first "
      "# run's start to last run's end", S_GRAD,
      lambda: (len(runs(GRAD, group="cifar10-gradflow")),
               span_minutes(GRAD, group="cifar10-gradflow"))),
    # scripts/reproduce_cifar10.sh's header
    q("scripts/reproduce_cifar10.sh", "# (results/<folder>/summary.csv): {} min for the "
      "degradation sweep ({} runs, # three sittings, the pauses included), {} for the "
      "gradient-flow sweep ({} runs) # and {} for the full-data comparison ({} runs) on a 2-core "
      "x86_64 CPU; {} for # the start ablation ({} runs, Intel Xeon VM), {} for the norm-free "
      "sweep # ({} runs, the same VM), {} for the bf16 comparison ({} runs, its two arms one "
      "# after the other, AMD EPYC VM, the cores shared with other work), {} for the # block "
      "ablation ({} runs, its two sweeps one after the other, the same VM, idle) # and {} for "
      "the Fig. 6 recipe ({} runs, the same VM, idle): {} min, about # {} h, in all.",
      "results/*/summary.csv",
      lambda: (reproduce_times()[0], len(runs(DEG)), reproduce_times()[1],
               len(runs(GRAD, group="cifar10-gradflow")), reproduce_times()[2], len(runs(FULL)),
               reproduce_times()[3], len(runs(INIT)), reproduce_times()[4],
               len(runs(NF, **NF_RUNS)), reproduce_times()[5], len(runs("cifar10-bf16")),
               reproduce_times()[6], len(runs("cifar10-blocks")), reproduce_times()[7],
               len(runs("cifar10-fig6")), *reproduce_total())),
]


@pytest.mark.parametrize("quote", QUOTES, ids=lambda x: f"{x.doc}:{x.pattern[:48]}")
def test_quoted_number_matches_its_file(quote: Quote):
    err = check_quote(text(quote.doc), Expect(quote.pattern, tuple(quote.values())))
    assert err is None, f"{quote.doc} vs {quote.source}: {err}"


def test_the_yaml_headers_quote_the_budget_they_run():
    """Every conf/experiment header that gives the degradation budget in steps gives 624, the
    steps its runs made (results/cifar10-degradation/summary.csv)."""
    want = steps(DEG)
    bad = []
    for path in sorted((ROOT / "conf/experiment").glob("*.yaml")):
        header = "".join(line for line in path.read_text(encoding="utf-8").splitlines(True)
                         if line.startswith("#"))
        for mt in re.finditer(r"8 epochs (?:= |\()([\d,]+) steps", header):
            if float(mt.group(1).replace(",", "")) != want:
                bad.append(f"{path.name}: {mt.group(0)}")
    assert not bad, f"summary.csv has {want:.0f} steps: " + "; ".join(bad)


def test_the_words_around_the_numbers():
    """What the prose says of the files without a number of its own."""
    # cifar10_gradflow.yaml: "one after another"
    assert one_after_another(GRAD, group="cifar10-gradflow")
    # results/README and README: Fixup-56's seed 1 "ends at chance, with no finite gradient
    # ratio at the end"; chance is 90% on CIFAR-10's 10 classes
    (s1,) = runs(NF, depth=56, seed=1, **nf_branch("fixup"))
    assert fnum(s1["log10_grad_ratio"]) is None and abs(fnum(s1["final_train_error"]) - 0.9) < 0.005
    # results/README: the batch-norm runs re-run for cifar10-normfree "gave the same numbers"
    for r in runs(NF, **NF_BN_RERUN):
        (same,) = runs(INIT, name=r["name"])
        for c in ("final_train_error", "final_test_error", "log10_grad_ratio_init",
                  "log10_grad_ratio"):
            assert r[c] == same[c], (r["name"], c)
    # results/README: the worst block of residual-56 is layer1.0
    by_block = les("lesion-56", "residual-56-s0", "by_block")
    assert max(by_block, key=by_block.get) == "layer1.0"
    # README: the probe's default grid is what results/probe ran
    assert json_file("results/probe/probe.json")["command"] == "depthlab probe out=results/probe"


def test_quick_header_quotes_no_results():
    """quick.yaml's header gives the recipe and its reasons; the job's numbers and wall time have
    one home, the README (soon results/quick/)."""
    header = [line for line in text("conf/experiment/quick.yaml").splitlines()
              if line.startswith("#")]
    quoted = [line for line in header
              if re.search(r"seed [01]:|\d+ min \d+ s|\d -> \d|images/s", line)]
    assert not quoted, "quick.yaml's header quotes the main job's results:\n" + "\n".join(quoted)


def test_reproduce_paragraph_counts_what_the_script_runs():
    """results/README says how many sweep commands the script runs and which folders it writes."""
    script = text("scripts/reproduce_cifar10.sh")
    sweeps = re.findall(r'^"\$\{(\w+)\[@\]\}" "\$\{launcher\[@\]\}"$', script, re.MULTILINE)
    outs = list(dict.fromkeys(re.findall(r"--out (results/[\w-]+)", script)))
    words = {4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten",
             11: "eleven", 12: "twelve"}
    para = flat(text(RESULTS_README))
    err = check_quote(para, Expect(f"`bash scripts/reproduce_cifar10.sh` runs {words[len(sweeps)]}"
                                   f" sweep commands"))
    assert err is None, f"the script runs {len(sweeps)} sweep commands ({sweeps}): {err}"
    err = check_quote(para, Expect(f"and writes {words[len(outs)]} report folders"))
    assert err is None, f"the script writes {len(outs)} report folders: {err}"
    named = re.search(r"writes \w+ report folders: (.*?)\. Its sweeps took", para)
    assert named, "results/README no longer names the script's folders"
    listed = re.findall(r"`([\w-]+)/`", named.group(1))
    assert sorted(listed) == sorted(o.split("/", 1)[1] for o in outs), (listed, outs)


def test_benchmark_history_is_what_git_holds():
    """results/benchmarks/history.json against the committed versions of latest.json it names
    (the newest is the current latest.json)."""
    hist = bench_history()
    current = json_file("results/benchmarks/latest.json")
    assert hist[-1]["date"] == current["date"], (
        "results/benchmarks/latest.json is not history.json's last run: add it to history.json "
        "(its 'how' says how) and update the README's benchmark paragraph")
    versions = {}
    if shutil.which("git") is None:
        pytest.skip("git is not installed: history.json checked against latest.json only")
    for run in hist:
        got = subprocess.run(["git", "show", f"{run['commit']}:results/benchmarks/latest.json"],
                             check=False, cwd=ROOT, capture_output=True, text=True)
        if got.returncode != 0:
            pytest.skip(f"this checkout lacks commit {run['commit'][:7]} (shallow clone?): "
                        f"{got.stderr.strip()[:100]}")
        versions[run["commit"]] = json.loads(got.stdout)
    for run in hist:
        d = versions[run["commit"]]
        assert (run["date"], run["cpu"], run["command"]) == (
            d["date"], d["machine"]["cpu"], d["command"]), run["commit"]
        assert round(d["seconds"], 1) == run["seconds"], run["commit"]
        train = {r["name"].split(": ", 1)[1].split(", batch")[0]: r
                 for r in d["rows"] if r["bench"] == "train"}
        assert set(train) == set(run["training_step_ratio"]), run["commit"]
        for label, r in train.items():
            assert round(r["ratio"], 4) == run["training_step_ratio"][label]["ratio"]
            assert [round(x, 4) for x in r["spread"]] == run["training_step_ratio"][label]["spread"]
    listed = subprocess.run(["git", "log", "--format=%H", "--", "results/benchmarks/latest.json"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert set(listed) <= {r["commit"] for r in hist}, (
        "a committed latest.json is missing from results/benchmarks/history.json")


# --------------------------------------------------------------------------------------------
# the README's main job: experiment=quick (results/quick/ is still to come)

# (README snippet with {} per number, file, function of the file giving the numbers), as in
# QUOTES; e.g. q(README, "plain-32 ends at {}% training error vs {}% for plain-8",
#               "results/quick/summary.csv", lambda: (m("quick", arch="plain", depth=32), ...)).
Q, QF, QT = "quick", "quick/fp32", "results/quick/timing.json"
BF = "cifar10-bf16"


def quick_t(arm: str, key: str) -> float:
    return json_file(QT)[arm][key]


def noise_points(p1: float, p2: float, n: int) -> float:
    """2 combined binomial standard errors of two error rates on n images each, in points
    (analysis.groups' rule, written out independently)."""
    return 100 * 2 * math.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)


def qm(folder: str, arch: str, depth: int, column: str = "final_train_error") -> float:
    return m(folder, column, arch=arch, depth=depth)


def bfm(arch: str, depth: int, precision: str, column: str = "final_train_error") -> float:
    return m(BF, column, scale=100 if column.endswith("error") else 1, arch=arch, depth=depth,
             precision=precision)


QUICK_QUOTES: list[Quote] = [
    q(R, "`timing.json`): **{} s** wall time, the W&B report run included; {} s of training, "
      "against the plan's estimate of {} s", QT,
      lambda: (quick_t("as_typed", "wall_seconds"), quick_t("as_typed", "training_seconds"),
               quick_t("as_typed", "estimate_seconds"))),
    q(R, "plain-32 ends at {}% training error vs {}% for plain-8.", summary(Q),
      lambda: (qm(Q, "plain", 32), qm(Q, "plain", 8))),
    q(R, "residual-32 ends at {}% vs {}% for residual-8.", summary(Q),
      lambda: (qm(Q, "residual", 32), qm(Q, "residual", 8))),
    # the CPU fast path: results/cifar10-bf16
    q(R, "first start to last end: {} min for the bf16 arm's 8 runs, {} min for the fp32 arm's",
      summary(BF), lambda: (span_minutes(BF, precision="bf16"), span_minutes(BF, precision="fp32"))),
    q(R, "plain-20 {} vs {} (bf16 lower by {} points, beyond the seeds' spread of {}), plain-56 "
      "{} vs {}, residual-20 {} vs {}, residual-56 {} vs {} (bf16's seeds {} and {}: within a "
      "spread of {} points).", summary(BF),
      lambda: (bfm("plain", 20, "fp32"), bfm("plain", 20, "bf16"),
               bfm("plain", 20, "fp32") - bfm("plain", 20, "bf16"),
               diff_spread(BF, "final_train_error", {"arch": "plain", "depth": 20, "precision": "fp32"},
                           {"arch": "plain", "depth": 20, "precision": "bf16"})[1],
               bfm("plain", 56, "fp32"), bfm("plain", 56, "bf16"),
               bfm("residual", 20, "fp32"), bfm("residual", 20, "bf16"),
               bfm("residual", 56, "fp32"), bfm("residual", 56, "bf16"),
               *col(BF, "final_train_error", 100, arch="residual", depth=56, precision="bf16"),
               diff_spread(BF, "final_train_error", {"arch": "residual", "depth": 56, "precision": "fp32"},
                           {"arch": "residual", "depth": 56, "precision": "bf16"})[1])),
    q(R, "plain-56 {} vs {}); at the end plain-56's differs ({} vs {} decades).", summary(BF),
      lambda: (bfm("plain", 56, "fp32", "log10_grad_ratio_init"),
               bfm("plain", 56, "bf16", "log10_grad_ratio_init"),
               bfm("plain", 56, "fp32", "log10_grad_ratio"), bfm("plain", 56, "bf16", "log10_grad_ratio"))),
    q(R, "(fp32: residual lower by {} points;", summary(BF),
      lambda: (bfm("plain", 56, "fp32") - bfm("residual", 56, "fp32"),)),
    q(R, "where cifar10-init's fp32 seeds already ended {} points apart)", summary(INIT),
      lambda: (100 * abs(sub(*col(INIT, "final_train_error", arch="residual", depth=56, start="paper"))),)),
]


def sub(a: float, b: float) -> float:
    return a - b


def test_main_job_numbers():
    """The README's first section quotes `experiment=quick`'s wall time and verdicts, which no
    committed file holds yet. Once results/quick/ exists its checks must be in QUICK_QUOTES."""
    if not (ROOT / "results/quick").exists():
        pytest.skip("README main-job paragraph (experiment=quick): no results/quick/ yet, so its "
                    "numbers are not checked; add QUICK_QUOTES when it lands")
    assert QUICK_QUOTES, "results/quick/ exists: add the README main-job checks to QUICK_QUOTES"
    errors = [f"{x.doc} vs {x.source}: {err}" for x in QUICK_QUOTES
              if (err := check_quote(text(x.doc), Expect(x.pattern, tuple(x.values()))))]
    assert not errors, "\n".join(errors)


# --------------------------------------------------------------------------------------------
# the checks can fail


def test_an_altered_table_is_caught():
    doc = text(README)
    header = TABLES[0].header
    good = doc_table(doc, header)
    assert compare_table(good, TABLES[0].build()) == []
    altered = doc.replace("| 44 | 69.2 ± 1.5 / 68.1 ± 1.4 |", "| 44 | 69.2 ± 1.5 / 68.4 ± 1.4 |")
    assert altered != doc
    diffs = compare_table(doc_table(altered, header), TABLES[0].build())
    assert len(diffs) == 1 and "row 3 (44), column 2" in diffs[0] and "68.4" in diffs[0], diffs
    # a row dropped, and a precision the file does not round to
    assert compare_table(good[:-1], TABLES[0].build())
    assert check_cell("+0.54 -> -0.01", Expect("{} -> {}", (0.53, -0.01)))
    assert check_cell("+0.53 -> +0.01", Expect("{} -> {}", (0.53, -0.01)))
    bench = doc_table(doc, BENCH_HEADER)
    bench[0][3] = "0.972x"
    assert compare_table(bench, benchmark_rows())


def test_an_altered_quote_is_caught():
    quote = next(x for x in QUOTES if x.pattern.startswith("depthlab probe # the default grid"))
    values = tuple(quote.values())
    doc = text(README)
    assert check_quote(doc, Expect(quote.pattern, values)) is None
    err = check_quote(doc.replace("grid below: 11 s", "grid below: 17 s"),
                      Expect(quote.pattern, values))
    assert err and "17 s" in err
    err = check_quote(doc.replace("grid below: 11 s", "grid below takes 11 s"),
                      Expect(quote.pattern, values))
    assert err and "no sentence" in err


def test_printed_precision():
    assert printed_as("53.1", 53.14) and not printed_as("53.1", 53.16)
    assert printed_as("+0.53", 0.5278) and not printed_as("-0.53", 0.53)
    assert printed_as("0.0", -0.01) and printed_as("-0.0", 0.01)
    assert printed_as("1,202", 1202) and printed_as("3e-4", 3.29e-4) and not printed_as("3e-4", 3.6e-4)
    assert printed_as("1.1e-27", 1.0589e-27) and printed_as("2e19", 2.0019e19)
    assert not printed_as("0.20", 0.19) and not printed_as("5", float("nan"))
