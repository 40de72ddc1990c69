"""`depthlab train`: one run."""

from __future__ import annotations

import typer

from depthlab.cli.common import console, fail
from depthlab.cli.hydra_args import check, groups_help, info_only, split_args

HELP = """Train one network and record its per-layer gradient flow.

Arguments are Hydra overrides (key=value, group=option) and Hydra flags.

[bold]Config groups[/] (choose with group=option):

{groups}

Most used keys: depth, seed, arch.layout (cifar|imagenet), arch.norm (batch|none),
arch.shortcut (A|B|C), data.root, data.train_subset, trainer.epochs,
trainer.batch_size (the global batch), trainer.devices (processes for this
run: DistributedDataParallel, one GPU each, gloo on the CPU), optim.lr,
paths.runs_dir. Print the whole composed config with --cfg job.

The run writes runs/<arch>-<depth>-s<seed>/ (config.yaml, metrics and
gradflow CSVs, checkpoint.pt, summary.json). Running the same command again
resumes an unfinished run and skips a finished one; --fresh starts over.

[bold]Examples[/]

  depthlab train arch=plain depth=56 arch.layout=cifar data.train_subset=5000 trainer.epochs=3

  depthlab train arch=residual depth=20 data=synthetic trainer.epochs=2 logger=none

  depthlab train experiment=resnet_cifar_paper depth=110 trainer=gpu

  depthlab train experiment=imagenet_plain_vs_residual depth=50 data.root=/data/imagenet trainer=gpu trainer.devices=8

  torchrun --standalone --nproc-per-node 8 -m depthlab train depth=50 trainer=gpu ...

  depthlab train --cfg job arch=dense depth=100
"""


def train(
    ctx: typer.Context,
    fresh: bool = typer.Option(False, "--fresh", help="Delete this run's files and start over."),
) -> None:
    flags, overrides, dirs = split_args(list(ctx.args))
    if fresh:
        overrides.append("run.fresh=true")
    check(overrides, dirs, machine=not info_only(flags))  # --cfg job prints a GPU config anywhere
    from depthlab.launch import launch  # heavy imports only once the input is known good

    outcomes = launch(flags + overrides)
    if info_only(flags):
        return
    if not outcomes:
        fail("the run did not start (see the messages above)", code=1)
    o = outcomes[0]
    if o.status in ("failed", "conflict"):
        fail(o.error or "the run failed", code=2 if o.user_error else 1)
    s = o.summary or {}
    if o.status in ("completed", "diverged", "skipped"):
        err = s.get("final_train_error")
        test = s.get("final_test_error")
        console.print(
            f"[bold]{s.get('name')}[/]: {s.get('status')} - train error "
            f"{'n/a' if err is None else f'{100 * err:.2f}%'}, test error "
            f"{'n/a' if test is None else f'{100 * test:.2f}%'}, "
            f"{s.get('wall_seconds', 0):.0f} s - {o.run_dir}",
            highlight=False,
        )
    if o.status == "interrupted":
        raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        help=HELP.format(groups=groups_help()),
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(train)
