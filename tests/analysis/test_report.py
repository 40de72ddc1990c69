"""Figures, report files and `depthlab report` on hand-made run directories."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_runs import SWEEP, make_run, make_sweep
from PIL import Image
from typer.testing import CliRunner

from depthlab import plots
from depthlab.analysis import load_table, verdicts
from depthlab.cli import app
from depthlab.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ["error_curves.png", "final_error_vs_depth.png", "gradflow_layers.png",
           "gradflow_heatmap.png", "grad_ratio_over_training.png"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return make_sweep(tmp_path_factory.mktemp("runs") / "sweep-a")


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    table = load_table([sweep])
    return table, out, write_report(table, out, title="Plain vs residual",
                                    commands=["depthlab sweep depth=20,56 seed=0,1"],
                                    machine="a test box")


def assert_png(path: Path, min_bytes: int = 10_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > min_bytes, (path, len(data))
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 400 and im.size[1] > 300


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def words(text: str) -> str:
    return " ".join(text.split())


def test_each_plot_function_writes_a_png(sweep, tmp_path):
    table = load_table([sweep])
    made = [plots.plot_error_curves(table, tmp_path / "a.png"),
            plots.plot_final_error(table, tmp_path / "b.png"),
            plots.plot_gradflow_layers(table, tmp_path / "c.png"),
            plots.plot_gradflow_heatmap(sweep / "plain-56-s0", tmp_path / "d.png"),
            plots.plot_grad_ratio_over_training(table, tmp_path / "e.png")]
    assert made == [tmp_path / n for n in ("a.png", "b.png", "c.png", "d.png", "e.png")]
    for path in made:
        assert_png(path)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_plots_without_data_say_so(tmp_path):
    run = make_run(tmp_path / "s", "plain", 20, 0, train_error=0.1, test_error=0.1,
                   log10_ratio_init=-1, log10_ratio_end=-1)
    (run / "gradflow.csv").unlink()
    table = load_table([tmp_path / "s"])
    with pytest.raises(plots.NothingToPlot):
        plots.plot_gradflow_layers(table, tmp_path / "x.png")
    with pytest.raises(plots.NothingToPlot):
        plots.plot_gradflow_heatmap(run, tmp_path / "y.png")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_write_report_writes_every_file(report):
    table, out, paths = report
    assert set(paths) == {"summary", "markdown", "html", "error_curves", "final_error",
                          "gradflow_layers", "gradflow_heatmap", "grad_ratio"}
    for name in FIGURES:
        assert_png(out / name)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["summary.csv", "report.md", "report.html", *FIGURES])


def test_report_md_has_table_verdicts_and_figures(report):
    table, out, _ = report
    md = (out / "report.md").read_text()
    assert md.startswith("# Plain vs residual\n")
    assert "a test box" in md and "depthlab sweep depth=20,56 seed=0,1" in md
    assert "| depth | architecture | params (M) | FLOPs | train error % |" in md
    assert ("| 56 | plain | 0.06 | 112.0M | 14.2 ± 0.3 | 16.3 ± 0.4 | -3.10 ± 0.14 | -1.45 ± 0.07 "
            "| 2 completed |") in md
    assert "| 20 | residual | 0.02 | 40.0M | 7.9 ± 0.1 | 10.2 ± 0.3 |" in md
    for v in verdicts(table):
        assert f"- {v.text}" in md
    for name in FIGURES:
        assert f"]({name})" in md
    for name in table["name"]:
        assert f"| {name} | completed |" in md


def test_report_html_is_self_contained(report):
    _, out, _ = report
    page = (out / "report.html").read_text()
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,iVBORw0KGgo") for src in images)
    assert "Degradation in plain nets: yes" in page and "<table>" in page
    assert ".png" not in page.replace("data:image/png", "")  # no figure by file name


def test_summary_csv_reads_back_to_the_same_rows(report):
    table, out, _ = report
    back = pd.read_csv(out / "summary.csv")
    assert len(back) == len(table) == len(SWEEP)
    cols = ["name", "arch", "depth", "seed", "status", "final_train_error", "final_test_error",
            "log10_grad_ratio_init", "log10_grad_ratio", "params", "flops", "run_dir"]
    pd.testing.assert_frame_equal(back[cols], table[cols], check_dtype=False)


def cli(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_cli_report_prints_the_table_and_verdicts(tmp_path):
    sweep = make_sweep(tmp_path / "runs" / "sweep-b")
    result = cli("report", str(sweep))
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"56\s+plain\s+0\.06\s+112\.0M\s+14\.2±0\.3\s+16\.3±0\.4\s+-3\.1±0\.1", out), out
    assert re.search(r"56\s+residual\s+0\.06\s+112\.0M\s+6\.1±0\.1", out), out
    text = words(out)
    assert ("Degradation in plain nets: yes - plain-56 ends at 14.2% training error vs 9.8% "
            "for plain-20") in text
    assert "Residual nets: deeper trains lower - residual-56 ends at 6.1%" in text
    for name in ["report.md", "report.html", "summary.csv", *FIGURES]:
        assert (sweep / name).is_file(), name
    assert f"depthlab report {sweep}" in (sweep / "report.md").read_text()


def test_cli_report_options(tmp_path):
    sweep = make_sweep(tmp_path / "runs" / "sweep-c", {k: v for k, v in SWEEP.items() if k[2] == 0})
    out = tmp_path / "results"
    result = cli("report", str(sweep / "plain-20-s0"), str(sweep / "plain-56-s0"),
                 str(sweep / "residual-20-s0"), "--out", str(out), "--title", "Mine",
                 "--heatmap-run", "residual-20-s0")
    assert result.exit_code == 0, result.output
    assert (out / "report.md").read_text().startswith("# Mine\n")
    assert not (sweep / "report.md").exists()
    assert len(load_table([sweep])) == 4 and len(pd.read_csv(out / "summary.csv")) == 3
    # the heatmap is the chosen run's, pixel for pixel, not the default choice (the
    # deepest plain run, plain-56-s0) and not another run's
    refs = tmp_path / "refs"
    chosen = pixels(plots.plot_gradflow_heatmap(sweep / "residual-20-s0", refs / "r20.png",
                                                name="residual-20-s0"))
    default = pixels(plots.plot_gradflow_heatmap(sweep / "plain-56-s0", refs / "p56.png",
                                                 name="plain-56-s0"))
    same_depth = pixels(plots.plot_gradflow_heatmap(sweep / "plain-20-s0", refs / "p20.png",
                                                    name="plain-20-s0"))
    drawn = pixels(out / "gradflow_heatmap.png")
    assert drawn.shape == chosen.shape and (drawn == chosen).all()
    assert drawn.shape != default.shape or (drawn != default).any()
    assert drawn.shape != same_depth.shape or (drawn != same_depth).any()
    # without --heatmap-run the same command draws the default run
    out2 = tmp_path / "results-default"
    result = cli("report", str(sweep / "plain-20-s0"), str(sweep / "plain-56-s0"),
                 str(sweep / "residual-20-s0"), "--out", str(out2), "--title", "Mine")
    assert result.exit_code == 0, result.output
    assert (pixels(out2 / "gradflow_heatmap.png") == default).all()


def test_cli_report_writes_the_making_command_notes_and_run_time(tmp_path):
    sweep = make_sweep(tmp_path / "runs" / "sweep-d", {k: v for k, v in SWEEP.items() if k[2] == 0})
    out = tmp_path / "results"
    made = "depthlab compare plain residual depth=20,56 sweep.name=sweep-d"
    result = cli("report", str(sweep), "--out", str(out), "--command", made,
                 "--note", "Real data, JPEG re-encoded.", "--note", "Second paragraph.")
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    head = md.split("## Comparison")[0]
    assert head.index("Real data, JPEG re-encoded.\n\nSecond paragraph.") < head.index("**Machine:**")
    # the making command first, then the report command that reproduces this very file
    block = head.split("```")[1].strip().splitlines()
    assert block[0] == made
    assert block[1].startswith(f"depthlab report {sweep} --out {out} --command ")
    # make_run records wall_seconds = 1.5 s per epoch: 4 runs x 4 epochs = 24 s, longest 6 s
    assert "- **Run time:** 24 s of training summed over 4 runs (longest run 6 s" in head
    assert "Real data, JPEG re-encoded." in (out / "report.html").read_text()


@pytest.mark.parametrize("args", [[], ["--heatmap-run", "plain-999-s0"]])
def test_cli_report_user_errors_are_one_line_and_write_nothing(tmp_path, args):
    target = tmp_path / "empty"
    target.mkdir()
    if args:  # unknown run for the heatmap: runs exist, still nothing written
        make_sweep(target, {("plain", 20, 0): SWEEP[("plain", 20, 0)]})
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    result = CliRunner().invoke(app, ["report", str(target), *args])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    if not args:
        assert f"no runs found under {target}: a run directory holds summary.json" in lines[0]
    else:
        assert "plain-999-s0" in lines[0] and "plain-20-s0" in lines[0]
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before


def test_cli_report_missing_path(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert result.output.strip() == f"error: no such file or directory: {tmp_path / 'nope'}"
