"""The comparison as a W&B run: `compare`, `sweep` and `report` add one run of job type
"report" to the sweep's group, read back from its offline .wandb file with W&B's reader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wandb
from cli.helpers import TINY, cli
from PIL import Image
from tracking.wandb_reader import isolate_wandb, read_table, read_wandb_run, wandb_files

from depthlab.analysis import COMPARISON_HEADERS, comparison_rows, load_runs, verdicts
from depthlab.report import FIGURES
from depthlab.tracking.wandb_report import (
    FIGURE_PREFIX,
    HOLDS_PREFIX,
    JOB_TYPE,
    TABLE_KEY,
    VERDICTS_KEY,
    figure_key,
    report_settings,
    verdict_key,
)

WANDB_TINY = [o for o in TINY if o != "logger=none"] + ["logger=default"]
SWEEP = "cmp"


def report_runs(root: Path):
    return [r for r in map(read_wandb_run, wandb_files(root)) if r.job_type == JOB_TYPE]


def run_notes(run) -> str:
    return next(r["run"].get("notes", "") for r in run.records if r.get("type") == "run")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """`depthlab compare plain residual` on two tiny synthetic nets, W&B offline: trained
    once for the module; each test gets a fresh copy of nothing, it only reads (or adds
    report runs of its own, which the tests count from the count they find)."""
    root = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, root)
        mp.setenv("DEPTHLAB_DATA", str(root / "no-data-here"))
        mp.chdir(root)
        result = cli("compare", "plain", "residual", *WANDB_TINY, f"sweep.name={SWEEP}")
        wandb.teardown()
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.fixture
def in_compared(compared, monkeypatch):
    root, _ = compared
    isolate_wandb(monkeypatch, root)
    monkeypatch.chdir(root)
    yield root
    wandb.teardown()


@pytest.mark.slow
def test_compare_adds_one_report_run_with_table_verdicts_and_figures(compared):
    root, output = compared
    sweep_dir = root / "runs" / SWEEP
    runs = [read_wandb_run(p) for p in wandb_files(root / "wandb-dir")]
    [report] = [r for r in runs if r.job_type == JOB_TYPE]
    trained = [r for r in runs if r.job_type != JOB_TYPE]
    assert sorted(r.name for r in trained) == ["plain-8-s0", "residual-8-s0"]
    assert (report.name, report.group, report.project) == ("report", SWEEP, "depthlab")
    assert {r.group for r in trained} == {SWEEP}  # the same group as the runs it compares
    assert report.exit_code == 0
    assert "W&B: report run (offline) in group cmp; upload with: wandb sync" in " ".join(
        output.split())

    table, _ = load_runs([sweep_dir])
    logged = read_table(report, TABLE_KEY)
    assert logged["columns"] == COMPARISON_HEADERS
    assert logged["data"] == comparison_rows(table)  # the report's table, row for row
    assert len(logged["data"]) == 2

    texts = [v.text for v in verdicts(table)]
    assert texts and report.summary[VERDICTS_KEY] == texts
    notes = run_notes(report)
    assert all(t in notes for t in texts)
    taken: dict[str, str] = {}
    for v in verdicts(table):
        key = verdict_key(v.kind, v.subject, taken)
        taken[key] = v.text
        assert report.summary[key] == v.text
        holds = report.summary.get(HOLDS_PREFIX + key.partition("/")[2])
        assert holds == v.holds  # absent (None) when the numbers cannot tell

    figures = {k: sweep_dir / FIGURES[k][0] for k in FIGURES if (sweep_dir / FIGURES[k][0]).exists()}
    # every figure of the report, made and logged (back_norm too: the runs record it by default)
    every = {"error_curves", "final_error", "gradflow_layers", "gradflow_heatmap", "grad_ratio",
             "back_norm"}
    assert set(figures) == every
    logged_figures = {k[len(FIGURE_PREFIX):].partition(".")[0] for k in report.summary
                      if k.startswith(FIGURE_PREFIX)}
    assert logged_figures == every
    for key, png in figures.items():
        image = report.files_dir / report.summary[f"{figure_key(key)}.path"]
        with Image.open(png) as local, Image.open(image) as logged_image:
            assert logged_image.size == local.size
    assert report.config["runs"] == [str(n) for n in table["name"]]


@pytest.mark.slow
def test_report_adds_a_report_run_and_follows_the_wandb_option(in_compared):
    before = len(report_runs(in_compared))
    result = cli("report", f"runs/{SWEEP}")
    assert result.exit_code == 0, result.output
    after = report_runs(in_compared)
    assert len(after) == before + 1 and all(r.group == SWEEP for r in after)
    assert len({r.run_id for r in after}) == 1  # one report run per sweep, resumed

    result = cli("report", f"runs/{SWEEP}", "--wandb", "disabled")
    assert result.exit_code == 0, result.output
    assert len(report_runs(in_compared)) == before + 1  # disabled: no run
    assert "W&B: report run" not in result.output

    result = cli("report", f"runs/{SWEEP}", "--wandb", "offlne")
    assert result.exit_code == 2
    assert "--wandb must be offline, online or disabled" in result.output


@pytest.mark.slow
def test_report_run_trouble_is_one_warning_and_the_report_stands(in_compared):
    # online without an API key: W&B refuses at once; the report files are written anyway
    start = time.monotonic()
    result = cli("report", f"runs/{SWEEP}", "--wandb", "online")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start < 60
    lines = [l for l in result.output.splitlines() if "W&B report run not written" in l]
    assert len(lines) == 1 and "API key" in lines[0]
    assert "Traceback" not in result.output
    assert f"report: runs/{SWEEP}/report.md" in result.output


def test_no_report_run_when_the_runs_logged_nothing_to_wandb(tmp_path):
    result = cli("train", "arch=plain", *TINY)  # logger=none
    assert result.exit_code == 0, result.output
    result = cli("report", "runs")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "report.md").exists()
    assert wandb_files(tmp_path) == []
    assert "W&B" not in result.output


def test_report_settings_follow_the_runs_logger():
    offline = {"logger": {"wandb": {"mode": "offline", "project": "p", "entity": "e"}}}
    disabled = {"logger": {"wandb": {"mode": "disabled"}}}
    assert report_settings([disabled, disabled]) is None
    assert report_settings([disabled, offline]).project == "p"
    assert report_settings([offline], mode="disabled") is None
    assert report_settings([disabled], mode="offline").mode == "offline"
    assert report_settings([{}, None]) is None  # configs without a logger: nothing
    assert report_settings([offline], mode="online").entity == "e"


def test_verdict_keys_are_plain_keys_and_never_collide():
    assert verdict_key("plain_vs_residual", "residual vs plain @ 14") == \
        "verdict/plain_vs_residual/residual-vs-plain-14"
    assert verdict_key("vanishing") == "verdict/vanishing"
    taken = {"verdict/degradation/plain", "verdict/degradation/plain_2"}
    assert verdict_key("degradation", "plain", taken) == "verdict/degradation/plain_3"
