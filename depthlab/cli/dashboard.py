"""`depthlab dashboard`: a saved W&B workspace for a sweep's runs (see depthlab.dashboard)."""

from __future__ import annotations

from pathlib import Path

import typer

from depthlab.cli.common import console, fail, out

HELP = """Lay a sweep's W&B runs out in one saved W&B workspace, ready to read.

  depthlab dashboard runs/cifar10-degradation

  depthlab dashboard runs/cifar10-degradation --entity my-team --project depthlab

  depthlab dashboard runs/cifar10-degradation --out spec.json     (offline: keep the spec)

  depthlab dashboard --push spec.json                              (later, online)

Instead of one W&B panel per logged key (56 for one ResNet-56's layers), the
workspace has three sections: Gradient flow (every layer's gradient norm in one
plot, one line per run and layer; log10 first/last gradient ratio of all runs
in one plot; the per-epoch gradient-vs-layer chart and the heatmap; activation
std per block), Training (training and test error and loss per epoch, grouped
by architecture and depth, mean over seeds) and Runs table (the comparison
table and figures of the sweep's report run, final error and gradient ratio vs
depth, the verdicts; the run list shows final errors, gradient ratios at init
and at the end, params, FLOPs and status). It holds the runs of the sweep's
W&B group, and prints its outline first: every panel and the keys it reads.

  depthlab dashboard runs/cifar10-degradation --sync               (upload offline runs first)

The runs are read from their directories; what they logged must be in W&B
already. Runs that logged offline (no API key when they ran, or WANDB_MODE=
offline) are uploaded by --sync: it finds every offline-run-* folder of the
runs and of the sweep's report run (beside each run, in logger.wandb.dir or
under WANDB_DIR), runs W&B's own `wandb sync` on them once (folders synced
before are skipped) and then saves the workspace. Saving uses the W&B API, so
it needs the network and a key (`wandb login`). Offline (WANDB_MODE=offline)
it saves nothing and says so; --out writes the spec (W&B's own view spec,
JSON) for `depthlab dashboard --push spec.json` where there is network. Entity
and project default to the runs' logger.wandb (your default entity when none
is set).
"""


def dashboard(
    paths: list[Path] = typer.Argument(
        None, metavar="RUNS_OR_SWEEP...", show_default=False,
        help="Run directories, or directories above them (a sweep)."),
    entity: str = typer.Option(None, "--entity", help="W&B entity (user or team) to save to."),
    project: str = typer.Option(None, "--project", help="W&B project the runs are in."),
    name: str = typer.Option(None, "--name", help="Workspace name (default: depthlab: <sweep>)."),
    spec_out: Path = typer.Option(None, "--out", metavar="SPEC.json",
                                  help="Also write the workspace spec to this file."),
    push: Path = typer.Option(None, "--push", metavar="SPEC.json",
                              help="Save the workspace of a spec written with --out."),
    timeout: float = typer.Option(30.0, "--timeout", metavar="SECONDS", min=1.0,
                                  help="Most seconds to wait for the W&B API when saving."),
    sync: bool = typer.Option(False, "--sync",
                              help="First upload the runs' offline W&B folders (and the "
                                   "sweep's report run) with `wandb sync`."),
) -> None:
    from depthlab import dashboard as dash

    if push is not None and paths:
        fail("give run directories or --push SPEC.json, not both")
    if push is not None and sync:
        fail("--sync uploads runs from their directories: give those, not --push SPEC.json")
    if push is None and not paths:
        fail("give a sweep or run directories, e.g. depthlab dashboard runs/my-sweep "
             "(or --push spec.json)")
    try:
        if push is not None:
            workspace, runs = dash.load_spec(push, entity=entity, project=project), []
        else:
            for p in paths:
                if not p.exists():
                    fail(f"no such file or directory: {p}")
            runs = dash.read_runs_keys(paths)
            if not runs:
                fail(f"no runs found under {', '.join(map(str, paths))}: a run directory holds "
                     "summary.json, as depthlab train and depthlab sweep write it")
            workspace = dash.build_workspace(runs, entity=entity, project=project, name=name,
                                             verdicts=dash.verdict_texts(paths))
    except dash.DashboardError as err:
        fail(str(err))
    for line in dash.outline_lines(workspace, runs):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if spec_out is not None:
        from depthlab.rundir import atomic_write

        try:
            spec_out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(spec_out, dash.spec_json(workspace))
        except OSError as err:
            fail(f"cannot write {spec_out}: {err.strerror or err}", code=1)
        console.print(f"spec: {spec_out}", highlight=False)
    why = dash.offline_reason()
    if why is not None:
        later = (f"push it later with: depthlab dashboard --push {spec_out}" if spec_out
                 else "add --out spec.json to keep the spec and push it later")
        if push is not None:
            fail(f"offline ({why}): --push needs the W&B API online", code=1)
        if sync:
            fail(f"offline ({why}): --sync needs W&B online to upload the runs", code=1)
        console.print(f"offline ({why}): workspace not saved, saving needs the W&B API; "
                      f"{later}", highlight=False, soft_wrap=True)
        return
    if sync:
        from depthlab.dashboard.sync import offline_folders
        from depthlab.dashboard.sync import sync as wandb_sync

        folders = offline_folders(runs, paths)
        console.print(f"wandb sync: {len(folders)} offline run folder(s)", highlight=False)
        if folders:
            try:
                wandb_sync(folders, entity=entity, project=project)  # else where they logged
            except dash.DashboardError as err:
                fail(f"{err}; workspace not saved", code=1)
    try:
        url = dash.save_workspace(workspace, timeout=timeout)
    except dash.DashboardError as err:
        if push is not None:
            fail(f"{err}; not saved", code=1)
        keep = (f"the spec is in {spec_out}" if spec_out else "write the spec with --out spec.json")
        fail(f"{err}; not saved: {keep} and push it later with depthlab dashboard --push "
             f"{spec_out or 'spec.json'}", code=1)
    out.print(f"workspace saved: {url}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("dashboard", help=HELP)(dashboard)
