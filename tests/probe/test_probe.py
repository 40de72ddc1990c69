"""`depthlab probe`: values against an independent computation, the batch-norm finding,
the override parser and the command end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from depthlab.cli import app
from depthlab.models import build_model
from depthlab.probe import ProbeError, ProbeSettings, configurations, run_probe, write_probe


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def one_line_error(result) -> str:
    lines = [l for l in result.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_probe_equals_an_independent_computation():
    """plain-20, seed 0: every layer's gradient norm, the last block's output std and the
    first/last ratio equal a forward/backward done here by hand, layers in module order."""
    result = run_probe(ProbeSettings(archs=("plain",), depths=(20,), norms=("batch",), seeds=1,
                                     batch=4, threads=1))

    torch.manual_seed(0)
    model = build_model("plain", 20, layout="cifar", norm="batch")
    g = torch.Generator().manual_seed(0)  # the probe's synthetic batch for seed 0
    x = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (4,), generator=g)
    seen = {}

    def hook(module, inputs, output):
        seen["act"] = output.std().item()

    model.layer3[-1].register_forward_hook(hook)
    model.train()
    F.cross_entropy(model(x), y).backward()
    weighted = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    expected = [m.weight.grad.norm().item() for _, m in weighted]

    layers = result.layers
    assert list(layers.layer) == [n for n, _ in weighted]
    assert list(layers.layer_index) == list(range(1, 21))
    assert layers.grad_norm.tolist() == pytest.approx(expected, rel=1e-5)
    assert layers.weight_norm.tolist() == pytest.approx(
        [m.weight.norm().item() for _, m in weighted], rel=1e-5)
    assert result.blocks.act_std.iloc[-1] == pytest.approx(seen["act"], rel=1e-5)
    row = result.summary.iloc[0]
    assert row.log10_ratio_mean == pytest.approx(math.log10(expected[0] / expected[-1]), abs=1e-5)
    assert row.act_std_final_mean == pytest.approx(seen["act"], rel=1e-5)


def test_probe_back_norm_equals_autograd_grad_on_block_outputs():
    """residual-20 without batch norm, seed 0: the backward signal ||dL/dh_b|| of every block
    (probe_blocks.csv) equals torch.autograd.grad of the loss w.r.t. the block outputs."""
    result = run_probe(ProbeSettings(archs=("residual",), depths=(20,), norms=("none",), seeds=1,
                                     batch=4, threads=1))
    torch.manual_seed(0)
    model = build_model("residual", 20, layout="cifar", norm="none")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (4,), generator=g)
    blocks = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    modules = dict(model.named_modules())
    outs = {}
    for name in blocks:
        modules[name].register_forward_hook(lambda m, i, o, name=name: outs.__setitem__(name, o))
    model.train()
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, [outs[b] for b in blocks])
    expected = [gr.double().norm().item() for gr in grads]

    assert list(result.blocks.block) == blocks
    assert result.blocks.back_norm.tolist() == pytest.approx(expected, rel=1e-4)
    row = result.summary.iloc[0]
    assert row.log10_back_ratio_mean == pytest.approx(math.log10(expected[0] / expected[-1]),
                                                      abs=1e-4)


def test_side_by_side_passes_give_the_same_numbers():
    """threads=2 runs passes concurrently; builds are serialised, so seed s still gives
    the same weights and the same gradients as one pass at a time."""
    common = dict(depths=(8, 14), seeds=2, batch=2)
    one = run_probe(ProbeSettings(threads=1, **common))
    two = run_probe(ProbeSettings(threads=2, **common))
    pd.testing.assert_frame_equal(one.layers, two.layers)
    pd.testing.assert_frame_equal(one.blocks, two.blocks)


def test_removing_batch_norm_collapses_the_plain_ratio_not_the_residual_one():
    """Seeded, depth 56, batch 4, 3 seeds. With batch norm a plain net's gradient grows
    toward the input (first/last ~10^3.3); without it the ratio falls to ~10^-0.2, more
    than 3 decades lower. A residual net's ratio moves by less than a decade (~10^-0.3
    -> ~10^-1.0)."""
    result = run_probe(ProbeSettings(archs=("plain", "residual"), depths=(56,),
                                     norms=("batch", "none"), seeds=3, batch=4))
    s = result.summary.set_index(["arch", "norm"]).log10_ratio_mean
    plain_drop = s["plain", "batch"] - s["plain", "none"]
    residual_change = s["residual", "batch"] - s["residual", "none"]
    assert result.summary.finite_seeds.tolist() == [3, 3, 3, 3]
    assert plain_drop > 2.5, s
    assert abs(residual_change) < 1.0, s
    assert plain_drop > 3 * abs(residual_change)


def test_grid_order_and_shortcuts_apply_to_residual_nets_only():
    configs = configurations(ProbeSettings(archs=("plain", "residual"), depths=(20, 56),
                                           norms=("batch",), shortcuts=("A", "B")))
    assert [(c.arch, c.depth, c.shortcut) for c in configs] == [
        ("plain", 20, None), ("plain", 56, None),
        ("residual", 20, "A"), ("residual", 56, "A"), ("residual", 20, "B"), ("residual", 56, "B")]
    with pytest.raises(ProbeError, match="depth 21 is not a residual/plain depth"):
        configurations(ProbeSettings(depths=(20, 21)))
    with pytest.raises(ProbeError, match="dense: depth 20 is not a dense"):
        configurations(ProbeSettings(archs=("dense",), depths=(20,)))


def test_default_grid_is_the_story():
    s = ProbeSettings()
    assert (s.archs, s.depths, s.norms, s.seeds, s.layout) == (
        ("plain", "residual"), (20, 56, 110, 218, 1202), ("batch", "none"), 3, "cifar")
    assert len(configurations(s)) == 20  # every depth is valid (218 = 6 * 36 + 2)


def test_overrides_parse_like_hydra():
    from depthlab.cli.probe import parse_args

    s = parse_args(["arch=residual", "depth=range(8,21,6)", "norm=none", "shortcut=A,C",
                    "seeds=2", "batch=8", "name=x"])
    assert (s.archs, s.depths, s.norms, s.shortcuts, s.seeds, s.batch, s.name) == (
        ("residual",), (8, 14, 20), ("none",), ("A", "C"), 2, 8, "x")
    s = parse_args(["data=synthetic", "data.test_size=64"])
    assert s.data["name"] == "synthetic" and s.data["test_size"] == 64


def test_nonfinite_ratios_are_reported_not_hidden():
    """Without normalisation a residual net's activations double in variance per block:
    at 1202 layers they leave float32, and the summary says so instead of a number."""
    result = run_probe(ProbeSettings(archs=("residual",), depths=(1202,), norms=("none",),
                                     seeds=1, batch=1))
    row = result.summary.iloc[0]
    assert row.finite_seeds == 0 and math.isnan(row.log10_ratio_mean)
    assert "overflow" in row.note


def test_cli_tiny_grid_writes_the_probe_directory():
    result = cli("probe", "depth=8,14", "seeds=2", "batch=2", "out=probe-tiny")
    assert result.exit_code == 0, result.output
    out = Path("probe-tiny")
    for name in ("probe.json", "probe.csv", "probe_blocks.csv", "summary.csv", "report.md",
                 "gradflow_vs_position.png", "ratio_vs_depth.png", "act_std_vs_depth.png",
                 "back_norm_vs_position.png"):
        assert (out / name).is_file(), name
    assert "first/last" in result.output and "residual" in result.output
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 8 and (summary.seeds == 2).all()
    layers = pd.read_csv(out / "probe.csv")
    assert list(layers.columns) == ["arch", "depth", "norm", "shortcut", "branch", "seed",
                                    "layer_index", "layer", "stage", "shortcut_layer", "grad_norm",
                                    "weight_norm"]
    assert len(layers) == 2 * 2 * 2 * (8 + 14)  # archs x norms x seeds x layers
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 16
    s = json.loads((runs[0] / "summary.json").read_text())
    assert s["status"] == "completed" and s["final_train_error"] is None
    assert s["grad_ratio_first_last_init"] == s["grad_ratio_first_last"] > 0
    gf = pd.read_csv(runs[0] / "gradflow.csv")
    assert set(gf.step) == {0} and len(gf) == s["depth"]
    # the run directory's activations.csv holds the probe's backward signal, block by block
    acts = pd.read_csv(runs[0] / "activations.csv")
    blocks = pd.read_csv(out / "probe_blocks.csv")
    mine = blocks[(blocks.arch == s["arch"]) & (blocks.depth == s["depth"])
                  & (blocks.norm == s["norm"]) & (blocks.seed == s["seed"])]
    assert acts.back_norm.tolist() == pytest.approx(mine.back_norm.tolist())
    # what depthlab report reads
    from depthlab.analysis import load_runs

    table, warnings = load_runs([out / "runs"])
    assert len(table) == 16 and not warnings
    assert table.log10_grad_ratio_init.notna().all()
    # running it again replaces the probe directory's files
    again = cli("probe", "depth=8", "seeds=1", "batch=2", "arch=plain", "out=probe-tiny")
    assert again.exit_code == 0, again.output
    assert len(list((out / "runs").iterdir())) == 2


@pytest.mark.parametrize("args, words", [
    (["foo=1"], ["unknown key 'foo'", "valid keys: arch, depth"]),
    (["dpeth=20"], ["did you mean depth?"]),
    (["depth=21"], ["depth 21 is not a residual/plain depth", "6n+2"]),
    (["norm=layer"], ["unknown norm 'layer'", "batch, none"]),
    (["seeds=1,2"], ["seeds takes one value"]),
    (["data.root=/x"], ["needs a data set"]),
    (["depth=20", "--fast"], ["unknown option '--fast'"]),
    (["depth=abc"], ["depth must be an integer"]),
])
def test_cli_mistakes_are_one_line(args, words):
    result = cli("probe", *args)
    assert result.exit_code != 0
    line = one_line_error(result)
    for w in words:
        assert w in line, line


def test_cli_refuses_a_directory_that_is_not_a_probe():
    Path("taken").mkdir()
    Path("taken/notes.txt").write_text("mine")
    result = cli("probe", "depth=8", "seeds=1", "out=taken")
    assert result.exit_code != 0
    assert "not a probe directory" in one_line_error(result)
    assert Path("taken/notes.txt").read_text() == "mine"


def test_wandb_failure_is_one_warning(monkeypatch):
    import depthlab.probe

    def broken(*a, **k):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(depthlab.probe, "log_wandb", broken)
    result = cli("probe", "depth=8", "seeds=1", "batch=2", "arch=plain", "norm=batch",
                 "logger=wandb", "out=p")
    assert result.exit_code == 0, result.output
    assert result.output.count("W&B logging failed") == 1
    assert Path("p/summary.csv").is_file()


def test_write_probe_real_data(tmp_path):
    """data=... takes the first training batch of a real data set (here synthetic images)."""
    settings = ProbeSettings(archs=("residual",), depths=(8,), norms=("batch",), seeds=2, batch=4,
                             data={"name": "synthetic", "train_size": 32, "test_size": 16})
    result = run_probe(settings)
    assert result.data_name == "synthetic"
    paths = write_probe(result, tmp_path / "p")
    assert "synthetic" in paths["report"].read_text()


@pytest.mark.slow
def test_wandb_offline_run_holds_the_table_and_figures(tmp_path):
    """logger=wandb: one offline W&B run (WANDB_MODE=offline from conftest) with the summary
    as a wandb.Table and the four figures as images."""
    result = cli("probe", "depth=8", "seeds=1", "batch=2", "arch=plain", "norm=batch",
                 "logger=wandb", "out=p")
    assert result.exit_code == 0, result.output
    assert "W&B logging failed" not in result.output
    media = list((tmp_path / "wandb").glob("wandb/offline-run-*/files/media"))
    assert len(media) == 1
    assert len(list(media[0].glob("table/probe/summary_*.table.json"))) == 1
    assert {p.name.split("_")[0] for p in media[0].glob("images/probe/*.png")} == {
        "profile", "ratio", "act", "back"}


def test_norm_free_branches_in_the_grid():
    """branch=... adds residual nets with a norm-free start; Fixup only where there is no
    norm. At init SkipInit/ReZero nets are their shortcut path: every block's branch is
    switched off, so the gradient reaches the stem undiminished by depth; Fixup's
    classifier starts at 0, so no gradient reaches below it at step 0."""
    settings = ProbeSettings(archs=("plain", "residual"), depths=(20, 56), norms=("batch", "none"),
                             branches=("standard", "skipinit", "rezero", "fixup"), seeds=1,
                             batch=2, threads=1)
    configs = configurations(settings)
    seen = {(c.arch, c.branch, c.norm) for c in configs}
    assert ("residual", "fixup", "none") in seen and ("residual", "fixup", "batch") not in seen
    assert {c.branch for c in configs if c.arch == "plain"} == {"standard"}
    assert len(configs) == 2 * (2 + 2 + 2 + 2 + 1)  # depths x (plain, standard, skipinit, rezero x 2 norms; fixup)
    result = run_probe(settings)
    s = result.summary.set_index(["arch", "branch", "norm", "depth"])
    b = result.blocks
    for branch, norm in (("skipinit", "none"), ("rezero", "none"), ("rezero", "batch")):
        # the last block's ||dL/dh|| comes from the pooling, before SkipInit's last ReLU masks it
        mine = b[(b.branch == branch) & (b.norm == norm) & (b.depth == 20)].iloc[:-1]
        stage = mine.block.str.split(".").str[0]
        # every block of a stage passes the signal on unchanged: one ||dL/dh|| per stage
        for _, g in mine.groupby(stage):
            assert g.back_norm.tolist() == pytest.approx([g.back_norm.iloc[0]] * len(g), rel=1e-5)
    standard = b[(b.branch == "standard") & (b.norm == "none") & (b.depth == 20)
                 & (b.arch == "residual")]
    assert standard.back_norm.iloc[0] != pytest.approx(standard.back_norm.iloc[1], rel=1e-3)
    fixup = s.loc[("residual", "fixup", "none", 20)]
    assert fixup.finite_seeds == 0 and "zero-initialised classifier" in fixup.note
    assert (b[b.branch == "fixup"].back_norm == 0).all()
    assert {"plain", "residual"} == set(result.summary.arch)
