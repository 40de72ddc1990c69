"""`depthlab compare`: matched runs of several architectures at the same depths."""

from __future__ import annotations

import typer
from omegaconf import OmegaConf

from depthlab.cli.common import console, fail
from depthlab.cli.hydra_args import split_args
from depthlab.cli.sweep import DRY_RUN_HELP, command_line, has_key, run_sweep
from depthlab.config import (
    ConfigError,
    LayoutChoice,
    choose_layout,
    compose_config,
    expand_sweep,
    layout_is_auto,
)

# The papers' comparisons: ResNet Table 2 (imagenet) and Fig. 6 (cifar).
DEFAULT_DEPTHS = {"imagenet": "18,34", "cifar": "20,32,44,56"}
DENSE_DEPTHS = {"imagenet": "121,169", "cifar": "40,100"}

HELP = """Compare architectures at the same depths, with the same data, recipe and seeds.

  depthlab compare plain residual

  depthlab compare plain residual depth=20,56 experiment=quick

  depthlab compare plain residual dense depth=40,100 arch.layout=cifar seed=0,1

Default depths: 18,34 for the imagenet layout (ResNet paper, Table 2),
20,32,44,56 for the cifar layout (Fig. 6). Typed depths from the ImageNet
table (18,34,50,101,152,200) use the imagenet layout on any data; dense nets
stand in at the nearest valid dense depths. The plan is printed first
(--dry-run: only the plan). Runs that already completed with
the same configuration are reused, not retrained. Prints the side-by-side
table (parameters, FLOPs, final training and test error, gradient-norm ratio
first/last layer at init and at the end, status) and the verdicts: does the
deeper plain net train worse (degradation), and do shortcuts fix it?
Everything else works as in depthlab sweep (launchers, --fresh, report.md).
"""


def compare(
    ctx: typer.Context,
    fresh: bool = typer.Option(False, "--fresh", help="Retrain instead of reusing completed runs."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
) -> None:
    args = list(ctx.args)
    command = command_line("compare", args, fresh)
    archs = []
    while args and "=" not in args[0] and not args[0].startswith("-"):
        archs.append(args.pop(0))
    valid = ("plain", "residual", "dense")
    bad = [a for a in archs if a not in valid]
    if bad:
        fail(f"unknown architecture {bad[0]!r}; valid: {', '.join(valid)}")
    if len(set(archs)) < 2:
        fail("compare needs at least two different architectures, e.g. depthlab compare plain residual")
    flags, overrides, dirs = split_args(args)
    if has_key(overrides, "arch"):
        fail("give the architectures as arguments (depthlab compare plain residual), not arch=")
    try:
        base = compose_config([o for o in overrides if "," not in o and "range(" not in o],
                              dirs, resolve=False)
        depth_arg = next((o for o in overrides if o.partition("=")[0] == "depth"), None)
        depths = [] if depth_arg is None else [
            int(run[0].partition("=")[2]) for run in expand_sweep([depth_arg])]
    except (ConfigError, ValueError) as err:
        fail(str(err))
    data_layout = str(OmegaConf.select(base, "data.layout", default="cifar"))
    if not layout_is_auto(base):
        layout = LayoutChoice(str(OmegaConf.to_container(base.arch)["layout"]), "arch.layout given",
                              auto=False)
    elif depths:
        # one layout for the whole comparison, dense runs included (decided on the
        # depths typed, for the families that take them as typed)
        typed = [a for a in archs if a != "dense"] or ["dense"]
        layout = choose_layout([(a, d) for a in typed for d in depths], str(base.data.name),
                               data_layout)
    else:
        layout = LayoutChoice(data_layout, f"the default of data={base.data.name}")
    if depth_arg is None:
        depth_list = (DENSE_DEPTHS if archs == ["dense"] else DEFAULT_DEPTHS)[layout.layout]
        overrides.append(f"depth={depth_list}")
        console.print(f"default depths for the {layout.layout} layout: {depth_list}", highlight=False)
    others = [a for a in archs if a != "dense"]
    extra = []
    if "dense" in archs and others:
        # DenseNet-BC depths (6n+4 on cifar, 121.. on imagenet) never equal ResNet
        # depths: each dense run stands in at the nearest valid dense depth.
        depth_arg = next(o for o in overrides if o.partition("=")[0] == "depth")
        dense_depths = nearest_dense_depths(depth_arg.partition("=")[2], layout.layout)
        console.print(f"dense nets use the nearest valid dense depths: {dense_depths}",
                      highlight=False)
        extra = [["arch=dense", *[o for o in overrides if o != depth_arg], f"depth={dense_depths}"]]
        archs_sweep = others
    else:
        archs_sweep = archs
    # arch varies fastest, so a sweep cut short still has matched pairs
    overrides = [*overrides, f"arch={','.join(archs_sweep)}"]
    run_sweep(overrides, flags, dirs, prefix="compare", fresh=fresh,
              title=f"Compare {' vs '.join(archs)}", command=command, extra=extra,
              dry_run=dry_run, layout=layout)


def nearest_dense_depths(depths: str, layout: str) -> str:
    from depthlab.models.depths import DENSENET_IMAGENET

    out = []
    for d in depths.split(","):
        d = int(d)
        if layout == "imagenet":
            out.append(min(DENSENET_IMAGENET, key=lambda v: (abs(v - d), v)))
        else:
            out.append(max(10, 6 * round((d - 4) / 6) + 4))
    return ",".join(str(d) for d in dict.fromkeys(out))


def register(app: typer.Typer) -> None:
    app.command("compare", help=HELP,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(compare)
