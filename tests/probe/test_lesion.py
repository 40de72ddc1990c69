"""`depthlab lesion` on fixture run directories (seeded nets, no training)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from cli.helpers import evaluate_by_hand
from typer.testing import CliRunner

from depthlab.cli import app
from depthlab.data import build_data
from depthlab.lesion import LesionError, blocks_of, lesion, lesioned, load_run
from depthlab.models import build_model


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_nothing_deleted_reproduces_an_independent_evaluation(fixture_runs):
    run_dir = fixture_runs["residual"]
    table = lesion(load_run(run_dir, device="cpu"))
    original = table[table.status == "original"].iloc[0]

    # independently: the checkpoint's weights in a net built here, the test set evaluated here
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = build_model("residual", 14, layout="cifar", num_classes=10)
    model.load_state_dict(state["model"])
    data = build_data({"name": "synthetic", "train_size": 64, "test_size": 96},
                      batch_size=32, eval_batch_size=96, device="cpu", seed=0)
    error, loss, total = evaluate_by_hand(model, data.test)
    assert total == 96
    assert original.test_error == error
    assert original.test_loss == pytest.approx(loss, rel=1e-5)
    assert 0 < original.test_error < 1


def _by_hand(model, x, deleted: str) -> torch.Tensor:
    """The residual net's forward written out, with block `deleted` reduced to its
    shortcut: x itself, or option A's subsample-and-zero-pad."""
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for name in model.block_names():
        block = model.get_submodule(name)
        if name != deleted:
            h = block(h)
        elif block.downsample is None:
            h = h
        else:
            sub = h[:, :, ::2, ::2]
            extra = block.conv2.out_channels - h.shape[1]
            h = torch.cat([sub.new_zeros(sub.shape[0], extra // 2, *sub.shape[2:]), sub,
                           sub.new_zeros(sub.shape[0], extra - extra // 2, *sub.shape[2:])], 1)
    return model.fc(torch.flatten(model.avgpool(h), 1))


def test_deleting_a_residual_block_changes_the_output_only_through_that_block(fixture_runs):
    run = load_run(fixture_runs["residual"], device="cpu")
    model = run.model
    x = next(iter(run.data.test))[0]
    with torch.no_grad():
        intact = model(x)
        for b in blocks_of(model):
            with lesioned(model, b.name):
                deleted = model(x)
            torch.testing.assert_close(deleted, _by_hand(model, x, b.name), rtol=0, atol=0)
            assert not torch.equal(deleted, intact), b.name
        assert torch.equal(model(x), intact)  # every override undone
    names = [b.name for b in blocks_of(model) if b.downsampling]
    assert names == ["layer2.0", "layer3.0"]


def test_plain_blocks_that_change_shape_are_na(fixture_runs):
    run = load_run(fixture_runs["plain"], device="cpu")
    table = lesion(run)
    status = dict(zip(table.block, table.status))
    assert status == {"": "original", "layer1.0": "ok", "layer1.1": "ok", "layer2.0": "n/a",
                      "layer2.1": "ok", "layer3.0": "n/a", "layer3.1": "ok"}
    with pytest.raises(LesionError, match="changes the shape"):
        with lesioned(run.model, "layer2.0"):
            pass
    x = next(iter(run.data.test))[0]
    with torch.no_grad(), lesioned(run.model, "layer1.1"):
        # a deleted plain block is the identity: layer1.1 sees what layer1.0 made
        seen = {}

        def hook(module, args):
            seen["in"] = args[0]

        run.model.layer2[0].register_forward_pre_hook(hook)
        run.model(x)
        h = run.model.relu(run.model.bn1(run.model.conv1(x)))
        torch.testing.assert_close(seen["in"], run.model.layer1[0](h), rtol=0, atol=0)


def test_cli_residual_and_plain_side_by_side(fixture_runs, tmp_path):
    out = tmp_path / "lesion-out"
    result = cli("lesion", str(fixture_runs["residual"]), str(fixture_runs["plain"]),
                 "--out", str(out), "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "lesion.csv")
    assert set(table.run) == {"residual-14-s0", "plain-14-s0"}
    assert len(table) == 2 * (1 + 6)
    assert (out / "lesion.png").stat().st_size > 10_000
    text = " ".join(result.output.split())
    assert "Veit et al. 2016" in text and "n/a" in text
    assert "no better than chance" in text  # untrained fixtures: nothing to judge


@pytest.mark.parametrize("make, words", [
    (lambda p: p, "no such run directory"),
    (lambda p: (p.mkdir(), p)[1], "no config.yaml"),
])
def test_cli_bad_run_dir_is_one_line(tmp_path, make, words):
    path = make(tmp_path / "nothing-here")
    result = cli("lesion", str(path))
    assert result.exit_code != 0
    lines = [l for l in result.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and words in lines[0], result.output


def test_a_dense_run_is_refused(tmp_path):
    run = tmp_path / "dense-40-s0"
    run.mkdir()
    (run / "config.yaml").write_text("arch: {name: dense, layout: cifar}\ndepth: 40\nseed: 0\n"
                                     "data: {name: synthetic}\n")
    with pytest.raises(LesionError, match="dense net"):
        load_run(run)


def test_a_run_without_checkpoint_is_refused(fixture_runs, tmp_path):
    run = tmp_path / "copy"
    run.mkdir()
    (run / "config.yaml").write_text((fixture_runs["residual"] / "config.yaml").read_text())
    with pytest.raises(LesionError, match="no readable checkpoint"):
        load_run(run)
