"""`depthlab train` end to end, through the real CLI, Hydra and files on disk."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import TINY, cli, csv, summary

from depthlab.config import compose_config, group_options
from depthlab.data import build_data
from depthlab.models import build_model, describe


@pytest.mark.parametrize("group", ["arch", "data", "optim", "schedule", "trainer", "logger",
                                   "experiment", "start"])
def test_every_config_composes(group):
    options = group_options(group)
    assert options, f"no options in conf/{group}"
    for option in options:
        cfg = compose_config([f"{group}={option}"])
        assert cfg.depth and cfg.arch.name in ("plain", "residual", "dense")


def test_train_synthetic_writes_the_run_directory(tmp_path):
    result = cli("train", "arch=plain", *TINY)
    assert result.exit_code == 0, result.output
    run = Path("runs/plain-8-s0")
    s = summary(run)
    assert s["status"] == "completed" and s["diverged"] is False
    assert (s["arch"], s["depth"], s["layout"], s["epochs_completed"]) == ("plain", 8, "cifar", 2)
    d = describe(build_model("plain", 8, layout="cifar"))
    assert s["params"] == d["params"] and s["flops"] == d["flops"]
    for key in ("final_train_error", "final_test_error", "best_test_error"):
        assert 0.0 <= s[key] <= 1.0
    assert s["steps_completed"] == 2 * (128 // 32)
    assert math.isfinite(s["grad_ratio_first_last"]) and math.isfinite(s["grad_ratio_first_last_init"])
    epochs = csv(run, "metrics_epochs.csv")
    assert list(epochs.epoch) == [1, 2] and list(epochs.step) == [4, 8]
    assert epochs.train_error.iloc[-1] == pytest.approx(s["final_train_error"])
    steps = csv(run, "metrics_steps.csv")
    assert list(steps.step) == [2, 4, 6, 8]
    layers = csv(run, "layers.csv")
    assert list(layers["name"]) == [l.name for l in d["layers"]]
    gf = csv(run, "gradflow.csv")
    assert sorted(gf.step.unique()) == [0, 2, 4, 6, 7]  # every 2 steps, and the last step
    assert (gf.groupby("step").size() == len(d["layers"])).all()
    first = gf[(gf.step == 0) & (gf.layer_index == 1)].grad_norm.item()
    last = gf[(gf.step == 0) & (gf.layer_index == 8)].grad_norm.item()
    assert s["grad_ratio_first_last_init"] == pytest.approx(first / last)
    acts = csv(run, "activations.csv")
    assert set(acts.block) == set(d["blocks"]) and (acts.act_std > 0).all()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["arch"]["name"] == "plain" and cfg["depth"] == 8
    assert (run / "checkpoint.pt").exists()
    assert "plain-8-s0: completed" in result.output


def test_logged_gradient_norms_equal_an_independent_computation():
    result = cli("train", "arch=residual", *TINY, "gradflow.every=1", "trainer.epochs=1",
                 "optim.momentum=0.0", "optim.weight_decay=0.0")
    assert result.exit_code == 0, result.output
    gf = csv(Path("runs/residual-8-s0"), "gradflow.csv")
    # replay the first two steps by hand: same seed, same data, plain SGD
    cfg = compose_config(["data=synthetic", "data.train_size=128", "data.test_size=64"])
    data_cfg = {k: v for k, v in dict(cfg.data).items() if k != "layout"}
    data = build_data(data_cfg, batch_size=32, eval_batch_size=64, device="cpu", seed=0)
    torch.manual_seed(0)
    model = build_model("residual", 8, layout="cifar", image_size=32)
    layers = describe(model, flops=False)["layers"]
    modules = dict(model.named_modules())
    data.train.set_epoch(1)
    batches = iter(data.train)
    for step in range(2):
        x, y = next(batches)
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        expected = [modules[l.name].weight.grad.norm().item() for l in layers]
        logged = gf[gf.step == step].sort_values(["layer_index", "layer"])
        by_name = dict(zip(logged.layer, logged.grad_norm))
        assert [by_name[l.name] for l in layers] == pytest.approx(expected, rel=1e-4)
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad


def test_diverging_run_ends_as_diverged():
    result = cli("train", "arch=plain", *TINY, "optim.lr=1e6", "arch.norm=none")
    assert result.exit_code == 0, result.output
    s = summary(Path("runs/plain-8-s0"))
    assert s["status"] == "diverged" and s["diverged"] is True
    assert "diverged" in result.output


@pytest.mark.parametrize("args,message", [
    (["trainer.epoch=3"], "unknown config key 'trainer.epoch' (did you mean trainer.epochs?)"),
    (["arch=resnet"], "unknown option 'resnet' for config group arch; valid: dense, plain, residual"),
    (["depth=21", "arch.layout=cifar"], "basic blocks need 6n+2 (nearest: 20, 26)"),
    (["depth=20", "arch.layout=imagenet"], "20 is a cifar-layout depth: add arch.layout=cifar"),
    (["trainer.epochs=0"], "trainer.epochs must be a positive number, got 0"),
    (["depth=20,32"], "train runs one configuration; for comma-separated values use depthlab sweep"),
    (["depth=(("], "malformed override"),
])
def test_bad_input_is_one_line_and_writes_nothing(args, message):
    result = cli("train", *args)
    assert result.exit_code == 2
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in " ".join(result.output.split())
    assert not Path("runs").exists()


CONF = Path(__file__).resolve().parents[2] / "conf"


def conf_file(name: str) -> dict:
    return yaml.safe_load((CONF / name).read_text())


def test_cfg_job_prints_the_composed_config():
    result = cli("train", "--cfg", "job", "arch=dense", "depth=40", "optim.lr=0.05",
                 "trainer.batch_size=64", "logger=none")
    assert result.exit_code == 0, result.output
    assert not Path("runs").exists()
    cfg = yaml.safe_load(result.output)  # all of it is the config, as YAML
    assert list(cfg) == ["arch", "data", "optim", "schedule", "trainer", "logger", "depth", "seed",
                         "gradflow", "run", "sweep", "paths"]  # --cfg job: no hydra node
    # the overrides
    assert (cfg["arch"]["name"], cfg["depth"], cfg["optim"]["lr"]) == ("dense", 40, 0.05)
    assert cfg["trainer"]["batch_size"] == 64
    # each group is its file in conf/ (the defaults), with only the overrides changed
    assert cfg["arch"] == conf_file("arch/dense.yaml")
    assert cfg["optim"] == {**conf_file("optim/sgd.yaml"), "lr": 0.05}
    assert cfg["trainer"] == {**conf_file("trainer/default.yaml"), "batch_size": 64}
    assert cfg["schedule"] == conf_file("schedule/step.yaml")
    assert cfg["data"] == conf_file("data/cifar10.yaml")
    assert cfg["logger"] == conf_file("logger/none.yaml")
    top = conf_file("config.yaml")
    assert (cfg["seed"], cfg["gradflow"], cfg["run"], cfg["sweep"], cfg["paths"]) == (
        top["seed"], top["gradflow"], top["run"], top["sweep"], top["paths"])
    assert (cfg["seed"], cfg["optim"]["momentum"], cfg["trainer"]["epochs"]) == (0, 0.9, 3)
    assert cfg["run"]["name"] == "${arch.name}-${depth}-s${seed}"  # printed unresolved


def test_help_teaches_groups_and_examples():
    result = cli("train", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "arch dense, plain, residual" in text
    assert "cifar10" in text and "synthetic" in text and "resnet_cifar_paper" in text
    assert text.count("depthlab train") >= 3


def test_rerun_skips_a_completed_run_and_fresh_restarts():
    assert cli("train", "arch=plain", *TINY).exit_code == 0
    before = (Path("runs/plain-8-s0") / "summary.json").read_text()
    again = cli("train", "arch=plain", *TINY)
    assert again.exit_code == 0 and "already completed" in again.output
    assert (Path("runs/plain-8-s0") / "summary.json").read_text() == before
    changed = cli("train", "arch=plain", *TINY, "optim.lr=0.05")
    assert changed.exit_code == 2 and "different config" in changed.output and "optim.lr" in changed.output
    fresh = cli("train", "--fresh", "arch=plain", *TINY, "optim.lr=0.05")
    assert fresh.exit_code == 0
    assert yaml.safe_load((Path("runs/plain-8-s0") / "config.yaml").read_text())["optim"]["lr"] == 0.05


@pytest.mark.parametrize("layout", ["pickled", "folder"])
def test_train_on_a_tiny_cifar_fixture(tmp_path, layout):
    from cifar_fixture import TinyCifar

    tiny = TinyCifar()
    if layout == "pickled":
        tiny.write_pickled(tmp_path / "cifar" / "cifar-10-batches-py")
    else:
        tiny.write_folders(tmp_path / "cifar")
    result = cli("train", "arch=residual", "depth=8", "data=cifar10", f"data.root={tmp_path / 'cifar'}",
                 f"data.cache_dir={tmp_path / 'cache'}", "data.download=false", "trainer.epochs=2",
                 "trainer.batch_size=20", "logger=none")
    assert result.exit_code == 0, result.output
    run = Path("runs/residual-8-s0")
    s = summary(run)
    assert s["status"] == "completed" and s["data"] == "cifar10"
    assert (s["train_size"], s["test_size"]) == (60, 30)
    assert s["steps_completed"] == 2 * (60 // 20)
    epochs = csv(run, "metrics_epochs.csv")
    assert list(epochs.epoch) == [1, 2] and epochs.test_error.between(0, 1).all()
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # decoded once into the cache


def test_missing_cifar_without_download_is_one_line_and_writes_nothing(tmp_path):
    result = cli("train", "data=cifar10", f"data.root={tmp_path / 'nowhere'}", "data.download=false",
                 "logger=none")
    assert result.exit_code == 2, result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert lines[-1].startswith("error:") and "data.root" in result.output
    assert not Path("runs").exists()
