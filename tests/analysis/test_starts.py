"""How a run started (issue #17): the `start` column from config.yaml, runs told apart by
it in the table and the verdicts, and the per-block backward signal read for the figures."""

from __future__ import annotations

import csv

import pytest
import yaml
from fake_runs import make_run

from depthlab.analysis import block_profile, load_runs, verdicts
from depthlab.report.figures import FIGURES, make_figures


def with_start(run, start: str, zero_init: bool = False):
    """Give a fake run the config a start=... run writes (conf/start/); train.run's
    summary does not hold the start."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["start"] = {"name": start}
    cfg["arch"]["zero_init_residual"] = zero_init
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run


def test_starts_are_told_apart_and_judged_each_beyond_the_seed_spread(tmp_path):
    # residual-56 trails residual-20 with the paper's start, catches up with the warm-up
    errors = {("paper", 20): (0.40, 0.42), ("paper", 56): (0.66, 0.70),
              ("warmup", 20): (0.38, 0.40), ("warmup", 56): (0.30, 0.33)}
    for (start, depth), pair in errors.items():
        for seed, err in enumerate(pair):
            run = make_run(tmp_path, "residual", depth, seed, train_error=err, test_error=err,
                           log10_ratio_init=-0.5, log10_ratio_end=-0.3,
                           name=f"residual-{depth}-{start}-s{seed}")
            with_start(run, start)
    table, warnings = load_runs([tmp_path])
    assert not warnings  # two runs per (start, depth, seed): no "counted as seeds" warning
    assert set(table.start) == {"paper", "warmup"}
    assert set(table.variant) == {"residual (start=paper)", "residual (start=warmup)"}
    found = {v.subject: v for v in verdicts(table) if v.kind == "degradation"}
    paper, warmup = found["residual (start=paper)"], found["residual (start=warmup)"]
    assert paper.holds is True and "deeper is worse" in paper.text
    assert warmup.holds is False and "exceeds the seeds' spread" in warmup.text


def test_zero_init_start_is_not_labelled_twice(tmp_path):
    for start, zero in (("paper", False), ("zero_init", True)):
        for seed in (0, 1):
            run = make_run(tmp_path, "residual", 20, seed, train_error=0.4, test_error=0.4,
                           log10_ratio_init=-0.5, log10_ratio_end=-0.3,
                           name=f"residual-20-{start}-s{seed}",
                           summary={"zero_init_residual": zero})
            with_start(run, start, zero)
    table, _ = load_runs([tmp_path])
    assert table.zero_init_residual.map(bool).tolist().count(True) == 2
    assert set(table.variant) == {"residual (start=paper)", "residual (start=zero_init)"}


def test_the_plain_control_is_labelled_with_its_start_and_paired_with_that_start_only(tmp_path):
    # plain nets with the warm-up only, residual nets with two starts (cifar10_init's two sweeps)
    errors = {("plain", "warmup"): 0.74, ("residual", "paper"): 0.75, ("residual", "warmup"): 0.46}
    for (arch, start), err in errors.items():
        for seed in (0, 1):
            run = make_run(tmp_path, arch, 56, seed, train_error=err + seed / 100,
                           test_error=err, log10_ratio_init=-0.5, log10_ratio_end=-0.3,
                           name=f"{arch}-56-{start}-s{seed}")
            with_start(run, start)
    table, _ = load_runs([tmp_path])
    assert set(table.variant) == {"plain (start=warmup)", "residual (start=paper)",
                                  "residual (start=warmup)"}
    pairs = [v for v in verdicts(table) if v.kind == "plain_vs_residual"]
    # residual with the paper's start is not compared with a plain net that warmed up
    assert [v.subject for v in pairs] == ["residual (start=warmup) vs plain (start=warmup) @ 56"]
    assert pairs[0].holds is True and pairs[0].text.startswith("At depth 56 (start=warmup), ")


def write_back_norms(run, rows):
    with open(run / "activations.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["step", "epoch", "block_index", "block", "act_std", "back_norm"])
        w.writerows(rows)


def test_block_profile_reads_the_backward_signal_at_init_and_at_the_end(tmp_path):
    run = make_run(tmp_path, "residual", 8, 0, train_error=0.4, test_error=0.4,
                   log10_ratio_init=-0.5, log10_ratio_end=-0.3)
    write_back_norms(run, [[0, 1, i, f"layer{i + 1}.0", 1.0, 0.1 * (3 - i)] for i in range(3)]
                     + [[10, 2, i, f"layer{i + 1}.0", 1.0, 0.01 * (i + 1)] for i in range(3)]
                     + [[19, 4, 0, "layer1.0", 1.0, 5.0]])  # a last record cut short by a kill
    init = block_profile(run, "init")
    assert init.back_norm.tolist() == pytest.approx([0.3, 0.2, 0.1])
    assert init.position.tolist() == [1, 2, 3] and set(init.step) == {0}
    end = block_profile(run, "end")
    assert end.back_norm.tolist() == pytest.approx([0.01, 0.02, 0.03]) and set(end.step) == {10}
    # a run made before back_norm was recorded: nothing to read, and the report says why
    old = make_run(tmp_path, "plain", 8, 0, train_error=0.5, test_error=0.5,
                   log10_ratio_init=0.5, log10_ratio_end=0.1)
    assert block_profile(old, "init").empty


def test_report_draws_the_backward_signal_only_when_recorded(tmp_path):
    runs = tmp_path / "runs"
    run = make_run(runs, "residual", 8, 0, train_error=0.4, test_error=0.4,
                   log10_ratio_init=-0.5, log10_ratio_end=-0.3)
    table, _ = load_runs([runs])
    notes: list[str] = []
    made = make_figures(table, tmp_path / "a", notes=notes)
    # runs made before back_norm was recorded: no figure, and no note in every old report
    assert "back_norm" not in made and not any("back_norm" in n for n in notes)
    assert not (tmp_path / "a" / FIGURES["back_norm"][0]).exists()
    write_back_norms(run, [[0, 1, i, f"layer{i + 1}.0", 1.0, 0.1] for i in range(3)])
    made = make_figures(table, tmp_path / "b")
    assert made["back_norm"].name == FIGURES["back_norm"][0] and made["back_norm"].stat().st_size
