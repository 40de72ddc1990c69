"""Read W&B runs back from their .wandb files with W&B's own reader, for tests.

    from wandb_reader import isolate_wandb, read_table, read_wandb_run, wandb_files
    # (elsewhere under tests/: from tracking.wandb_reader import ...)

    isolate_wandb(monkeypatch, tmp_path)       # before anything touches wandb
    ...                                        # run something that logs to W&B
    [path] = wandb_files(tmp_path)             # every run-<id>.wandb below a folder
    run = read_wandb_run(path)
    run.name, run.group, run.job_type, run.config["depth"], run.summary["status"]
    run.series("gradflow/grad_norm/L001_conv1", x="train/step")   # {step: value}

The reader is `wandb leet inspect --json <file>` (wandb >= 0.2x): one JSON
object per record of the transaction log (run, config, history, summary,
metric, files, exit, ...), decoded by wandb itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WANDB_HOME_VARS = {  # where wandb keeps settings, caches and artifact staging outside a run
    "WANDB_CONFIG_DIR": "config",
    "WANDB_CACHE_DIR": "cache",
    "WANDB_DATA_DIR": "data",
    "WANDB_ARTIFACT_DIR": "artifacts",
}


def isolate_wandb(monkeypatch, root: Path, *, wandb_dir: bool = True) -> None:
    """Keep wandb inside `root` and away from real credentials; reset its process state.

    wandb reads WANDB_* variables once per process (its singleton), so this
    tears the singleton down: the next wandb.init sees this test's variables.
    Pair it with `wandb.teardown()` after the test.
    """
    import wandb

    for var, sub in WANDB_HOME_VARS.items():
        monkeypatch.setenv(var, str(Path(root) / "wandb-home" / sub))
    if wandb_dir:
        monkeypatch.setenv("WANDB_DIR", str(Path(root) / "wandb-dir"))
    else:
        monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(Path(root) / "wandb-home" / "no-netrc"))
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT",
                "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    wandb.teardown()


def wandb_files(root: Path) -> list[Path]:
    """Every .wandb transaction log below `root`, oldest run folder first."""
    return sorted(Path(root).rglob("*.wandb"), key=lambda p: (p.parent.name, str(p)))


def read_records(path: Path, timeout: float = 120) -> list[dict[str, Any]]:
    """All records of one .wandb file, decoded by `wandb leet inspect --json`."""
    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
        capture_output=True, text=True, timeout=timeout, check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


@dataclass
class WandbRun:
    path: Path
    records: list[dict[str, Any]]
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    project: str = ""
    entity: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # user config (no "_wandb")
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per history row
    summary: dict[str, Any] = field(default_factory=dict)  # the final summary
    metrics: list[dict[str, Any]] = field(default_factory=list)  # define_metric records
    exit_code: int | None = None  # None: the run was not finished

    @property
    def files_dir(self) -> Path:
        return self.path.parent / "files"

    def series(self, key: str, x: str = "_step") -> dict[Any, Any]:
        """{x value: value} of `key` over the history rows that have both."""
        return {row[x]: row[key] for row in self.history if key in row and x in row}

    def step_metric(self, name: str) -> str | None:
        """The x axis defined for `name` (exactly or by a glob like "train/*")."""
        for m in self.metrics:
            if m.get("name") == name or m.get("glob_name") == name:
                return m.get("step_metric")
        return None


def read_wandb_run(path: Path) -> WandbRun:
    records = read_records(path)
    run = WandbRun(path=Path(path), records=records)
    for rec in records:
        kind = rec.get("type")
        body = rec.get(kind) or {}
        if kind == "run":
            run.run_id = body.get("run_id", "")
            run.name = body.get("display_name", "")
            run.group = body.get("run_group", "")
            run.job_type = body.get("job_type", "")
            run.project = body.get("project", "")
            run.entity = body.get("entity", "")
            run.tags = list(body.get("tags", []))
            _merge_config(run.config, body.get("config") or {})
        elif kind == "config":
            _merge_config(run.config, body)
        elif kind == "history":
            run.history.append(dict(body.get("item") or {}))
        elif kind == "summary":
            run.summary.update(body.get("update") or {})
            for item in body.get("remove") or []:  # {"key": k} or {"nestedKey": [k, ...]}
                key = item.get("key") or "/".join(item.get("nestedKey") or item.get("nested_key")
                                                  or []) if isinstance(item, dict) else item
                run.summary.pop(key, None)
        elif kind == "metric":
            run.metrics.append(body)
        elif kind == "exit":
            run.exit_code = int(body.get("exit_code", 0))
    return run


def _merge_config(config: dict[str, Any], body: dict[str, Any]) -> None:
    for key, value in (body.get("update") or {}).items():
        if not key.startswith("_wandb"):
            config[key] = value
    for key in body.get("remove") or []:
        config.pop(key, None)


def read_table(run: WandbRun, key: str) -> dict[str, Any]:
    """The last logged wandb.Table under `key`: {"columns": [...], "data": [[...], ...]}."""
    path = run.summary.get(f"{key}.path")
    if path is None:
        raise KeyError(f"no table {key!r} in {run.path}")
    return json.loads((run.files_dir / path).read_text())
