"""The comparison as a W&B run: one run per report, in the sweep's group, job type "report".

Someone who opens only W&B then sees the answer, not just the raw curves:

    settings = report_settings([run_config, ...])      # the runs' own logger.wandb
    log_report_run(settings, group="cifar10-degradation", root=sweep_dir,
                   columns=[...], rows=[[...], ...], verdicts=[(kind, holds, text), ...],
                   figures={"error_curves": Path(...), ...}, config={...})

What the report run holds (keys fixed here; `depthlab.dashboard` reads them):

    comparison/table               wandb.Table: the side-by-side table of report.md
                                   (one row per architecture and depth, as strings)
    comparison/figure/<key>        image: each report figure made (depthlab.report.FIGURES:
                                   error_curves, final_error, gradflow_layers,
                                   gradflow_heatmap, grad_ratio, back_norm; back_norm only
                                   where the runs recorded the backward signal)
    summary verdicts               the verdicts' texts, in the report's order
    summary verdict/<kind>[/<subject>]  one verdict's text; verdict_holds/...: true,
                                   false, or absent when the numbers cannot tell
    notes                          the verdicts, one per line (the run's description)

It follows the runs' logger: the mode, project, entity, dir and tags of their
`logger.wandb` (mode `auto` by default, resolved as a run resolves it; nothing
when every run had `logger=none`). The caller turns W&B trouble into one
warning: the report files are written before the run, and stay whatever W&B does.

One report run per sweep: its id is kept in `<sweep>/wandb_report.json`, and
re-reporting the sweep resumes that run, logs the table and figures at the next
step (W&B ignores steps a run already holds) and replaces its verdicts in the
summary (the keys of the previous report that are gone are deleted), so a
workspace filtered on the sweep's group never holds stale comparison tables.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from depthlab.rundir import atomic_write

from .wandb_sink import WandbConfig, _check_credentials, new_run_id, resolve_mode

JOB_TYPE = "report"
RUN_NAME = "report"
TABLE_KEY = "comparison/table"
FIGURE_PREFIX = "comparison/figure/"
VERDICTS_KEY = "verdicts"
VERDICT_PREFIX = "verdict/"
HOLDS_PREFIX = "verdict_holds/"
ID_FILE = "wandb_report.json"  # in the sweep's directory: {"id", "step", "keys"} of its report run


def figure_key(name: str) -> str:
    """`comparison/figure/<name>`: where the report figure `name` (a FIGURES key) goes."""
    return FIGURE_PREFIX + name


def verdict_key(kind: str, subject: str = "", taken: Iterable[str] = ()) -> str:
    """`verdict/<kind>[/<subject>]` (the subject as a key: "residual vs plain @ 14" ->
    residual-vs-plain-14), with `_2`, `_3`... when that key is already `taken`."""
    subject = re.sub(r"[^A-Za-z0-9._+-]+", "-", subject).strip("-")
    base = VERDICT_PREFIX + kind + (f"/{subject}" if subject else "")
    key, n, taken = base, 1, set(taken)
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    return key


def report_settings(configs: Iterable[Mapping[str, Any] | None],
                    mode: str | None = None) -> WandbConfig | None:
    """The report run's W&B settings: the `logger.wandb` of the first run that logged to
    W&B (runs of one sweep share it), or None when none did (logger=none). `mode`
    overrides the mode ("disabled": None); `auto` is resolved here (resolve_mode), so the
    mode returned is offline or online. A logger.wandb that does not check is skipped;
    a WANDB_MODE that W&B would not accept is a ValueError."""
    chosen = None
    for cfg in configs:
        wb = ((cfg or {}).get("logger") or {}).get("wandb") if isinstance(cfg, Mapping) else None
        try:
            c = WandbConfig.from_mapping(wb)
        except (TypeError, ValueError):  # a config from another depthlab version
            continue
        if wb is None:
            continue
        if c.mode != "disabled":
            chosen = c
            break
        chosen = chosen or c
    if mode is not None:
        chosen = replace(chosen or WandbConfig(), mode=WandbConfig.from_mapping({"mode": mode}).mode)
    if chosen is not None:
        chosen = replace(chosen, mode=resolve_mode(chosen.mode)[0])
    if chosen is None or chosen.mode == "disabled":
        return None
    return chosen


def report_state(root: str | Path) -> dict[str, Any]:
    """The sweep's report run so far ({} when none, or the file does not read)."""
    try:
        data = json.loads((Path(root) / ID_FILE).read_text())
    except (OSError, ValueError):
        return {}
    ok = (isinstance(data, dict) and isinstance(data.get("id"), str)
          and re.fullmatch(r"[a-z0-9]{8}", data["id"]) and isinstance(data.get("step"), int))
    return data if ok else {}


def log_report_run(settings: WandbConfig, *, group: str, root: str | Path,
                   columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   verdicts: Sequence[tuple[str, bool | None, str, str]],
                   figures: Mapping[str, str | Path], config: Mapping[str, Any] | None = None,
                   title: str = "") -> Path:
    """Write one W&B run (job type "report") into `group`: the table, the verdicts (notes
    and summary), the figures as images. Its files go under settings.dir, else
    $WANDB_DIR, else `root` (a sweep's directory). verdicts: (kind, holds, text,
    subject). The same `root` resumes the same run (ID_FILE). Returns the run's folder
    (W&B's sync_dir). Raises on W&B trouble."""
    import wandb

    c = replace(settings, mode=resolve_mode(settings.mode)[0])
    root = Path(root)
    if c.mode == "online":
        _check_credentials()
    where = Path(c.dir or os.environ.get("WANDB_DIR") or root).expanduser().resolve()
    where.mkdir(parents=True, exist_ok=True)
    notes = "\n".join(text for _, _, text, _ in verdicts)
    if title:
        notes = f"{title}\n\n{notes}" if notes else title
    before = report_state(root)
    run_id = before.get("id") or new_run_id()
    step = before["step"] + 1 if before else 0
    run = wandb.init(
        project=c.project, entity=c.entity, group=group, job_type=JOB_TYPE, name=RUN_NAME,
        notes=notes, config=dict(config or {}), tags=list(c.tags), dir=str(where), mode=c.mode,
        id=run_id, resume="allow", reinit="create_new",
        settings=wandb.Settings(init_timeout=float(c.init_timeout),
                                finish_timeout=float(c.finish_timeout),
                                console="off", silent=True),
    )
    ok = False
    try:
        row: dict[str, Any] = {TABLE_KEY: wandb.Table(columns=list(columns),
                                                      data=[list(r) for r in rows])}
        for name, path in figures.items():
            row[figure_key(name)] = wandb.Image(str(path), caption=Path(path).name)
        run.log(row, step=step)
        summary: dict[str, Any] = {VERDICTS_KEY: [text for _, _, text, _ in verdicts]}
        for kind, holds, text, subject in verdicts:
            key = verdict_key(kind, subject, summary)
            summary[key] = text
            if holds is not None:
                summary[HOLDS_PREFIX + key[len(VERDICT_PREFIX):]] = bool(holds)
        run.summary.update(summary)
        for key in set(before.get("keys") or ()) - set(summary):  # the last report's, now gone
            if isinstance(key, str):
                del run.summary[key]
        sync_dir = Path(run.sync_dir)
        ok = True
    finally:
        run.finish(exit_code=0 if ok else 1)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / ID_FILE, json.dumps({"id": run_id, "step": step,
                                             "keys": sorted(summary)}, indent=1) + "\n")
    return sync_dir

