"""The brief's commands as typed, the plan printed before every sweep, and the
preflight: what would fail every run fails once, before anything is written."""

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import TINY, cli
from torchvision.datasets import CIFAR10

from depthlab.config import choose_layout, compose_config
from depthlab.plan import makespan

# The ImageNet family on tiny synthetic images: only budget overrides.
BUDGET = ["data=synthetic", "data.image_size=16", "data.train_size=32", "data.test_size=16",
          "trainer.epochs=1", "trainer.batch_size=16", "trainer.eval_batch_size=16",
          "trainer.threads=1", "logger=none"]


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in Path(path).rglob("*") if p.is_file())


# --- the layout follows the depth family ------------------------------------------

@pytest.mark.parametrize("overrides, layout", [
    (["depth=50"], "imagenet"),  # also a valid 6n+2 cifar depth: membership decides
    (["depth=152", "arch=plain"], "imagenet"),
    (["depth=56"], "cifar"),
    (["depth=20", "data=imagenet"], "imagenet"),  # the data set's own layout otherwise
    (["depth=121", "arch=dense"], "imagenet"),
    (["depth=100", "arch=dense"], "cifar"),
    (["depth=50", "arch.layout=cifar"], "cifar"),  # given: never changed
])
def test_layout_follows_the_depth_family(overrides, layout):
    assert compose_config(overrides).arch.layout == layout


def test_a_sweep_uses_one_layout():
    assert choose_layout([("plain", 18), ("residual", 152)], "cifar10", "cifar").layout == "imagenet"
    mixed = choose_layout([("residual", 18), ("residual", 20)], "cifar10", "cifar")
    assert mixed.layout == "cifar"
    assert "18 is an ImageNet depth, but 20 not" in mixed.reason


def test_mixed_family_sweep_fails_before_anything_runs():
    result = cli("sweep", "depth=18,20", *BUDGET)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: depth 18 is not a residual/plain depth for layout cifar")
    assert "add arch.layout=imagenet" in line and "one layout for all its runs" in line
    assert not Path("runs").exists()


def test_a_depth_of_neither_layout_names_both_rules():
    result = cli("train", "depth=21", *TINY[:3])
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert "basic blocks need 6n+2 (nearest: 20, 26)" in line
    assert "layout imagenet takes 18, 34, 50, 101, 152, 200" in line


@pytest.mark.slow
def test_the_brief_sweep_runs_as_typed():
    result = cli("sweep", "depth=18,34,50,152", *BUDGET)
    assert result.exit_code == 0, result.output
    head = result.output.split("sweep: run 1 of 8")[0]
    assert "runs      8: plain, residual x depth 18, 34, 50, 152; seed 0" in head
    assert "layout    imagenet (18, 34, 50, 152: the papers' ImageNet depths" in head
    summaries = [json.loads(p.read_text()) for p in Path("runs").glob("*/*/summary.json")]
    assert sorted((s["arch"], s["depth"]) for s in summaries) == sorted(
        (a, d) for a in ("plain", "residual") for d in (18, 34, 50, 152))
    assert {(s["layout"], s["status"]) for s in summaries} == {("imagenet", "completed")}
    # ResNet-50 and -152 with the bottleneck blocks of the ImageNet table, not 6n+2 basic ones
    blocks = {s["depth"]: s["params"] for s in summaries if s["arch"] == "residual"}
    assert blocks[50] > 20e6 and blocks[152] > 50e6


# --- the plan ---------------------------------------------------------------------------

def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    before = files_under(tmp_path)
    result = cli("compare", "plain", "residual", "depth=8,14", "seed=0,1", "--dry-run", *TINY[:3],
                 "trainer.epochs=3", "trainer.batch_size=32", "logger=none")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Compare plain vs residual: 8 runs -> runs/" in out
    assert "runs      8: plain, residual x depth 8, 14; seed 0, 1" in out
    assert "layout    cifar (the default of data=synthetic)" in out
    assert "data      synthetic: 128 train / 64 test images, 32 px, 10 classes" in out
    assert "device    cpu" in out
    # 128 images // batch 32 = 4 steps an epoch, 3 epochs, 8 runs
    assert "steps     12 per run, 96 in all (batch 32)" in out
    # the estimate is a duration (plan.duration: "42 s", "3 min 05 s"), not n/a
    assert re.search(r"^  estimate  \d+ (s|min)\b.* on this device; timed 4 nets in ", out, re.M), out
    assert out.count(" 12 steps ") == 8
    assert "dry run: nothing was written" in out
    assert files_under(tmp_path) == before and not Path("runs").exists()


def test_makespan_fills_the_slots_in_order():
    assert makespan([10, 10, 10, 10], 1) == 40
    assert makespan([10, 10, 10, 10], 2) == 20
    assert makespan([30, 10, 10, 10], 2) == 30
    assert makespan([5, 20, 10], 2) == 20


# --- preflight --------------------------------------------------------------------------

def _one_error_and_nothing_written(result, tmp_path, before, *needles):
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert files_under(tmp_path) == before
    assert not Path("runs").exists()


def test_no_data_and_no_network_fails_once_before_any_run(tmp_path, monkeypatch):
    # nothing listens on port 9: the real download code fails at once, as offline
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    before = files_under(tmp_path)
    result = cli("compare", "plain", "residual", "experiment=quick", "depth=20,56")
    _one_error_and_nothing_written(result, tmp_path, before, "no CIFAR-10 under data.root=",
                                   "the download failed", "point data.root at one of them")
    assert not (tmp_path / "no-data-here").exists()  # not even the download folder


def _unbalanced_folder(root: Path) -> Path:
    """Image folders whose class b has 2 training images to class a's 6, 1 test image to 3."""
    from PIL import Image

    for split, counts in (("train", {"a": 6, "b": 2}), ("test", {"a": 3, "b": 1})):
        for name, n in counts.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (32, 32)).save(root / split / name / f"{i}.png")
    return root


# cases that ask for CUDA where there is none: they skip on a machine with CUDA
NEEDS_NO_CUDA = {"cuda", "fp16 auto", "cuda graphs"}


@pytest.mark.parametrize("case", ["download off", "file root", "folder root", "runs_dir", "dense depth",
                                  "cuda", "cuda index", "fp16 auto", "cuda graphs", "graphs value",
                                  "slurm batch", "slurm devices", "class subset", "test subset"])
def test_preflight_checks_fail_once_and_write_nothing(tmp_path, case):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "junk").mkdir()
    unbalanced = _unbalanced_folder(tmp_path / "unbalanced")
    sweep = [o for o in TINY if o != "depth=8"]
    folder = ["data=folder", f"data.root={unbalanced}", "trainer.batch_size=2",
              "trainer.eval_batch_size=2", "logger=none"]
    args, needles = {
        "download off": (["sweep", "depth=8,14", "data=cifar10", f"data.root={tmp_path / 'junk'}",
                          "data.download=false", "logger=none"],
                         ["no CIFAR-10 under data.root=", "data.download=false"]),
        "file root": (["sweep", "depth=8,14", "data=cifar10", f"data.root={tmp_path / 'afile'}",
                       "logger=none"], ["is a file, not a folder"]),
        "folder root": (["sweep", "depth=8,14", "data=folder", f"data.root={tmp_path / 'nowhere'}",
                         "logger=none"], ["is not a folder", "expected"]),
        "runs_dir": (["sweep", "depth=8,14", *sweep, f"paths.runs_dir={tmp_path / 'afile' / 'runs'}"],
                     ["cannot be created", "is a file"]),
        # plain-20 would run first; dense-20 (not 6n+4) stops the sweep before it
        "dense depth": (["sweep", "depth=20", "arch=plain,dense", *sweep],
                        ["depth 20 is not a dense (DenseNet-BC) depth for layout cifar"]),
        "cuda": (["sweep", "depth=8,14", *sweep, "trainer.device=cuda"],
                 ["no CUDA device is available"]),
        # no CUDA, or past the last GPU
        "cuda index": (["sweep", "depth=8,14", *sweep, "trainer.device=cuda:99"],
                       ["trainer.device=cuda:99 but "]),
        "fp16 auto": (["sweep", "depth=8,14", *sweep, "trainer.precision=fp16"],
                      ["trainer.precision=fp16 needs a CUDA device, and trainer.device=auto finds none"]),
        "cuda graphs": (["sweep", "depth=8,14", *sweep, "trainer.cuda_graphs=true"],
                        ["trainer.cuda_graphs=true needs a CUDA device, and this run is on cpu"]),
        "graphs value": (["sweep", "depth=8,14", *sweep, "trainer.cuda_graphs=on"],
                         ["trainer.cuda_graphs must be true, false or auto, got 'on'"]),
        # 3 ranks a job (one node of 3 GPUs) cannot share a global batch of 32
        "slurm batch": (["sweep", "depth=8,14", *sweep, "hydra/launcher=slurm_ddp",
                         "hydra.launcher.gpus_per_node=3"],
                        ["trainer.batch_size=32 is the global batch and must divide by the 3 ranks of "
                         "each SLURM job (hydra.launcher.nodes=1 x tasks_per_node=3)", "multiple of 3"]),
        "slurm devices": (["sweep", "depth=8,14", *sweep, "hydra/launcher=slurm_ddp",
                           "hydra.launcher.gpus_per_node=2", "hydra.launcher.nodes=2",
                           "trainer.devices=2"],
                          ["trainer.devices=2 but each SLURM job starts 4 ranks",
                           "leave trainer.devices at 1"]),
        # 8 images, but 6 class-balanced take 3 of class b, which has 2: at most 5
        "class subset": (["sweep", "depth=8", *folder, "data.train_subset=6"],
                         ["data.train_subset=6 needs 3 images of class 'b' but it has 2",
                          "use at most 5"]),
        "test subset": (["sweep", "depth=8", *folder, "data.test_subset=4"],
                        ["data.test_subset=4 needs 2 images of class 'b' but it has 1",
                         "use at most 3"]),
    }[case]
    if case in NEEDS_NO_CUDA and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    before = files_under(tmp_path)
    _one_error_and_nothing_written(cli(*args), tmp_path, before, *needles)


def test_two_runs_of_a_sweep_never_share_a_directory(tmp_path):
    before = files_under(tmp_path)
    result = cli("sweep", "arch=residual", *TINY, "optim.lr=0.1,0.05")  # run.name leaves out lr
    _one_error_and_nothing_written(result, tmp_path, before, "two runs of this sweep would share",
                                   "residual-8-s0", "optim.lr=0.05", "put the swept key in run.name")


# --- the estimate times what will run ---------------------------------------------------

def _fake_timer(step_ms: dict[str, float], calls: list):
    """A timer (plan.estimate's `timer`) whose step time depends on the precision only."""
    from depthlab.engine.timing import StepTime

    def timer(cfg, *, image_size, num_classes, precision=None, channels_last=None):
        p = precision or cfg["trainer"]["precision"]
        calls.append((cfg["run"]["name"], p))
        return StepTime(step_ms[p] / 1000)
    return timer


def _plan(*overrides: str):
    from depthlab.plan import make_plan

    return make_plan([[*TINY[:3], "arch=plain,residual", "depth=8", "trainer.epochs=3",
                       "trainer.batch_size=32", "logger=none", *overrides]], [])


SIZES_KEY_TRAIN = 128


def _sizes(plan):
    from depthlab.plan import data_key

    return {data_key(r.cfg): (SIZES_KEY_TRAIN, 64, 32, 10) for r in plan.runs}


def test_a_bf16_runs_estimate_is_its_own_step_time_not_fp32s():
    from depthlab.plan import estimate

    calls = []
    timer = _fake_timer({"fp32": 400.0, "bf16": 200.0}, calls)
    fp32, bf16 = _plan("trainer.precision=fp32"), _plan("trainer.precision=bf16")
    for plan in (fp32, bf16):
        estimate(plan, _sizes(plan), timer=timer)
    assert [r.step_seconds for r in fp32.runs] == [0.4, 0.4]
    assert [r.step_seconds for r in bf16.runs] == [0.2, 0.2]
    # 12 steps each: the training part of the estimate halves with the step time
    assert fp32.runs[0].seconds - bf16.runs[0].seconds == pytest.approx(12 * 0.2, rel=0.35)
    assert {p for _, p in calls} == {"fp32", "bf16"}


def test_auto_is_resolved_once_for_the_whole_sweep_and_launched_as_overrides(monkeypatch):
    from depthlab import machine
    from depthlab.cli.sweep import _with_choices
    from depthlab.plan import estimate, format_plan

    monkeypatch.setattr(machine, "cpu_bf16", lambda *a: ("avx512_bf16",))
    calls = []
    plan = _plan("trainer.precision=auto", "trainer.channels_last=auto", "depth=8,14")
    estimate(plan, _sizes(plan), timer=_fake_timer({"fp32": 400.0, "bf16": 200.0}, calls))
    # the choice is timed on the deepest net, both ways; then every run trains the same way
    assert sorted(calls[:2]) == [("plain-14-s0", "bf16"), ("plain-14-s0", "fp32")]
    assert {(r.cfg["trainer"]["precision"], r.cfg["trainer"]["channels_last"]) for r in plan.runs} \
        == {("bf16", True)}
    assert all(r.step_seconds == 0.2 for r in plan.runs)
    assert "  numerics  bf16 autocast + channels_last (auto: native avx512_bf16; bf16 + channels_last " \
           "timed 2.00x faster than fp32 (timed on plain-14-s0))" in format_plan(plan)
    [launch] = _with_choices([["trainer.precision=auto", "depth=8,14"]], plan)
    assert "trainer.precision=auto" not in launch
    assert launch[-2:] == ["trainer.precision=bf16", "trainer.channels_last=true"]


def test_runs_at_once_share_the_cores():
    from depthlab.plan import threads_per_run

    plan = _plan("trainer.precision=fp32")
    plan.launcher, plan.jobs = "joblib", 2
    plan.runs[0].cfg["trainer"]["threads"] = None  # torch's default: every core
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        assert threads_per_run(plan, cores=4) == 2  # two runs at once: half the cores each
        plan.jobs = 1
        assert threads_per_run(plan, cores=4) == 4
        plan.runs[0].cfg["trainer"]["threads"] = 1
        plan.jobs = 2
        assert threads_per_run(plan, cores=4) == 1  # trainer.threads=1 is what each run uses
    finally:
        torch.set_num_threads(before)
