"""Bad input: a one-line error, a non-zero exit, no traceback, nothing written."""

from pathlib import Path

import torch
from cli.helpers import TINY, cli
from PIL import Image


def _folder(root: Path, train: list[str], test: list[str], images: bool = True) -> Path:
    for split, classes in (("train", train), ("test", test)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            if images:
                Image.new("RGB", (32, 32)).save(d / "0.png")
    return root


def _cases(tmp: Path):
    empty = _folder(tmp / "empty", ["a", "b"], ["a", "b"], images=False)
    mismatch = _folder(tmp / "mismatch", ["a", "b"], ["a", "c"])
    (tmp / "afile").write_text("x")
    tiny = [o for o in TINY if o != "depth=8"]
    return [
        (["train", "arch=resnet"], "unknown option 'resnet' for config group arch; valid: dense, plain, residual"),
        (["train", "depth=21", "arch.layout=cifar"], "nearest: 20, 26"),
        (["train", "arch=dense", "depth=50", "arch.layout=cifar"], "needs 6n+4 (nearest: 46, 52)"),
        (["train", "optim=lamb"], "unknown option 'lamb' for config group optim; valid: adamw, sgd"),
        (["train", "trainer.epoch=3"], "unknown config key 'trainer.epoch'"),
        (["train", "depth=="], "malformed override"),
        (["train", "data=cifar10", f"data.root={tmp / 'nowhere'}", "data.download=false"], "data.root"),
        (["train", "data=folder", f"data.root={empty}"], "no images"),
        (["train", "data=folder", f"data.root={mismatch}"], "class"),
        (["train", "trainer.epochs=0"], "trainer.epochs must be a positive number, got 0"),
        (["train", "trainer.epochs=-2"], "trainer.epochs must be a positive number, got -2"),
        (["train", "trainer.batch_size=0"], "trainer.batch_size must be a positive number, got 0"),
        (["train", "optim.lr=-0.1"], "optim.lr must be a positive number, got -0.1"),
        (["train", "data=cifar10", f"data.root={mismatch}", "data.download=false", "logger=none"],
         "class"),
        (["train", *tiny, "depth=8", "data.train_subset=1000"], "train_subset"),
        (["train", *tiny, "depth=8", f"paths.runs_dir={tmp / 'afile' / 'runs'}"], "is a file"),
        (["compare", "plain"], "compare needs at least two different architectures"),
        (["compare", "plain", "resnet"], "unknown architecture 'resnet'"),
        (["sweep"], "nothing to sweep"),
        (["report", str(tmp / "empty")], "no runs found"),
        (["train", "logger.wandb.mode=ofline"], "logger.wandb.mode must be one of"),
        # each key's range, where the config is checked (config.check_config)
        (["train", "schedule.warmup=1.5"],
         "schedule.warmup is the fraction of the run's steps with a linear warm-up (0: none), "
         "a number in [0, 1); got 1.5"),
        (["train", "schedule=cosine", "schedule.warmup=-0.1"], "schedule.warmup is the fraction"),
        (["train", "optim.momentum=2"], "optim.momentum is SGD's momentum (0: none), a number in "
                                        "[0, 1); got 2"),
        (["train", "optim.momentum=1"], "optim.momentum is SGD's momentum"),
        (["train", "trainer.threads=0"], "trainer.threads must be a positive number of CPU threads, "
                                         "or null for torch's default, got 0"),
        (["train", "trainer.cuda_graphs=yes"], "trainer.cuda_graphs must be true, false or auto, got 'yes'"),
        (["train", "data.train_subset=0"], "data.train_subset must be a positive integer or null, got 0"),
        (["train", "data.test_subset=-5"], "data.test_subset must be a positive integer or null, got -5"),
        (["train", "data.train_subset=true"], "data.train_subset must be a positive integer or null, got True"),
        # the device, checked on this machine before anything runs (preflight.check_trainer):
        # past the last GPU where there are GPUs, no CUDA where there are none
        (["train", *tiny, "trainer.device=cuda:99"], "trainer.device=cuda:99 but "),
        *([] if torch.cuda.is_available() else [
            (["train", *tiny, "trainer.device=cuda:7"],
             "trainer.device=cuda:7 but no CUDA device is available; use cpu or auto"),
            (["train", *tiny, "trainer.device=cuda"], "trainer.device=cuda but no CUDA device is available"),
            (["train", *tiny, "trainer.precision=fp16"],
             "trainer.precision=fp16 needs a CUDA device, and trainer.device=auto finds none"),
            (["train", *tiny, "trainer.cuda_graphs=true"],
             "trainer.cuda_graphs=true needs a CUDA device, and this run is on cpu"),
        ]),
    ]


def test_bad_inputs(tmp_path):
    for args, message in _cases(tmp_path / "fixtures"):
        before = sorted(p for p in Path.cwd().rglob("*") if "fixtures" not in p.parts)
        result = cli(*args)
        text = " ".join(result.output.split())
        lines = [l for l in result.output.splitlines() if l.strip()]
        assert result.exit_code != 0, (args, result.output)
        assert lines and lines[-1].startswith("error:"), (args, result.output)
        assert len([l for l in lines if l.startswith("error:")]) == 1, (args, result.output)
        assert "Traceback" not in result.output, (args, result.output)
        assert message in text, (args, result.output)
        after = sorted(p for p in Path.cwd().rglob("*") if "fixtures" not in p.parts
                       and "wandb" not in p.parts)
        assert after == [p for p in before if "wandb" not in p.parts], (args, set(after) - set(before))


def test_a_device_this_machine_lacks_is_a_usage_error_before_the_run(tmp_path):
    # cuda:99: no CUDA here, or past the last GPU; either way the run cannot start, so it is
    # bad input (exit 2, one line) found before Hydra makes a run directory, not a failed run
    result = cli("train", *TINY, "trainer.device=cuda:99", f"paths.runs_dir={tmp_path / 'runs'}")
    assert result.exit_code == 2, result.output
    [line] = [l for l in result.output.splitlines() if l.strip()]
    assert line.startswith("error: trainer.device=cuda:99 but ")
    assert not (tmp_path / "runs").exists()


def test_printing_the_config_of_a_run_for_another_machine_is_no_error():
    # --cfg job only prints: a GPU config can be read on a laptop (no machine checks then)
    result = cli("train", "--cfg", "job", "trainer.device=cuda:99", "trainer.precision=fp16")
    assert result.exit_code == 0, result.output
    assert "device: cuda:99" in result.output and "precision: fp16" in result.output
