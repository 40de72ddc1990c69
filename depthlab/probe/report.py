"""The probe directory: its files (probe.json, the CSVs, runs/<name>/ per configuration and
seed), the figures, report.md, and the optional W&B run."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

from depthlab.rundir import RunSummary, atomic_write, summary_result, write_json

from .figures import FIGURES, make_figures
from .findings import _std, findings
from .grid import ProbeConfig, ProbeError, ProbeSettings
from .measure import ProbeResult

MARKER = "probe.json"  # marks a probe directory (and holds its settings)


# --------------------------------------------------------------------------- files


def default_dir(settings: ProbeSettings, runs_dir: str | Path = "runs") -> Path:
    if settings.out:
        return Path(settings.out)
    tag = settings.name or datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(runs_dir) / f"probe-{tag}"


def check_dir(path: str | Path) -> Path:
    """A probe directory may be new, empty or an earlier probe's (its files are replaced);
    anything else is a ProbeError, raised before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ProbeError(f"out={path} is a file; give a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise ProbeError(f"out={path} exists and is not a probe directory (no {MARKER}); "
                         "give a new or empty directory")
    return path


def prepare_dir(path: str | Path) -> Path:
    """Create the probe directory, removing an earlier probe's runs/ subdirectory."""
    path = check_dir(path)
    if (path / "runs").is_dir():
        shutil.rmtree(path / "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _settings_dict(result: ProbeResult) -> dict[str, Any]:
    s = asdict(result.settings)
    s["data"] = dict(result.settings.data) if result.settings.data is not None else None
    return {
        "kind": "probe", "command": result.command, "machine": result.machine,
        "device": result.device, "data": result.data_name, "wall_seconds": result.wall_seconds,
        "torch": torch.__version__, "settings": s,
    }


def write_runs(result: ProbeResult, runs_dir: Path, group: str) -> list[Path]:
    """One run-like directory per (configuration, seed) in depthlab.rundir's format
    (config.yaml, layers.csv, blocks.csv, gradflow.csv and activations.csv at step 0,
    header-only metrics CSVs, summary.json with status completed and no errors), so that
    `depthlab report <probe>/runs` reads them like runs stopped at initialisation."""
    from depthlab.tracking import RunInfo
    from depthlab.tracking.local import LocalSink

    s = result.settings
    written = []
    for r in result.runs:
        c: ProbeConfig = r["config"]
        run_dir = runs_dir / r["name"]
        config = {
            "arch": {"name": c.arch, "layout": s.layout, "norm": c.norm,
                     **({"shortcut": c.shortcut} if c.shortcut else {}),
                     **({"branch": c.branch} if c.branch != "standard" else {})},
            "depth": c.depth, "seed": r["seed"],
            "probe": {"batch": s.batch, "data": result.data_name, "loss": "cross_entropy",
                      "mode": "train", "step": 0},
        }
        info = RunInfo(name=r["name"], group=group, run_dir=run_dir, config=config,
                       description={}, layers=r["layers"], blocks=r["blocks"])
        sink = LocalSink(run_dir)
        sink.start(info)
        sink.log_gradflow(0, r["record"])
        ratio = r["ratio"]
        summary = RunSummary(
            name=r["name"], group=group, kind="probe", arch=c.arch,
            depth=c.depth, layout=s.layout, norm=c.norm, shortcut=c.shortcut,
            preact=False if c.arch != "dense" else None,
            zero_init_residual=False if c.arch != "dense" else None,
            seed=r["seed"], data=result.data_name, train_subset=None,
            params=r["params"], flops=None, epochs=0, total_steps=0,
            device=result.device, machine=result.machine)
        # log10 of the ratio: None where measure's r["log10_ratio"] is NaN (both are null in JSON)
        summary.update(summary_result(
            status="completed", final_train_error=None, final_test_error=None,
            best_test_error=None, epochs_completed=0, steps_completed=0,
            grad_ratio_first_last_init=ratio, grad_ratio_first_last=ratio))
        summary.update(probe_batch=s.batch, probe_loss=r["loss"], probe_note=r["note"] or None,
                       wall_seconds=r["seconds"])
        sink.finish(summary)
        written.append(run_dir)
    return written


def write_probe(result: ProbeResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the probe directory: probe.json, probe.csv, probe_blocks.csv, summary.csv,
    the figures, report.md and runs/<name>/ per (configuration, seed)."""
    out = prepare_dir(Path(out_dir))
    paths: dict[str, Path] = {}
    write_json(out / MARKER, _settings_dict(result))
    paths["probe"] = out / MARKER
    for key, name, frame in (("layers", "probe.csv", result.layers),
                             ("blocks", "probe_blocks.csv", result.blocks),
                             ("summary", "summary.csv", result.summary)):
        atomic_write(out / name, frame.to_csv(index=False))
        paths[key] = out / name
    paths.update(make_figures(result, out))
    write_runs(result, out / "runs", group=out.name)
    paths["runs"] = out / "runs"
    atomic_write(out / "report.md", report_markdown(result, paths))
    paths["report"] = out / "report.md"
    return paths


# --------------------------------------------------------------------------- the report

TABLE_HEADERS = ["arch", "depth", "norm", "shortcut", "params", "log10 first/last",
                 "std over seeds", "log10 back first/last", "last block act std", "seconds",
                 "note"]


def table_rows(summary: pd.DataFrame) -> list[list[str]]:
    """The summary table as strings (TABLE_HEADERS); the note says how many seeds left
    float32's range, and how."""
    rows = []
    for r in summary.itertuples():
        ratio = f"{r.log10_ratio_mean:+.2f}" if r.finite_seeds else "non-finite"
        note = r.note or ""
        if r.finite_seeds < r.seeds:
            note = f"{r.seeds - r.finite_seeds}/{r.seeds} seeds: {note}"
        arch = r.arch if getattr(r, "branch", "standard") == "standard" else f"{r.arch} {r.branch}"
        rows.append([arch, str(r.depth), r.norm, r.shortcut or "-", f"{r.params / 1e6:.2f}M",
                     ratio,
                     f"{r.log10_ratio_std:.2f}" if math.isfinite(r.log10_ratio_std) else "-",
                     f"{r.log10_back_ratio_mean:+.2f}" if math.isfinite(r.log10_back_ratio_mean)
                     else "non-finite",
                     _std(r.act_std_final_mean), f"{r.seconds:.1f}", note])
    return rows


def report_markdown(result: ProbeResult, paths: Mapping[str, Path]) -> str:
    from depthlab.analysis import markdown_table

    s = result.settings
    shortcut = ",".join(s.shortcuts) if s.shortcuts else ("A" if s.layout == "cifar" else "B")
    lines = [
        "# depthlab probe: gradient flow at initialisation", "",
        f"- **Machine:** {result.machine}, device {result.device}"
        + (f", {s.threads} passes side by side, one torch thread each"
           if result.device == "cpu" else ""),
        f"- **Wall time:** {result.wall_seconds:.1f} s for {len(result.runs)} forward + backward "
        f"passes ({len(result.summary)} configurations x {s.seeds} seeds)",
    ]
    if result.command:
        lines += ["- **Command:**", "", "```", result.command, "```", ""]
    lines += [
        f"- **Settings:** layout {s.layout}, batch {s.batch} ({result.data_name}), seeds 0..{s.seeds - 1}, "
        f"residual shortcut {shortcut}, loss cross-entropy, training mode, float32",
        "", "## Summary", "",
        markdown_table(TABLE_HEADERS, table_rows(result.summary)), "",
        "log10 first/last: log10 of the gradient norm of the first main-path layer (the stem "
        "conv) over that of the last (the classifier), mean over the seeds where it is finite; "
        "std over seeds: sample std of that log10. log10 back first/last: log10 of the "
        "backward signal ||dL/dh|| (L2 norm of the loss gradient at a block's output) at the "
        "first block over that at the last block, mean over seeds (Glorot & Bengio 2010). "
        "Last block act std: standard deviation of the last block's output, mean over seeds.",
        "",
        "## Findings", "",
    ]
    lines += [f"- {f}" for f in findings(result.summary)]
    lines += ["", "## Figures", ""]
    for key, (name, caption) in FIGURES.items():
        if key in paths:
            lines += [f"![{caption}]({name})", "", f"*{caption}.*", ""]
    lines += ["## Files", "",
              "- `probe.csv`: gradient and weight norm per (configuration, seed, weighted layer)",
              "- `probe_blocks.csv`: output std and backward signal ||dL/dh|| per "
              "(configuration, seed, block)",
              "- `summary.csv`: one row per configuration (the table above)",
              "- `runs/<arch>-<depth>-<norm>-s<seed>/`: run directories stopped at step 0; "
              "`depthlab report <this directory>/runs` reads them", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- W&B


def log_wandb(result: ProbeResult, paths: Mapping[str, Path], *, project: str = "depthlab") -> str:
    """One W&B run for the whole probe: the summary table and the figures, in the mode a
    run's default logger resolves to (WANDB_MODE, else online where W&B finds an API key,
    else offline). Returns the run's directory; raises whatever wandb raises."""
    import wandb

    from depthlab.tracking.wandb_sink import resolve_mode

    mode = resolve_mode("auto")[0]
    out = Path(paths["report"]).parent
    run = wandb.init(project=project, name=out.name, group="probe", job_type="probe", mode=mode,
                     dir=os.environ.get("WANDB_DIR") or str(out),
                     config=_settings_dict(result), reinit="finish_previous")
    try:
        summary = result.summary.fillna({"shortcut": ""})
        run.log({"probe/summary": wandb.Table(dataframe=summary),
                 **{f"probe/{key}": wandb.Image(str(paths[key]), caption=FIGURES[key][1])
                    for key in FIGURES if key in paths}})
        run.summary["wall_seconds"] = result.wall_seconds
    finally:
        run.finish()
    return str(run.dir) if getattr(run, "dir", None) else ""
