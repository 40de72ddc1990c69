"""Bad input: a one-line error, a non-zero exit, no traceback, nothing written."""

from pathlib import Path

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
