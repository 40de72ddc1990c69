"""The local sink's activations.csv: the backward signal beside the output std, and a run
resumed by this depthlab from a directory an older one wrote (no back_norm column yet)."""

from __future__ import annotations

import csv

from depthlab.gradflow import GradFlowRecord
from depthlab.models import build_model, describe
from depthlab.rundir import ACTIVATION_COLUMNS
from depthlab.tracking import RunInfo
from depthlab.tracking.local import LocalSink

DESC = describe(build_model("residual", 8, layout="cifar"), flops=False)


def info(run_dir, resumed_from_step=None):
    return RunInfo(name="residual-8-s0", group="t", run_dir=run_dir, config={"depth": 8},
                   description={}, layers=DESC["layers"], blocks=DESC["blocks"],
                   resumed_from_step=resumed_from_step, extra={"resumed_epoch": 1})


def record(step):
    n, b = len(DESC["layers"]), len(DESC["blocks"])
    return GradFlowRecord(step, [1.0] * n, [2.0] * n, [0.5 + i for i in range(b)],
                          [0.1 * (i + 1) + step for i in range(b)])


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_back_norm_is_written_beside_act_std(tmp_path):
    sink = LocalSink(tmp_path)
    sink.start(info(tmp_path))
    sink.log_gradflow(1, record(0))
    sink.finish({})
    got = rows(tmp_path / "activations.csv")
    assert list(got[0]) == ACTIVATION_COLUMNS and ACTIVATION_COLUMNS[-2:] == ["act_std", "back_norm"]
    assert [float(r["back_norm"]) for r in got] == record(0).back_norm  # repr round-trips
    assert [r["block"] for r in got] == DESC["blocks"]


def test_resuming_an_older_run_keeps_one_header(tmp_path):
    # written before back_norm existed: rows of steps 0 and 10, then a kill
    with open(tmp_path / "activations.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["step", "epoch", "block_index", "block", "act_std"])
        for step in (0, 10):
            w.writerows([step, 1, i, b, 1.0] for i, b in enumerate(DESC["blocks"]))
    sink = LocalSink(tmp_path)
    sink.start(info(tmp_path, resumed_from_step=5))  # the checkpoint was at 5 steps: 10 goes
    sink.log_gradflow(1, record(5))
    sink.finish({})
    got = rows(tmp_path / "activations.csv")
    assert list(got[0]) == ACTIVATION_COLUMNS
    assert [(int(r["step"]), r["back_norm"]) for r in got] == (
        [(0, "")] * 3 + [(5, str(v)) for v in record(5).back_norm])
