"""The verdicts the published results state, from their own numbers.

Each folder under results/ holds the report.md that `depthlab report` wrote and
the summary.csv of its runs. Hand-made run directories (fake_runs.make_run)
carrying those runs' numbers must give, through depthlab.analysis, exactly the
verdict lines and the comparison table that the committed report shows: a change
in the verdict rules or wording that would change a published sentence fails here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from fake_runs import make_run

from depthlab.analysis import COMPARISON_HEADERS, comparison_rows, load_table, markdown_table, verdicts

RESULTS = Path(__file__).resolve().parents[2] / "results"
PUBLISHED = ["cifar10-degradation", "cifar10-fulldata", "cifar10-gradflow"]
# summary.json keys taken from summary.csv as they are (the settings that make
# variants, the final numbers, what the comparison table shows)
KEYS = ["layout", "norm", "shortcut", "preact", "zero_init_residual", "data", "train_subset",
        "num_classes", "epochs", "epochs_completed", "steps_completed", "params", "flops",
        "final_train_error", "final_test_error", "best_test_error", "grad_ratio_first_last",
        "grad_ratio_first_last_init", "log10_grad_ratio_init", "log10_grad_ratio", "status",
        "diverged", "train_size", "test_size"]  # the images each error was measured on
INTEGERS = {"train_subset", "num_classes", "epochs", "epochs_completed", "steps_completed",
            "params", "flops", "train_size", "test_size"}


def _value(key: str, value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if key in INTEGERS:
        return int(value)
    if key in ("preact", "zero_init_residual", "diverged"):
        return value if isinstance(value, bool) else str(value) == "True"
    return value.item() if hasattr(value, "item") else value


def fake_published_runs(folder: str, root: Path) -> Path:
    """One fake run directory per row of results/<folder>/summary.csv, with its numbers."""
    rows = pd.read_csv(RESULTS / folder / "summary.csv")
    for _, r in rows.iterrows():
        run_dir = Path(str(r["run_dir"]))  # runs/<sweep>/<name>: keep sweeps apart
        known = {k: _value(k, r[k]) for k in KEYS if k in r.index}
        final = known.get("final_train_error")
        make_run(root / run_dir.parent.name, r["arch"], int(r["depth"]), int(r["seed"]),
                 train_error=final if final is not None else 0.9,
                 test_error=known.get("final_test_error") or 0.9,
                 log10_ratio_init=known.get("log10_grad_ratio_init") or 0.0,
                 log10_ratio_end=known.get("log10_grad_ratio") or 0.0,
                 status=str(r["status"]), norm=str(r["norm"]), name=run_dir.name,
                 summary={k: v for k, v in known.items() if v is not None})
    return root


def section(md: str, heading: str) -> list[str]:
    """The non-blank lines under `## heading`, up to the next heading."""
    body = md.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in body.splitlines() if line.strip()]


@pytest.mark.parametrize("folder", PUBLISHED)
def test_published_verdicts_come_from_their_numbers(folder, tmp_path):
    md = (RESULTS / folder / "report.md").read_text()
    table = load_table([fake_published_runs(folder, tmp_path / "runs")])
    assert len(table) == len(pd.read_csv(RESULTS / folder / "summary.csv"))
    published = [line[2:] for line in section(md, "Verdicts")]
    assert [v.text for v in verdicts(table)] == published
    table_lines = [line for line in section(md, "Comparison") if line.startswith("|")]
    assert markdown_table(COMPARISON_HEADERS, comparison_rows(table)).splitlines() == table_lines


def test_residual_nets_deeper_is_worse_on_four_depths(tmp_path):
    """The published finding the README discusses: on 8 epochs of a 10,000-image subset,
    residual nets get worse with depth too (not the paper's Fig. 6, right)."""
    table = load_table([fake_published_runs("cifar10-degradation", tmp_path / "runs")])
    found = {v.subject: v for v in verdicts(table) if v.kind == "degradation"}
    assert set(found) == {"plain", "residual"}
    res = found["residual"]
    assert res.holds is True
    assert res.text == (
        "Residual nets: deeper is worse - residual-56 ends at 68.1% training error vs 41.5% for "
        "residual-20 (means of 2 seeds each; the difference of 26.7 points exceeds the seeds' "
        "spread (max - min) of 3.0 points); by depth: 20: 41.5%, 32: 52.1%, 44: 64.0%, 56: 68.1%")
    assert f"- {res.text}\n" in (RESULTS / "cifar10-degradation" / "report.md").read_text()
    # the numbers behind it, from summary.csv by hand: means over the two seeds
    rows = pd.read_csv(RESULTS / "cifar10-degradation" / "summary.csv")
    res_rows = rows[rows.arch == "residual"]
    means = res_rows.groupby("depth").final_train_error.mean()
    assert list(means.index) == [20, 32, 44, 56]
    assert [f"{100 * m:.1f}" for m in means] == ["41.5", "52.1", "64.0", "68.1"]
    assert means.is_monotonic_increasing
    plain = found["plain"]
    assert plain.holds is True and plain.text.startswith(
        "Degradation in plain nets: yes - plain-56 ends at 76.1% training error vs 53.1% for plain-20")
