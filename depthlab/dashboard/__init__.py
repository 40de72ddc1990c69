"""A saved W&B workspace per sweep: gradient flow, training and the runs table, ready to read.

W&B's default workspace gives every logged key its own panel: 56 small charts for one
ResNet-56's per-layer gradient norms, hundreds for a sweep. This package lays the sweep
out the way the papers read it, as a workspace of the `wandb-workspaces` library:

    runs = read_runs_keys(["runs/cifar10-degradation"])  # what each run logged to W&B
    workspace = build_workspace(runs, entity="me", project="depthlab",
                                verdicts=verdict_texts(["runs/cifar10-degradation"]))
    outline(workspace)          # sections -> panels -> the keys each one reads
    spec_json(workspace)        # W&B's own view spec, for a file (offline)
    save_workspace(workspace)   # online: upsert the view through the W&B API

Sections (keys are those of `depthlab.tracking.wandb_sink` and, for the comparison,
of `depthlab.tracking.wandb_report`):

    Gradient flow   every layer's gradient norm in one plot (keys chosen by the pattern
                    ^gradflow/grad_norm/L\\d+_, one line per run and layer, log scale;
                    where grad_norm is logged); gradflow/log10_ratio_first_last of every
                    run in one plot; the per-epoch gradient-vs-layer chart; the heatmap
                    image; then one plot per other logged series (logger.wandb.series):
                    weight norm and gradient / weight ratio of every layer, output std
                    and backward signal ||dL/dh|| of every block (act_std and back_norm
                    are logged by default)
    Training        training and test error and loss per epoch, runs grouped by
                    architecture and depth (mean over seeds, min-max band)
    Runs table      the report run's comparison table; the verdicts (a text panel, where
                    given); final training error vs depth; log10 gradient ratio first /
                    last at the end vs depth; the report's figures (every one of
                    depthlab.report.FIGURES: spec.REPORT_FIGURES). The run list shows
                    the summary columns depthlab writes (arch, depth, seed, status, final
                    and best errors, gradient ratios at init and at the end, params, FLOPs)

The runset holds the sweep's group(s) only, grouped by arch.name then depth. Panels of
the gradient-flow section turn that grouping off (aggregate=False): one line per run.

Saving needs the W&B API, so the network; offline the spec can be written to a file
and pushed later (`depthlab dashboard --push spec.json`). Building the workspace
touches no network.

    runs    reading run directories: what each run logged to W&B (RunKeys), the verdicts
    spec    building the workspace offline; reading it back (outline, spec JSON, spec files)
    save    saving it through the W&B API, bounded in time; whether W&B is offline
    sync    uploading the sweep's offline runs with `wandb sync` first (--sync)
"""

from __future__ import annotations

from .runs import RunKeys, read_run_keys, read_runs_keys, verdict_texts
from .save import SAVE_TIMEOUT, offline_reason, save_workspace
from .spec import (
    CHART_TABLE_KEY,
    EPOCH,
    EPOCH_CURVES,
    GROUP_BY,
    HEATMAP_KEY,
    LAYER_TABLE_KEY,
    LINESERIES,
    RATIO_KEY,
    REPORT_FIGURES,
    SERIES_TITLES,
    STEP,
    SUMMARY_COLUMNS,
    DashboardError,
    build_workspace,
    load_spec,
    outline,
    outline_lines,
    panel_keys,
    series_pattern,
    spec_json,
)

__all__ = [
    "CHART_TABLE_KEY", "EPOCH", "EPOCH_CURVES", "GROUP_BY", "HEATMAP_KEY", "LAYER_TABLE_KEY",
    "LINESERIES", "RATIO_KEY", "REPORT_FIGURES", "SAVE_TIMEOUT", "SERIES_TITLES", "STEP",
    "SUMMARY_COLUMNS", "DashboardError", "RunKeys", "build_workspace", "load_spec",
    "offline_reason", "outline", "outline_lines", "panel_keys", "read_run_keys",
    "read_runs_keys", "save_workspace", "series_pattern", "spec_json", "verdict_texts",
]
