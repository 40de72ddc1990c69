"""depthlab.analysis on hand-made run directories with known numbers."""

from __future__ import annotations

import json
import logging
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fake_runs import SWEEP, make_run, make_sweep

from depthlab import analysis
from depthlab.analysis import aggregate, find_runs, gradflow_profile, load_runs, load_table, verdicts
from depthlab.analysis.aggregation import _fixed
from depthlab.analysis.groups import exp10 as _exp
from depthlab.report import choose_heatmap_run


def by_kind(found, kind, subject=None):
    return [v for v in found if v.kind == kind and (subject is None or v.subject == subject)]


def one(found, kind, subject=None):
    hits = by_kind(found, kind, subject)
    assert len(hits) == 1, [v.text for v in found]
    return hits[0]


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path / "runs" / "sweep-a")


def test_find_runs_walks_nested_dirs_and_accepts_a_run_dir(tmp_path, sweep):
    (sweep / ".hydra").mkdir()
    (sweep / ".hydra" / "config.yaml").write_text("x: 1\n")
    (sweep / ".hydra" / "metrics_epochs.csv").write_text("epoch\n")  # hidden: never a run
    runs = find_runs([tmp_path / "runs"])
    assert sorted(p.name for p in runs) == sorted(f"{a}-{d}-s{s}" for a, d, s in SWEEP)
    # a run dir itself, and the same run twice, give it once
    again = find_runs([sweep / "plain-20-s0", sweep / "plain-20-s0", sweep / "plain-20-s0" / "summary.json"])
    assert [p.name for p in again] == ["plain-20-s0"]


def test_table_holds_what_the_runs_hold(sweep):
    table = load_table([sweep])
    assert len(table) == len(SWEEP)
    expected = sorted(SWEEP, key=lambda k: (k[0] != "plain", k[1], k[2]))  # plain first
    assert list(zip(table.arch, table.depth, table.seed)) == expected
    for _, row in table.iterrows():
        train, test, r_init, r_end = SWEEP[(row.arch, row.depth, row.seed)]
        assert row["name"] == f"{row.arch}-{row.depth}-s{row.seed}"
        assert row.final_train_error == pytest.approx(train)
        assert row.final_test_error == pytest.approx(test)
        assert row.log10_grad_ratio_init == pytest.approx(r_init)
        assert row.log10_grad_ratio == pytest.approx(r_end)
        assert row.grad_ratio_first_last == pytest.approx(10 ** r_end)
        assert row.params == 1000 * row.depth + (7 if row.arch == "residual" else 0)
        assert row.flops == 2_000_000 * row.depth
        assert (row.status, row.diverged, row.epochs_completed) == ("completed", False, 4)
        assert row.variant == row.arch and row.settings == ""
        assert Path(row.run_dir).name == row["name"]
    assert table.depth.dtype.kind == "i" and table.seed.dtype.kind == "i"


def test_aggregate_matches_an_independent_computation(sweep):
    agg = aggregate(load_table([sweep]))
    assert len(agg) == 4
    for _, row in agg.iterrows():
        keys = [k for k in SWEEP if k[:2] == (row.arch, row.depth)]
        assert (row.n, row.runs, row.seeds, row.statuses) == (2, 2, "0,1", "2 completed")
        for i, col in enumerate(["final_train_error", "final_test_error", "log10_grad_ratio_init",
                                 "log10_grad_ratio"]):
            values = [SWEEP[k][i] for k in keys]
            assert row[f"{col}_mean"] == pytest.approx(statistics.mean(values))
            assert row[f"{col}_std"] == pytest.approx(statistics.stdev(values))
            assert row[f"{col}_min"] == pytest.approx(min(values))
            assert row[f"{col}_max"] == pytest.approx(max(values))


def test_verdicts_clear_degradation_in_plain_not_in_residual(sweep):
    found = verdicts(load_table([sweep]))
    plain = one(found, "degradation", "plain")
    assert plain.holds is True
    assert plain.text.startswith("Degradation in plain nets: yes - plain-56 ends at 14.2% training "
                                 "error vs 9.8% for plain-20")
    assert "difference of 4.4 points exceeds the seeds' spread (max - min) of 0.4 points" in plain.text
    res = one(found, "degradation", "residual")
    assert res.holds is False
    assert res.text.startswith("Residual nets: deeper trains lower - residual-56 ends at 6.1% "
                               "training error vs 7.9% for residual-20")
    at56 = [v for v in by_kind(found, "plain_vs_residual") if "depth 56" in v.text]
    assert len(at56) == 1 and at56[0].holds is True
    assert at56[0].text.startswith("At depth 56, residual trains lower than plain: residual-56 6.1% "
                                   "vs plain-56 14.2% training error")
    assert "test error 8.8% vs 16.3%" in at56[0].text
    assert not by_kind(found, "excluded")


def test_verdict_within_the_seeds_spread_is_inconclusive(tmp_path):
    runs = {("plain", 20, 0): (0.09, 0.1, -1, -1), ("plain", 20, 1): (0.11, 0.1, -1, -1),
            ("plain", 56, 0): (0.10, 0.1, -1, -1), ("plain", 56, 1): (0.12, 0.1, -1, -1)}
    found = verdicts(load_table([make_sweep(tmp_path / "s", runs)]))
    v = one(found, "degradation", "plain")
    assert v.holds is None
    assert v.text.startswith("Degradation in plain nets: inconclusive - plain-56 ends at 11.0% "
                             "training error vs 10.0% for plain-20")
    assert "the difference of 1.0 points is within the seeds' spread (max - min) of 2.0 points" in v.text


def test_verdict_with_a_single_seed_says_so(tmp_path):
    runs = {k: v for k, v in SWEEP.items() if k[2] == 0}
    found = verdicts(load_table([make_sweep(tmp_path / "s", runs)]))
    v = one(found, "degradation", "plain")
    assert v.holds is True
    assert v.text.startswith("Degradation in plain nets: yes - plain-56 ends at 14.0% training error "
                             "vs 9.6% for plain-20")
    assert "single seed" in v.text
    assert all("single seed" in x.text for x in found if x.kind != "excluded")


def test_vanishing_gradient_verdicts(sweep):
    found = verdicts(load_table([sweep]))
    plain = one(found, "vanishing", "plain")
    assert plain.holds is True
    assert plain.text.startswith(
        "Vanishing gradients in plain nets: yes - at init the first layer gets 10^-3.1 of the last "
        "layer's gradient norm at depth 56 vs 10^-0.9 at depth 20; at the end 10^-1.4 vs 10^-0.5")
    res = one(found, "vanishing", "residual")
    assert res.holds is False and "about the same at every depth" in res.text


def test_vanishing_verdict_names_init_and_end_when_they_disagree(tmp_path):
    """Batch-normed plain nets on CIFAR-10: gradients grow toward the input at init, and the
    deep net's first layer falls behind as it trains; the verdict must say both."""
    runs = {("plain", 20, 0): (0.5, 0.5, 0.4, 0.1), ("plain", 20, 1): (0.5, 0.5, 0.6, -0.1),
            ("plain", 56, 0): (0.7, 0.7, 3.0, -1.5), ("plain", 56, 1): (0.7, 0.7, 3.2, -1.7)}
    v = one(verdicts(load_table([make_sweep(tmp_path / "s", runs)])), "vanishing", "plain")
    assert v.holds is True
    assert v.text == (
        "Vanishing gradients in plain nets: no at init, yes by the end of training - at init the "
        "first layer gets 10^3.1 of the last layer's gradient norm at depth 56 vs 10^0.5 at depth "
        "20; at the end 10^-1.6 vs 10^0.0 (at init: the deeper net's first layer gets relatively "
        "more: gradients grow toward the input, the change of 2.6 decades exceeds the seeds' "
        "spread of 0.2 decades; by the end: the change of 1.6 decades exceeds the seeds' spread "
        "of 0.2 decades; means of 2 seeds each)")


def test_failed_diverged_and_running_runs_are_listed_and_left_out(tmp_path, sweep):
    make_run(sweep, "plain", 110, 0, train_error=0.9, test_error=0.9, log10_ratio_init=-6,
             log10_ratio_end=-6, status="diverged")
    make_run(sweep, "residual", 110, 0, train_error=0.01, test_error=0.01, log10_ratio_init=0,
             log10_ratio_end=0, status="running")
    failed = sweep / "plain-164-s0"
    failed.mkdir()
    (failed / "summary.json").write_text(json.dumps({
        "name": "plain-164-s0", "arch": "plain", "depth": 164, "layout": "cifar", "seed": 0,
        "status": "failed", "diverged": False, "error": "CUDA out of memory"}))
    table, warnings = load_runs([sweep])
    assert warnings == [] and len(table) == len(SWEEP) + 3
    found = verdicts(table)
    # the verdicts still compare 20 with 56: the deeper runs did not complete
    assert one(found, "degradation", "plain").text.startswith(
        "Degradation in plain nets: yes - plain-56 ends at 14.2%")
    assert one(found, "degradation", "residual").text.startswith(
        "Residual nets: deeper trains lower - residual-56")
    excluded = one(found, "excluded")
    assert excluded.text == ("Left out of the verdicts: plain-110-s0 (diverged after 2 of 4 epochs); "
                             "plain-164-s0 (failed: CUDA out of memory); "
                             "residual-110-s0 (running after 2 of 4 epochs)")
    agg = aggregate(table).set_index(["arch", "depth"])
    assert agg.loc[("plain", 110), "statuses"] == "diverged"
    assert agg.loc[("plain", 110), "n"] == 0 and math.isnan(agg.loc[("plain", 110), "final_train_error_mean"])
    assert agg.loc[("plain", 164), "statuses"] == "failed"


def test_broken_runs_are_skipped_with_one_warning_each(tmp_path, sweep, caplog):
    bad_json = make_run(sweep, "plain", 32, 0, train_error=0.1, test_error=0.1, log10_ratio_init=-1,
                        log10_ratio_end=-1)
    (bad_json / "summary.json").write_text('{"name": "plain-32-s0", "arch": "pla')  # torn write
    no_summary = make_run(sweep, "plain", 44, 0, train_error=0.1, test_error=0.1,
                          log10_ratio_init=-1, log10_ratio_end=-1)
    (no_summary / "summary.json").unlink()
    not_a_dict = make_run(sweep, "residual", 32, 0, train_error=0.1, test_error=0.1,
                          log10_ratio_init=-1, log10_ratio_end=-1)
    (not_a_dict / "summary.json").write_text("[1, 2]")
    no_gradflow = make_run(sweep, "residual", 44, 0, train_error=0.07, test_error=0.09,
                           log10_ratio_init=-0.1, log10_ratio_end=-0.1)
    (no_gradflow / "gradflow.csv").unlink()
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        table, warnings = load_runs([sweep])
    assert len(warnings) == 4
    assert [r.getMessage() for r in caplog.records if r.name == "depthlab"] == warnings
    assert any("plain-32-s0" in w and "not valid JSON" in w for w in warnings)
    assert any("plain-44-s0" in w and "no summary.json" in w for w in warnings)
    assert any("residual-32-s0" in w and "JSON object" in w for w in warnings)
    assert any("residual-44-s0" in w and "gradflow.csv" in w for w in warnings)
    # the rest are reported, the run without gradflow.csv included
    assert sorted(table["name"]) == sorted([f"{a}-{d}-s{s}" for a, d, s in SWEEP] + ["residual-44-s0"])


def test_settings_that_differ_make_separate_variants_not_seeds(tmp_path):
    root = tmp_path / "s"
    for norm, (tr20, tr56) in {"batch": (0.10, 0.14), "none": (0.30, 0.60)}.items():
        for depth, tr in ((20, tr20), (56, tr56)):
            make_run(root, "plain", depth, 0, train_error=tr, test_error=tr, log10_ratio_init=-1,
                     log10_ratio_end=-1, norm=norm, name=f"plain-{depth}-{norm}")
    table = load_table([root])
    assert set(table.variant) == {"plain (norm=batch)", "plain (norm=none)"}
    assert len(aggregate(table)) == 4
    found = by_kind(verdicts(table), "degradation")
    texts = sorted(v.text for v in found)
    assert texts[0].startswith("Degradation in plain nets (norm=batch): yes - plain-56 ends at 14.0%")
    assert texts[1].startswith("Degradation in plain nets (norm=none): yes - plain-56 ends at 60.0%")


def test_gradflow_profile_at_init_and_end_leaves_out_shortcut_layers(sweep):
    run = sweep / "residual-20-s0"  # log10 ratio -0.1 at init, 0.0 at the end
    init = gradflow_profile(run, "init")
    assert list(init.columns) == ["layer_index", "layer", "position", "step", "grad_norm"]
    assert list(init.position) == list(range(1, 21)) and (init.step == 0).all()
    assert init.grad_norm.iloc[-1] == pytest.approx(0.5)
    assert init.grad_norm.iloc[0] / init.grad_norm.iloc[-1] == pytest.approx(10 ** -0.1)
    assert 0.123 not in set(init.grad_norm)  # the projection shortcuts
    end = gradflow_profile(run, "end")
    assert end.step.iloc[0] == 19 and end.grad_norm.iloc[0] == pytest.approx(0.5)
    # a kill mid-write leaves a partial last step: "end" takes the last complete one
    with open(run / "gradflow.csv", "a") as f:
        f.write("20,5,1,conv1,stem,0,9.0,1.0,9.0\n21,5,2,layer")
    assert gradflow_profile(run, "end").step.iloc[0] == 19
    with pytest.raises(ValueError):
        gradflow_profile(run, "middle")
    assert gradflow_profile(sweep / "nowhere", "init").empty


def test_nets_at_chance_get_no_verdict(tmp_path):
    # 10 classes: guessing gives 90% training error; within 2 points of it = not trained
    runs = {("plain", 20, 0): (0.893, 0.89, -0.3, -0.3), ("plain", 56, 0): (0.900, 0.90, -0.1, 0.3),
            ("residual", 20, 0): (0.839, 0.82, -0.6, -0.3), ("residual", 56, 0): (0.6, 0.6, 0, 0)}
    table = load_table([make_sweep(tmp_path / "s", runs)])
    found = {(v.kind, v.subject.split(" @ ")[-1]): v for v in verdicts(table)}
    plain = next(v for v in verdicts(table) if v.kind == "degradation" and v.subject == "plain")
    assert plain.holds is None
    assert plain.text.startswith("Degradation in plain nets: cannot tell - plain-20 and plain-56 "
                                 "both stayed at chance (89.3% and 90.0% training error; "
                                 "guessing gives 90.0%)")
    # 83.9% is 6 points under chance: residual-20 trained (badly); residual-56 trained better
    residual = next(v for v in verdicts(table) if v.kind == "degradation" and v.subject == "residual")
    assert residual.holds is False and "not trained" not in residual.text
    # plain vs residual at 20: one side trained, so it is called; at 56 too
    assert found[("plain_vs_residual", "20")].holds is True

    # the same numbers on a 100-class data set are far from chance (99%): a verdict again
    for run in (tmp_path / "s").iterdir():
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "num_classes": 100}))
    plain = next(v for v in verdicts(load_table([tmp_path / "s"]))
                 if v.kind == "degradation" and v.subject == "plain")
    assert plain.holds is True and "chance" not in plain.text


def test_deep_net_at_chance_is_named_in_the_degradation_verdict(tmp_path):
    runs = {("plain", 20, 0): (0.40, 0.45, -0.3, -0.3), ("plain", 56, 0): (0.899, 0.90, -0.1, 0.3)}
    v = verdicts(load_table([make_sweep(tmp_path / "s", runs)]))[0]
    assert v.holds is True
    assert v.text.endswith("; at chance (90.0%), i.e. not trained: plain-56")


def test_grad_ratio_series_follows_the_written_ratio_and_stops_at_divergence(tmp_path):
    from fake_runs import GRADFLOW_EVERY, STEPS_PER_EPOCH

    # make_run writes first / last = 10^r, r moving linearly from init to end over the steps
    run = make_run(tmp_path, "residual", 20, 0, train_error=0.1, test_error=0.1,
                   log10_ratio_init=-2.0, log10_ratio_end=1.0)
    total = 4 * STEPS_PER_EPOCH
    steps = sorted(set(range(0, total, GRADFLOW_EVERY)) | {total - 1})
    series = analysis.grad_ratio_series(run)
    assert series["step"].tolist() == steps
    expected = [-2.0 + 3.0 * s / (total - 1) for s in steps]
    assert series["log10_ratio"].tolist() == pytest.approx(expected, abs=1e-9)

    # a record that blew up (inf, then NaN) ends the series there; a torn last row is dropped
    frame = pd.read_csv(run / "gradflow.csv")
    frame.loc[(frame["step"] == steps[-2]) & (frame["layer_index"] == 1), "grad_norm"] = float("inf")
    frame.loc[frame["step"] == steps[-1], "grad_norm"] = float("nan")
    frame.to_csv(run / "gradflow.csv", index=False)
    assert analysis.grad_ratio_series(run)["step"].tolist() == steps[:-2]
    (run / "gradflow.csv").unlink()
    assert analysis.grad_ratio_series(run).empty


def test_no_completed_runs_gives_one_plain_verdict(tmp_path):
    make_run(tmp_path / "s", "plain", 20, 0, train_error=0.5, test_error=0.5, log10_ratio_init=-1,
             log10_ratio_end=-1, status="running")
    found = verdicts(load_table([tmp_path / "s"]))
    assert [v.kind for v in found] == ["none", "excluded"]


def test_analysis_and_plots_do_not_import_torch():
    code = ("import sys, depthlab.analysis, depthlab.plots, depthlab.cli.report; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_empty_table_has_the_columns(tmp_path):
    table = load_table([tmp_path])
    assert table.empty and {"arch", "depth", "final_train_error", "run_dir"} <= set(table.columns)
    assert aggregate(table).empty and analysis.comparison_rows(table) == []


def test_table_from_two_sweeps_sorts_by_arch_depth_seed(tmp_path):
    make_sweep(tmp_path / "a", {k: v for k, v in SWEEP.items() if k[2] == 1})
    make_sweep(tmp_path / "b", {k: v for k, v in SWEEP.items() if k[2] == 0})
    table = load_table([tmp_path / "a", tmp_path / "b"])
    assert list(table.name) == ["plain-20-s0", "plain-20-s1", "plain-56-s0", "plain-56-s1",
                                "residual-20-s0", "residual-20-s1", "residual-56-s0", "residual-56-s1"]
    assert isinstance(table, pd.DataFrame)


def test_heatmap_run_defaults_to_the_deepest_completed_plain_run(tmp_path, sweep):
    table = load_table([sweep])
    assert choose_heatmap_run(table)["name"] == "plain-56-s0"
    assert choose_heatmap_run(table, "residual-20-s1")["name"] == "residual-20-s1"
    with pytest.raises(KeyError, match="plain-20-s0"):
        choose_heatmap_run(table, "plain-999-s0")
    make_run(sweep, "plain", 110, 0, train_error=0.9, test_error=0.9, log10_ratio_init=-6,
             log10_ratio_end=-6, status="diverged")
    assert choose_heatmap_run(load_table([sweep]))["name"] == "plain-56-s0"
    only_residual = make_sweep(tmp_path / "r", {k: v for k, v in SWEEP.items() if k[0] == "residual"})
    assert choose_heatmap_run(load_table([only_residual]))["name"] == "residual-56-s0"


def test_comparison_rows_format(sweep):
    rows = analysis.comparison_rows(load_table([sweep]))
    assert rows[0] == ["20", "plain", "0.02", "40.0M", "9.8 ± 0.3", "12.2 ± 0.3", "-0.85 ± 0.07",
                       "-0.45 ± 0.07", "2 completed"]
    assert [r[:2] for r in rows] == [["20", "plain"], ["20", "residual"], ["56", "plain"],
                                     ["56", "residual"]]
    compact = analysis.comparison_rows(load_table([sweep]), compact=True)
    assert compact[3][4:8] == ["6.1±0.1", "8.8±0.3", "-0.1±0.1", "-0.1±0.1"]
    assert analysis.format_flops(4.1e9) == "4.10G" and analysis.format_flops(8.1e7) == "81.0M"
    assert _fixed(-0.04, 1) == "0.0" and _exp(-0.01) == "10^0.0"


def test_shortcut_nets_are_compared_only_with_plain_nets_of_the_same_settings(tmp_path):
    root = tmp_path / "s"
    for arch, norm, tr in (("plain", "batch", 0.10), ("plain", "none", 0.50),
                           ("residual", "batch", 0.08), ("dense", "batch", 0.12)):
        make_run(root, arch, 40, 0, train_error=tr, test_error=tr, log10_ratio_init=-1,
                 log10_ratio_end=-1, norm=norm, name=f"{arch}-40-{norm}")
    found = verdicts(load_table([root]))
    res, dense = one(found, "plain_vs_residual"), one(found, "plain_vs_dense")
    assert res.holds is True and res.text.startswith(
        "At depth 40 (norm=batch), residual trains lower than plain: residual-40 8.0% vs plain-40 10.0%")
    assert dense.holds is False and dense.text.startswith(
        "At depth 40 (norm=batch), plain trains lower than dense: dense-40 12.0% vs plain-40 10.0%")
    assert "single seed" in res.text


def test_settings_both_sides_share_are_named_once(tmp_path):
    root = tmp_path / "s"
    for arch, norm, tr in (("plain", "batch", 0.10), ("plain", "none", 0.50),
                           ("residual", "batch", 0.08), ("residual", "none", 0.40)):
        make_run(root, arch, 40, 0, train_error=tr, test_error=tr, log10_ratio_init=-1,
                 log10_ratio_end=-1, norm=norm, name=f"{arch}-40-{norm}")
    texts = sorted(v.text for v in verdicts(load_table([root])) if v.kind == "plain_vs_residual")
    assert [t.split(":")[0] for t in texts] == [
        "At depth 40 (norm=batch), residual trains lower than plain",
        "At depth 40 (norm=none), residual trains lower than plain"]
