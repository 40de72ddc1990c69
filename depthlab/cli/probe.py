"""`depthlab probe`: gradient flow at initialisation for a grid of nets, in seconds."""

from __future__ import annotations

import difflib
import shlex
from typing import Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from depthlab.cli.common import console, fail, out, step_progress

HELP = """Gradient flow at initialisation: one forward + backward pass per net and seed, no training.

For every architecture x depth x norm (x shortcut option for residual nets)
and init seed: build the net as a training run with that seed would, one pass
of cross-entropy on one batch, then read each weighted layer's gradient norm
(depth order) and, per block, the output std and the backward signal
||dL/dh|| at the block's output. Prints a table (log10 of the first / last
layer gradient-norm ratio, its std over seeds, log10 of the first / last
block backward signal, the last block's output std) and what it shows; writes a probe directory with probe.csv
(per layer), probe_blocks.csv, summary.csv, figures, report.md and runs/
(one run directory per net and seed, read by depthlab report).

[bold]Overrides[/] (key=value; comma lists and range() as in Hydra):

  arch=plain,residual       plain | residual | dense
  depth=20,56,110,218,1202  weighted layers; must be valid for every arch
  norm=batch,none           batch norm, or none at all
  shortcut=A                residual nets: A (zero-pad) | B | C (projections)
  branch=standard           residual nets: standard | skipinit | rezero | fixup
                            (norm-free starts; fixup with norm=none only)
  seeds=3                   init seeds 0..N-1
  batch=4                   images per pass (4 keeps the default grid near
                            a minute on 2 CPU cores; 32 takes about 3)
  layout=cifar              cifar | imagenet
  data=cifar10              a real batch instead of N(0,1) images (data group:
                            cifar10, synthetic, folder, imagenet); data.KEY=...
                            as in depthlab train, e.g. data.root=...
  threads=2                 CPU: passes run side by side, one torch thread each
  device=cpu                cpu | cuda | auto
  name=NAME / out=DIR       probe directory runs/probe-NAME (default
                            runs/probe-<time>), or DIR
  logger=none               none | wandb (one W&B run with the table and the
                            figures; offline unless WANDB_MODE says otherwise)

[bold]Examples[/]

  depthlab probe

  depthlab probe arch=dense depth=40,100,190 norm=batch,none

  depthlab probe arch=residual shortcut=A,B,C depth=20,56 seeds=5

  depthlab probe arch=residual branch=standard,skipinit,rezero,fixup norm=batch,none

  depthlab probe depth=range(20,120,18) data=cifar10 batch=32 logger=wandb
"""

LIST_KEYS = {"arch", "depth", "norm", "shortcut", "branch"}
SINGLE_KEYS = {"seeds", "batch", "layout", "data", "threads", "device", "name", "out", "logger"}
KEYS = ["arch", "depth", "norm", "shortcut", "branch", "seeds", "batch", "layout", "data", "data.KEY",
        "threads", "device", "name", "out", "logger"]
INT_KEYS = {"depth", "seeds", "batch", "threads"}


def _to_int(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        fail(f"{key} must be an integer, got {text!r}")


def parse_args(args: list[str]):
    """ProbeSettings from key=value overrides; a mistake ends in one line via fail()."""
    from hydra.core.override_parser.types import OverrideType

    from depthlab.config import ConfigError, parse_overrides
    from depthlab.probe import ProbeSettings

    for a in args:
        if a.startswith("-"):
            fail(f"unknown option {a!r}; depthlab probe takes key=value overrides "
                 f"({', '.join(KEYS)}), see --help")
    try:
        parsed = parse_overrides(args)
    except ConfigError as err:
        fail(str(err))
    values: dict[str, Any] = {}
    data_keys: dict[str, Any] = {}
    for o, text in zip(parsed, args):
        key = o.key_or_group
        if o.type != OverrideType.CHANGE:
            fail(f"{text!r}: depthlab probe takes plain key=value overrides (no + or ~)")
        if key.startswith("data."):
            if o.is_sweep_override():
                fail(f"{key} takes one value, got {text.partition('=')[2]!r}")
            data_keys[key[5:]] = o.value()
            continue
        if key not in LIST_KEYS and key not in SINGLE_KEYS:
            close = difflib.get_close_matches(key, [k for k in KEYS if k != "data.KEY"], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            fail(f"unknown key {key!r}{hint}; valid keys: {', '.join(KEYS)}")
        if o.is_sweep_override():
            items = [str(v) for v in o.sweep_string_iterator()]
        elif isinstance(o.value(), (list, tuple)):
            items = [str(v) for v in o.value()]
        else:
            items = [o.get_value_element_as_str()]
        if key in SINGLE_KEYS and len(items) != 1:
            fail(f"{key} takes one value, got {text.partition('=')[2]!r}")
        if key in INT_KEYS:
            items = [_to_int(key, v) for v in items]
        values[key] = tuple(items) if key in LIST_KEYS else items[0]

    data = None
    if "data" in values:
        data = _data_config(str(values.pop("data")), data_keys)
    elif data_keys:
        fail(f"data.{next(iter(data_keys))} needs a data set: add data=cifar10 "
             "(or synthetic, folder, imagenet)")
    fields: dict[str, Any] = {}
    renames = {"arch": "archs", "depth": "depths", "norm": "norms", "shortcut": "shortcuts",
               "branch": "branches"}
    for key, value in values.items():
        fields[renames.get(key, key)] = value
    return ProbeSettings(**fields, data=data)


def _data_config(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """conf/data/<name>.yaml with data.KEY overrides applied and resolved, as train composes it."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from depthlab.config import conf_dir, group_options

    valid = group_options("data")
    if name not in valid:
        fail(f"unknown data {name!r}; valid: {', '.join(valid)}")
    cfg = OmegaConf.load(conf_dir() / "data" / f"{name}.yaml")
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        fail(f"data={name}: {' '.join(str(err).split())}")


def print_table(summary, *, title: str) -> None:
    """The summary table on stdout; notes on non-finite ratios follow it, one line each."""
    from depthlab.probe import table_rows

    grid = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                 caption="log10 first/last: log10(gradient norm of the first / last main-path "
                         "layer), mean over seeds; std: its std over seeds; back first/last: "
                         "log10(||dL/dh|| at the first / last block's output), mean over seeds; "
                         "act std: the last block's output std, mean over seeds",
                 caption_justify="left")
    for name, justify in (("arch", "left"), ("depth", "right"), ("norm", "left"),
                          ("shortcut", "left"), ("params", "right"), ("log10\nfirst/last", "right"),
                          ("std", "right"), ("log10 back\nfirst/last", "right"),
                          ("act std", "right")):
        grid.add_column(name, justify=justify, no_wrap=True)
    rows = table_rows(summary)
    notes = []
    for i, r in enumerate(rows):
        arch, depth, norm, shortcut, params, ratio, std, back, act, _secs, note = r
        if note:
            notes.append(f"{arch}-{depth} norm={norm}: {note}")
            ratio += "*"
        last = i + 1 == len(rows) or rows[i + 1][0] != arch or rows[i + 1][2] != norm
        grid.add_row(arch, depth, norm, shortcut, params,
                     Text(ratio, style="red" if ratio.startswith("non-finite") else ""),
                     std, back, act, end_section=last)
    out.print(grid)
    for note in notes:
        out.print(Text(f"* {note} (float32)", style="dim"))


def probe(ctx: typer.Context) -> None:
    from depthlab.probe import (
        ProbeError,
        check_dir,
        configurations,
        default_dir,
        findings,
        log_wandb,
        run_probe,
        write_probe,
    )

    args = list(ctx.args)
    settings = parse_args(args)
    try:
        configs = configurations(settings)
        out_dir = check_dir(default_dir(settings))
    except ProbeError as err:
        fail(str(err))
    command = shlex.join(["depthlab", "probe", *args])
    total = len(configs) * settings.seeds
    with step_progress("probe") as progress:
        task = progress.add_task("", total=total)

        def on_step(config, seed, done, total_):
            progress.update(task, completed=done, description=f"{config.label} seed {seed}")

        try:
            result = run_probe(settings, on_step=on_step, command=command)
        except ProbeError as err:
            problem = str(err)
        else:
            problem = None
    if problem:  # after the progress bar is gone
        fail(problem)
    try:
        paths = write_probe(result, out_dir)
    except ProbeError as err:
        fail(str(err))
    except OSError as err:
        fail(f"cannot write the probe directory {out_dir}: {err}", code=1)
    if settings.logger == "wandb":
        try:
            log_wandb(result, paths)
        except Exception as err:  # W&B must never cost the probe
            console.print(f"[yellow]warning:[/] W&B logging failed, results are on disk only "
                          f"({type(err).__name__}: {' '.join(str(err).split())[:200]})",
                          highlight=False, soft_wrap=True)
    title = (f"Gradient flow at initialisation: {len(configs)} nets x {settings.seeds} seeds, "
             f"batch {settings.batch} ({result.data_name}), {result.wall_seconds:.1f} s")
    print_table(result.summary, title=title)
    lines = findings(result.summary)
    if lines:
        out.print(Text("Findings", style="bold"))
        for line in lines:
            out.print(Text("• " + line), soft_wrap=False)
    console.print(f"wrote {out_dir}/: report.md, summary.csv, probe.csv, probe_blocks.csv, "
                  f"{sum(1 for k in ('profile', 'ratio', 'act', 'back') if k in paths)} figures, "
                  f"runs/ ({len(result.runs)} run directories: depthlab report {out_dir}/runs)",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("probe", help=HELP,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(probe)
