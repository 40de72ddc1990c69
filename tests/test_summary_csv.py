"""summary.csv of real runs, a failed one among them: counts are written as
integers, and every row carries the same columns."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import yaml
from cli.helpers import TINY

from depthlab.analysis import load_table
from depthlab.launch import launch
from depthlab.report import INTEGER_COLUMNS, write_report

# What describes a run (its config and its network): known even for a run that
# failed before it trained, so filled in every row.
DESCRIPTIVE = ["name", "group", "arch", "depth", "layout", "norm", "shortcut", "preact",
               "zero_init_residual", "seed", "data", "num_classes", "train_size", "test_size",
               "params", "flops", "epochs", "device", "machine", "status",
               "steps_completed", "epochs_completed"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_summary_csv_integers_and_the_same_columns_in_every_row():
    # train_size 16 < one batch of 32: that run fails as it builds its data, before
    # train.run writes any summary (launched directly: the CLI's preflight would refuse)
    launch(["--multirun", "arch=residual", *[o for o in TINY if not o.startswith("data.train_size")],
            "data.train_size=16,64,128", "run.name=n${data.train_size}", "sweep.name=mix"])
    sweep = Path("runs/mix")
    assert json.loads((sweep / "n16" / "summary.json").read_text())["status"] == "failed"
    write_report(load_table([sweep]), sweep, title="mix")
    rows = read_rows(sweep / "summary.csv")
    assert sorted(r["status"] for r in rows) == ["completed", "completed", "failed"]

    for col in INTEGER_COLUMNS:
        for r in rows:
            if col in r and r[col] != "":
                assert re.fullmatch(r"-?\d+", r[col]), (col, r[col])
    by_name = {r["name"]: r for r in rows}
    assert by_name["n128"]["train_size"] == "128" and by_name["n128"]["steps_completed"] == "8"
    assert by_name["n16"]["num_classes"] == by_name["n128"]["num_classes"] == "10"
    assert by_name["n16"]["params"] == by_name["n128"]["params"] != ""

    for col in DESCRIPTIVE:
        assert all(r[col] != "" for r in rows), (col, [r[col] for r in rows])
    # every other column: filled in all rows of one status, or in none of them
    for col in rows[0]:
        for status in ("completed", "failed"):
            filled = {r[col] != "" for r in rows if r["status"] == status}
            assert len(filled) == 1, (col, status)


def test_summary_csv_fills_what_an_older_summary_lacks_from_config_yaml():
    launch(["--multirun", "arch=residual", *TINY, "sweep.name=old"])
    run = Path("runs/old/residual-8-s0")
    s = json.loads((run / "summary.json").read_text())
    for key in ("num_classes", "train_subset", "data", "epochs"):  # as summaries once were
        s.pop(key)
    (run / "summary.json").write_text(json.dumps(s))
    write_report(load_table([run.parent]), run.parent, title="old")
    (row,) = read_rows(run.parent / "summary.csv")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert (row["num_classes"], row["data"], row["epochs"], row["train_subset"]) == (
        str(cfg["data"]["num_classes"]), "synthetic", "2", "")
