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
`logger.wandb` (offline by default, like every run; nothing when every run had
`logger=none`). The caller turns W&B trouble into one warning: the report files
are written before the run, and stay whatever W&B does.
"""

from __future__ import annotations

import os
import re
import secrets
import string
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .wandb_sink import WandbConfig, _check_credentials

JOB_TYPE = "report"
RUN_NAME = "report"
TABLE_KEY = "comparison/table"
FIGURE_PREFIX = "comparison/figure/"
VERDICTS_KEY = "verdicts"
VERDICT_PREFIX = "verdict/"
HOLDS_PREFIX = "verdict_holds/"


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
    overrides the mode ("disabled": None). A logger.wandb that does not check is skipped."""
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
    if chosen is None or chosen.mode == "disabled":
        return None
    return chosen


def log_report_run(settings: WandbConfig, *, group: str, root: str | Path,
                   columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   verdicts: Sequence[tuple[str, bool | None, str, str]],
                   figures: Mapping[str, str | Path], config: Mapping[str, Any] | None = None,
                   title: str = "") -> Path:
    """Write one W&B run (job type "report") into `group`: the table, the verdicts (notes
    and summary), the figures as images. Its files go under settings.dir, else
    $WANDB_DIR, else `root` (a sweep's directory). verdicts: (kind, holds, text,
    subject). Returns the run's folder (W&B's sync_dir). Raises on W&B trouble."""
    import wandb

    c = settings
    if c.mode == "online":
        _check_credentials()
    where = Path(c.dir or os.environ.get("WANDB_DIR") or root).expanduser().resolve()
    where.mkdir(parents=True, exist_ok=True)
    notes = "\n".join(text for _, _, text, _ in verdicts)
    if title:
        notes = f"{title}\n\n{notes}" if notes else title
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    run = wandb.init(
        project=c.project, entity=c.entity, group=group, job_type=JOB_TYPE, name=RUN_NAME,
        notes=notes, config=dict(config or {}), tags=list(c.tags), dir=str(where), mode=c.mode,
        id=run_id, reinit="create_new",
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
        run.log(row, step=0)
        summary: dict[str, Any] = {VERDICTS_KEY: [text for _, _, text, _ in verdicts]}
        for kind, holds, text, subject in verdicts:
            key = verdict_key(kind, subject, summary)
            summary[key] = text
            if holds is not None:
                summary[HOLDS_PREFIX + key[len(VERDICT_PREFIX):]] = bool(holds)
        run.summary.update(summary)
        sync_dir = Path(run.sync_dir)
        ok = True
    finally:
        run.finish(exit_code=0 if ok else 1)
    return sync_dir

