"""Building the workspace spec offline, and reading one back (outline, JSON, spec files)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from depthlab.tracking import wandb_report
from depthlab.tracking.wandb_sink import BLOCK_SERIES, SERIES

from .runs import RunKeys

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


class DashboardError(Exception):
    """What went wrong, in one line a user can act on."""


def series_pattern(stat: str) -> str:
    """The regular expression of one per-layer (per-block: BLOCK_SERIES) series' keys, e.g.
    ^gradflow/grad_norm/L\\d+_ (the keys of `wandb_sink.layer_keys` / `block_keys`)."""
    if stat not in SERIES:
        raise ValueError(f"unknown series {stat!r}; valid: {', '.join(SERIES)}")
    prefix = "B" if stat in BLOCK_SERIES else "L"
    return rf"^gradflow/{stat}/{prefix}\d+_"



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
