"""A saved W&B workspace per sweep: gradient flow, training and the runs table, ready to read.

W&B's default workspace gives every logged key its own panel: 56 small charts for one
ResNet-56's per-layer gradient norms, hundreds for a sweep. This module lays the sweep
out the way the papers read it, as a workspace of the `wandb-workspaces` library:

    runs = read_runs(["runs/cifar10-degradation"])     # what each run logged to W&B
    workspace = build_workspace(runs, entity="me", project="depthlab",
                                verdicts=verdict_texts(["runs/cifar10-degradation"]))
    outline(workspace)          # sections -> panels -> the keys each one reads
    spec_json(workspace)        # W&B's own view spec, for a file (offline)
    save_workspace(workspace)   # online: upsert the view through the W&B API

Sections (keys are those of `depthlab.tracking.wandb_sink` and, for the comparison,
of `depthlab.tracking.wandb_report`):

    Gradient flow   every layer's gradient norm in one plot (keys chosen by the pattern
                    ^gradflow/grad_norm/L\\d+_, one line per run and layer, log scale);
                    gradflow/log10_ratio_first_last of every run in one plot; the
                    per-epoch gradient-vs-layer chart and the heatmap image; the
                    per-block activation std (and weight norms / ratios when logged)
    Training        training and test error and loss per epoch, runs grouped by
                    architecture and depth (mean over seeds, min-max band)
    Runs table      the report run's comparison table, final training error and the
                    gradient ratio against depth, the verdicts and the report's figures;
                    the run list shows the summary columns depthlab writes (final
                    errors, gradient ratios at init and at the end, params, FLOPs, status)

The runset holds the sweep's group(s) only, grouped by arch.name then depth. Panels of
the gradient-flow section turn that grouping off (aggregate=False): one line per run.

Saving needs the W&B API, so the network; offline the spec can be written to a file
and pushed later (`depthlab dashboard --push spec.json`). Building the workspace
touches no network.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

import yaml

from depthlab import rundir
from depthlab.analysis.runs import find_runs
from depthlab.tracking import wandb_report
from depthlab.tracking.wandb_sink import BLOCK_SERIES, SERIES, WandbConfig, block_keys, layer_keys

# What the runs log (see depthlab.tracking.wandb_sink for each key's meaning).
STEP, EPOCH = "train/step", "epoch"
RATIO_KEY = "gradflow/log10_ratio_first_last"
HEATMAP_KEY = "gradflow_by_layer/heatmap"
LAYER_TABLE_KEY = "gradflow_by_layer/table"
# wandb.plot.line_series(split_table=True) logged under K keeps its data in the table
# "Custom Chart Tables/K_table"; the chart itself is W&B's preset "wandb/lineseries/v0".
CHART_TABLE_KEY = "Custom Chart Tables/gradflow_by_layer/chart_table"
LINESERIES = "wandb/lineseries/v0"
EPOCH_CURVES = [("epoch/train_error", "training error"), ("epoch/test_error", "test error"),
                ("epoch/train_loss", "training loss"), ("epoch/test_loss", "test loss")]
GROUP_BY = ("arch.name", "depth")  # config keys: one line per architecture and depth
# The run list's columns: summary.json keys that every finished run has.
SUMMARY_COLUMNS = ["arch", "depth", "seed", "status", "final_train_error", "final_test_error",
                   "best_test_error", "log10_grad_ratio_init", "log10_grad_ratio",
                   "grad_ratio_first_last_init", "grad_ratio_first_last", "params", "flops"]
# The report run's figures, as depthlab.report.FIGURES names them (not imported: that
# loads matplotlib; tests/test_dashboard.py checks the two agree).
REPORT_FIGURES = ("final_error", "error_curves", "gradflow_layers", "grad_ratio",
                  "gradflow_heatmap", "back_norm")
SERIES_TITLES = {"grad_norm": "gradient norm of every layer (L001 = input side)",
                 "weight_norm": "weight norm of every layer",
                 "ratio": "gradient / weight norm of every layer",
                 "act_std": "output std of every block (B000 = input side)",
                 "back_norm": "backward signal ||dL/dh|| at every block's output (B000 = input side)"}
SAVE_TIMEOUT = 30.0  # seconds the W&B API may take to save a workspace


class DashboardError(Exception):
    """What went wrong, in one line a user can act on."""


def series_pattern(stat: str) -> str:
    """The regular expression of one per-layer (per-block: BLOCK_SERIES) series' keys, e.g.
    ^gradflow/grad_norm/L\\d+_ (the keys of `wandb_sink.layer_keys` / `block_keys`)."""
    if stat not in SERIES:
        raise ValueError(f"unknown series {stat!r}; valid: {', '.join(SERIES)}")
    prefix = "B" if stat in BLOCK_SERIES else "L"
    return rf"^gradflow/{stat}/{prefix}\d+_"


# --------------------------------------------------------------------------- the runs


@dataclass
class _Layer:  # what layer_keys reads of a layer
    index: int
    name: str


@dataclass
class RunKeys:
    """One run as W&B has it: names, where it logged, and the per-layer keys it logged."""

    name: str
    group: str
    run_dir: Path
    wandb: WandbConfig | None  # None: logger=none (nothing in W&B)
    series: dict[str, list[str]] = field(default_factory=dict)  # stat -> keys, in depth order


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def read_run(run_dir: Path) -> RunKeys:
    """What the run in `run_dir` logged to W&B, from its directory alone (config.yaml,
    summary.json, layers.csv, blocks.csv), named as the W&B sink names it."""
    run_dir = Path(run_dir)
    try:
        config = yaml.safe_load((run_dir / rundir.CONFIG).read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    try:
        summary = rundir.read_summary(run_dir)
        summary = summary if isinstance(summary, dict) else {}
    except (OSError, ValueError):
        summary = {}
    try:
        wb = WandbConfig.from_mapping((config.get("logger") or {}).get("wandb"))
    except (TypeError, ValueError):
        wb = None
    if wb is not None and wb.mode == "disabled":
        wb = None
    run = RunKeys(name=str(summary.get("name") or (config.get("run") or {}).get("name")
                           or run_dir.name),
                  group=str(summary.get("group") or run_dir.parent.name), run_dir=run_dir,
                  wandb=wb)
    if wb is None:
        return run
    index, name = rundir.LAYER_COLUMNS[:2]
    layers = [_Layer(int(r[index]), r[name]) for r in _rows(run_dir / rundir.LAYERS)]
    blocks = [r[rundir.BLOCK_COLUMNS[1]] for r in _rows(run_dir / rundir.BLOCKS)]
    activations = bool((config.get("gradflow") or {}).get("activations", True))
    for stat in wb.series:
        if stat in BLOCK_SERIES:
            if activations and blocks:
                run.series[stat] = block_keys(blocks, stat)
        elif layers:
            run.series[stat] = layer_keys(layers, stat)
    return run


def read_runs(paths: Iterable[str | Path]) -> list[RunKeys]:
    """Every run under `paths` (run or sweep directories)."""
    return [read_run(d) for d in find_runs(paths)]


def verdict_texts(paths: Iterable[str | Path]) -> list[str]:
    """The verdicts on the runs under `paths`, in the words of `depthlab report`."""
    from depthlab.analysis import load_runs, verdicts

    table, _ = load_runs(paths)
    return [] if table.empty else [v.text for v in verdicts(table)]


# --------------------------------------------------------------------------- the workspace


def _wr():
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    return ws, wr, expr


def build_workspace(runs: Sequence[RunKeys], *, entity: str | None = None,
                    project: str | None = None, name: str | None = None,
                    verdicts: Sequence[str] = ()) -> Any:
    """The workspace of `runs` (those that logged to W&B): a wandb_workspaces Workspace,
    built offline. entity/project default to the runs' logger.wandb (entity "" when
    unknown: the API's default entity is filled in when saving). `verdicts` go into a
    text panel of the runs table section."""
    ws, wr, expr = _wr()
    logged = [r for r in runs if r.wandb is not None]
    if not logged:
        raise DashboardError("none of these runs logged to W&B (they ran with logger=none, "
                             "logger.wandb.mode=disabled): there is nothing for a workspace "
                             "to show")
    groups = list(dict.fromkeys(r.group for r in logged))
    entity = entity or next((r.wandb.entity for r in logged if r.wandb.entity), None) \
        or os.environ.get("WANDB_ENTITY") or ""
    project = project or logged[0].wandb.project
    stats = [s for s in SERIES if any(s in r.series for r in logged)]

    def per_run(**kw) -> Any:  # gradient flow: one line per run (and key), no grouping
        return wr.LinePlot(x=STEP, aggregate=False, **kw)

    def grouped(**kw) -> Any:  # training: runs grouped by arch and depth, seeds averaged
        return wr.LinePlot(aggregate=True, groupby_aggfunc="mean", groupby_rangefunc="minmax",
                           **kw)

    full = wr.Layout(w=24, h=9)
    gradient = [per_run(title=SERIES_TITLES["grad_norm"], metric_regex=series_pattern("grad_norm"),
                        log_y=True, title_y="gradient norm", layout=full)] \
        if "grad_norm" in stats else []
    gradient += [
        per_run(title="log10 gradient norm, first / last main-path layer", y=[RATIO_KEY],
                title_y="log10 first / last"),
        wr.CustomChart(query={"summaryTable": {"tableKey": CHART_TABLE_KEY}},
                       chart_name=LINESERIES,
                       chart_fields={"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"},
                       chart_strings={"title": "log10 gradient norm vs layer index, per epoch",
                                      "xname": "layer index"}),
        wr.MediaBrowser(title="gradient norm per layer over training (heatmap)",
                        media_keys=[HEATMAP_KEY], num_columns=1),
    ]
    gradient += [per_run(title=SERIES_TITLES.get(s, f"{s} of every layer"),
                         metric_regex=series_pattern(s),
                         log_y=s != "act_std")
                 for s in stats if s != "grad_norm"]
    training = [grouped(title=f"{label} per epoch (mean over seeds, min-max)", x=EPOCH, y=[key])
                for key, label in EPOCH_CURVES]
    figures = [wandb_report.figure_key(k) for k in REPORT_FIGURES]
    table = [
        wr.WeavePanelSummaryTable(table_name=wandb_report.TABLE_KEY, layout=wr.Layout(w=24, h=9)),
        wr.ScatterPlot(title="final training error vs depth", x=wr.SummaryMetric("depth"),
                       y=wr.SummaryMetric("final_train_error")),
        wr.ScatterPlot(title="log10 gradient ratio first / last at the end vs depth",
                       x=wr.SummaryMetric("depth"), y=wr.SummaryMetric("log10_grad_ratio")),
        wr.MediaBrowser(title="the report's figures (report run)", media_keys=figures,
                        num_columns=1),
    ]
    if verdicts:
        table.insert(1, wr.MarkdownPanel(markdown="**Verdicts**\n\n" + "\n".join(
            f"- {v}" for v in verdicts), layout=wr.Layout(w=24, h=6)))
    return ws.Workspace(
        entity=entity, project=project,
        name=name or f"depthlab: {', '.join(groups)}",
        sections=[ws.Section(name="Gradient flow", panels=gradient, is_open=True),
                  ws.Section(name="Training", panels=training, is_open=True),
                  ws.Section(name="Runs table", panels=table, is_open=True)],
        settings=ws.WorkspaceSettings(x_axis=STEP, max_runs=max(10, len(runs) + 1)),
        runset_settings=ws.RunsetSettings(
            filters=[expr.Metric("Group").isin(groups)],
            groupby=[expr.Config(k) for k in GROUP_BY],
            order=[expr.Ordering(expr.Summary("depth"), ascending=True)],
            pinned_columns=[f"summary:{k}" for k in SUMMARY_COLUMNS]),
    )


# --------------------------------------------------------------------------- reading it back


def _name(metric: Any) -> str:
    return metric if isinstance(metric, str) else getattr(metric, "name", str(metric))


def panel_keys(panel: Any) -> dict[str, Any]:
    """What one panel reads: {"type", "title", "x", "history": [...], "summary": [...],
    "regex": pattern or None}. History keys are logged keys (a table or image key
    stands for its logged object); summary keys are run summary keys."""
    kind = type(panel).__name__
    out: dict[str, Any] = {"type": kind, "title": getattr(panel, "title", None), "x": None,
                           "history": [], "summary": [], "regex": None}
    if kind == "LinePlot":
        out["x"] = _name(panel.x)
        out["history"] = [_name(y) for y in panel.y]
        out["regex"] = panel.metric_regex
    elif kind == "MediaBrowser":
        out["history"] = list(panel.media_keys)
    elif kind == "CustomChart":
        out["title"] = (panel.chart_strings or {}).get("title")
        table = ((panel.query or {}).get("summaryTable") or {}).get("tableKey")
        out["history"] = [table] if table else []
    elif kind == "WeavePanelSummaryTable":
        out["title"] = panel.table_name
        out["summary"] = [panel.table_name]
    elif kind == "ScatterPlot":
        out["summary"] = [_name(panel.x), _name(panel.y)]
    elif kind == "MarkdownPanel":  # reads no key: text written when the workspace is built
        lines = panel.markdown.splitlines() if panel.markdown else [""]
        items = sum(line.startswith("- ") for line in lines)
        out["title"] = f"{lines[0].strip('*')} (text, {items} items)"
    return out


def outline(workspace: Any) -> dict[str, Any]:
    """The workspace in plain data: name, entity, project, the runset (filter, grouping,
    columns) and each section's panels with the keys they read (`panel_keys`)."""
    rs = workspace.runset_settings
    return {
        "name": workspace.name, "entity": workspace.entity, "project": workspace.project,
        "runs": {"filter": str(rs.filters), "group_by": [_name(g) for g in rs.groupby],
                 "columns": [c for c in rs.pinned_columns]},
        "sections": [{"name": s.name, "panels": [panel_keys(p) for p in s.panels]}
                     for s in workspace.sections],
    }


def outline_lines(workspace: Any, runs: Sequence[RunKeys] = ()) -> list[str]:
    """The outline as text, one panel a line; a pattern says how many keys it matches in
    the deepest of `runs`."""
    o = outline(workspace)
    lines = [f"workspace {o['name']!r} in {o['entity'] or '<your default entity>'}/{o['project']}",
             f"  runs     {o['runs']['filter']}, grouped by {', '.join(o['runs']['group_by'])}",
             f"  columns  {', '.join(c.partition(':')[2] for c in o['runs']['columns'])}"]
    logged = [r for r in runs if r.wandb is not None]
    for s in o["sections"]:
        lines.append(f"  {s['name']}")
        for p in s["panels"]:
            reads = list(p["history"]) + [f"summary:{k}" for k in p["summary"]]
            if p["regex"]:
                counts = [len([k for keys in r.series.values() for k in keys
                               if re.search(p["regex"], k)]) for r in logged]
                many = f" ({max(counts)} keys in the deepest run)" if counts else ""
                reads.insert(0, f"/{p['regex']}/{many}")
            x = f" vs {p['x']}" if p["x"] else ""
            lines.append(f"    {p['type']:<22} {p['title'] or ''}{x}: "
                         f"{', '.join(reads) if reads else '-'}")
    return lines


def spec_json(workspace: Any) -> str:
    """W&B's own view spec of the workspace (what the API saves), as JSON text."""
    model = workspace._to_model()
    return json.dumps(model.model_dump(by_alias=True, exclude_none=True, mode="json"),
                      indent=1) + "\n"


def load_spec(path: str | Path, *, entity: str | None = None,
              project: str | None = None) -> Any:
    """The workspace of a spec file written by `spec_json`; entity/project replaced when
    given. Raises DashboardError (one line) when the file is missing or no spec."""
    from pydantic import ValidationError
    from wandb_workspaces.workspaces import Workspace, internal

    path = Path(path)
    try:
        data = json.loads(path.read_text())
        workspace = Workspace._from_model(internal.View.model_validate(data))
    except OSError as err:
        raise DashboardError(f"cannot read {path}: {err.strerror or err}") from None
    except (ValueError, ValidationError, KeyError, IndexError, TypeError, AttributeError):
        raise DashboardError(f"{path} is no workspace spec (write one with depthlab dashboard "
                             "RUNS --out spec.json)") from None
    if entity:
        workspace.entity = entity
    if project:
        workspace.project = project
    return workspace


# --------------------------------------------------------------------------- saving online


def _base_url() -> str:
    import wandb

    try:
        return str(wandb.setup().settings.base_url)
    except Exception:  # noqa: BLE001 - fall back to W&B's public server
        return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")


def _has_api_key(base_url: str) -> bool:
    """Whether W&B has a key for `base_url` (env, `wandb login`), without prompting."""
    try:
        from wandb.sdk.lib import wbauth

        return wbauth.authenticate_session(host=base_url, source="depthlab",
                                           prompt=False) is not None
    except (ImportError, AttributeError, TypeError):  # another wandb version: the API decides
        return True


def _reachable(base_url: str, timeout: float) -> str | None:
    """None when a TCP connection to the W&B server opens within `timeout`; else why not."""
    url = urlparse(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return None
    except OSError as err:
        return err.strerror or type(err).__name__


def save_workspace(workspace: Any, *, timeout: float = SAVE_TIMEOUT) -> str:
    """Save (upsert) the workspace through the W&B API; returns its URL. Every failure is
    a DashboardError in one line, and none waits longer than about `timeout` seconds:
    no API key, a server that cannot be reached, an API error, no answer."""
    from depthlab.tracking.safe import one_line

    base_url = _base_url()
    if not _has_api_key(base_url):
        raise DashboardError("saving a workspace needs a W&B API key: run `wandb login` or "
                             "set WANDB_API_KEY")
    why = _reachable(base_url, min(timeout, 10.0))
    if why is not None:
        raise DashboardError(f"cannot reach W&B at {base_url} ({why}): saving a workspace "
                             "needs the network")
    result: dict[str, Any] = {}

    def save() -> None:  # the W&B API retries on its own: bounded by the join below
        try:
            if not workspace.entity:
                import wandb

                workspace.entity = wandb.Api(timeout=timeout).default_entity or ""
            result["url"] = workspace.save().url
        except Exception as err:  # noqa: BLE001 - reported as one line below
            result["error"] = one_line(err)

    worker = threading.Thread(target=save, name="depthlab-dashboard-save", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DashboardError(f"no answer from W&B at {base_url} within {timeout:g} s; the "
                             "workspace was not saved (try again, or --timeout)")
    if "error" in result:
        raise DashboardError(f"W&B did not save the workspace: {result['error']}")
    return result["url"]


def offline_reason() -> str | None:
    """Why saving cannot happen here: W&B set offline (WANDB_MODE=offline or disabled, or
    `wandb offline`); None when W&B is online."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "dryrun", "disabled"):
        return f"WANDB_MODE={mode}"
    try:
        import wandb

        mode = str(wandb.setup().settings.mode)
    except Exception:  # noqa: BLE001 - unknown: try online, whose failure says why
        return None
    return f"W&B is in {mode} mode (wandb online to change)" if mode in ("offline", "dryrun",
                                                                        "disabled") else None
