"""`depthlab dashboard`: the workspace is built offline, and every panel reads keys that
the runs really logged, as read back from their offline .wandb files with W&B's reader."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wandb
import yaml
from cli.helpers import TINY, cli
from tracking.wandb_reader import isolate_wandb, read_wandb_run, wandb_files

from depthlab import dashboard as dash
from depthlab.models import build_model, describe
from depthlab.tracking.wandb_report import JOB_TYPE
from depthlab.tracking.wandb_sink import BLOCK_SERIES, SERIES, block_keys, layer_keys

SWEEP = "dash"
# plain nets of two depths (different layer keys), W&B offline, every per-layer series on
LOGGED_SERIES = ("grad_norm", "weight_norm", "ratio", "act_std", "back_norm")
RUNS = [o for o in TINY if o not in ("logger=none", "depth=8")] + [
    "logger=default", f"logger.wandb.series=[{','.join(LOGGED_SERIES)}]",
    "arch=plain", "depth=8,14", "arch.layout=cifar", f"sweep.name={SWEEP}"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real sweep (two tiny synthetic runs and the report run), W&B offline, made once for
    the module; the tests read it, and write only into their own tmp_path."""
    root = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, root)
        mp.setenv("DEPTHLAB_DATA", str(root / "no-data-here"))
        mp.chdir(root)
        result = cli("sweep", *RUNS)
        wandb.teardown()
    assert result.exit_code == 0, result.output
    runs = [read_wandb_run(p) for p in wandb_files(root / "wandb-dir")]
    return root / "runs" / SWEEP, runs


def logged(run) -> set[str]:
    """Every key a W&B run has: history and summary keys; a table or an image counts under
    its own key (W&B stores it as key._type, key.path, ...)."""
    keys = set(run.summary)
    for row in run.history:
        keys |= set(row)
    return keys | {k[:-len("._type")] for k in keys if k.endswith("._type")}


def flat(config: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in config.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= flat(v, prefix + k + ".")
    return out


@pytest.mark.slow
def test_every_panel_reads_keys_the_runs_log(swept, tmp_path):
    sweep_dir, runs = swept
    result = cli("dashboard", str(sweep_dir), "--out", "spec.json")
    assert result.exit_code == 0, result.output
    workspace = dash.load_spec(tmp_path / "spec.json")
    outline = dash.outline(workspace)
    trained = [r for r in runs if r.job_type != JOB_TYPE]
    [report] = [r for r in runs if r.job_type == JOB_TYPE]
    assert sorted(r.name for r in trained) == ["plain-14-s0", "plain-8-s0"]
    anywhere = set().union(*(logged(r) for r in runs))
    summaries = set().union(*(set(r.summary) for r in runs))

    assert [s["name"] for s in outline["sections"]] == ["Gradient flow", "Training", "Runs table"]
    checked = 0
    for section in outline["sections"]:
        for panel in section["panels"]:
            for key in panel["history"]:
                assert key in anywhere, f"{section['name']} / {panel['title']}: {key} not logged"
                checked += 1
            for key in panel["summary"]:
                assert key in summaries or f"{key}._type" in summaries, key
                checked += 1
            if panel["x"] not in (None, "Step"):
                assert all(panel["x"] in logged(r) for r in trained), panel["x"]
            if panel["regex"]:  # a pattern picks exactly one whole series of every run
                stat = panel["regex"].split("/")[1]
                for r in trained:
                    picked = {k for k in logged(r) if re.search(panel["regex"], k)}
                    family = {k for k in logged(r) if k.startswith(f"gradflow/{stat}/")}
                    assert picked and picked == family, (r.name, stat)
                checked += 1
    assert checked >= 20

    # the gradient-norm pattern reads all 8 (15) layers of plain-8 (plain-14), nothing else
    gradient = outline["sections"][0]["panels"][0]
    for r in trained:
        depth = int(r.config["depth"])
        picked = sorted(k for k in logged(r) if re.search(gradient["regex"], k))
        assert picked == sorted(k for k in r.summary if k.startswith("gradflow/grad_norm/"))
        assert len(picked) == depth  # a plain net: one key per weighted layer
    # every logged series has its panel; the report run's table and figures have theirs
    patterns = {p["regex"] for s in outline["sections"] for p in s["panels"] if p["regex"]}
    assert patterns == {dash.series_pattern(s) for s in LOGGED_SERIES}
    report_keys = logged(report)
    runs_table = outline["sections"][2]["panels"]
    assert any(p["summary"] == ["comparison/table"] for p in runs_table)
    figures = [k for p in runs_table if p["type"] == "MediaBrowser" for k in p["history"]]
    assert figures and all(k in report_keys for k in figures)

    # the run list: summary columns every run has; grouping by config keys every run has
    for column in outline["runs"]["columns"]:
        source, _, key = column.partition(":")
        if source == "summary":
            assert all(key in r.summary for r in trained), key
    for key in outline["runs"]["group_by"]:
        assert all(key in flat(r.config) for r in trained), key
    # the runset is the sweep's W&B group and nothing else, as W&B's filter expression
    # (read back from the spec file) writes it
    assert outline["runs"]["filter"] == """Metric("Group") in ['dash']"""
    assert {r.group for r in runs} == {SWEEP}


@pytest.mark.slow
def test_offline_says_so_in_one_line_and_the_spec_round_trips(swept, tmp_path):
    sweep_dir, _ = swept
    result = cli("dashboard", str(sweep_dir), "--out", "out/spec.json", "--entity", "me",
                 "--project", "deep")
    assert result.exit_code == 0, result.output
    offline = [l for l in result.output.splitlines() if l.startswith("offline")]
    assert offline == ["offline (WANDB_MODE=offline): workspace not saved, saving needs the "
                       "W&B API; push it later with: depthlab dashboard --push out/spec.json"]
    spec = json.loads((tmp_path / "out" / "spec.json").read_text())
    assert (spec["entity"], spec["project"]) == ("me", "deep")  # W&B's own view spec
    built = dash.build_workspace(dash.read_runs_keys([sweep_dir]), entity="me", project="deep",
                                 verdicts=dash.verdict_texts([sweep_dir]))
    loaded = dash.load_spec(tmp_path / "out" / "spec.json")
    assert dash.outline(loaded)["sections"] == dash.outline(built)["sections"]
    assert dash.load_spec(tmp_path / "out" / "spec.json", project="other").project == "other"

    # without --out it says how to keep the spec; --push needs W&B online
    result = cli("dashboard", str(sweep_dir))
    assert result.exit_code == 0
    assert "add --out spec.json to keep the spec" in result.output
    result = cli("dashboard", "--push", "out/spec.json")
    assert result.exit_code == 1
    assert "--push needs the W&B API online" in result.output


@pytest.mark.slow
def test_saving_without_network_is_one_line_and_quick(swept, monkeypatch):
    sweep_dir, _ = swept
    monkeypatch.setenv("WANDB_MODE", "online")
    result = cli("dashboard", str(sweep_dir))  # no API key here
    assert result.exit_code == 1
    assert "saving a workspace needs a W&B API key" in result.output
    monkeypatch.setenv("WANDB_API_KEY", "depthlabfakekey" + "0" * 25)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    wandb.teardown()
    start = time.monotonic()
    result = cli("dashboard", str(sweep_dir), "--out", "spec.json")
    assert time.monotonic() - start < 30
    assert result.exit_code == 1
    errors = [l for l in result.output.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert "cannot reach W&B at http://127.0.0.1:9" in errors[0]
    assert "the spec is in spec.json" in errors[0]
    result = cli("dashboard", "--push", "spec.json", "--timeout", "5")
    assert result.exit_code == 1 and "cannot reach W&B" in result.output
    wandb.teardown()


@pytest.mark.slow
def test_runs_that_logged_nothing_to_wandb_have_no_dashboard(swept, tmp_path):
    sweep_dir, _ = swept
    run_dir = tmp_path / "runs" / "plain-8-s0"
    shutil.copytree(sweep_dir / "plain-8-s0", run_dir, ignore=shutil.ignore_patterns("wandb"))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["logger"]["wandb"]["mode"] = "disabled"  # as logger=none leaves it
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    result = cli("dashboard", "runs")
    assert result.exit_code == 2
    assert "none of these runs logged to W&B" in result.output


def test_usage_errors_are_one_line():
    for args, words in [((), "give a sweep or run directories"),
                        (("runs/x", "--push", "s.json"), "not both"),
                        (("no/such/sweep",), "no such file or directory"),
                        (("--push", "no-spec.json"), "cannot read no-spec.json")]:
        result = cli("dashboard", *args)
        assert result.exit_code == 2, args
        assert words in result.output and "Traceback" not in result.output
    Path("bad.json").write_text("{}")
    result = cli("dashboard", "--push", "bad.json")
    assert result.exit_code == 2 and "bad.json is no workspace spec" in result.output


def test_the_figures_panel_names_every_report_figure():
    from depthlab.report import FIGURES

    assert sorted(dash.REPORT_FIGURES) == sorted(FIGURES)


def test_series_patterns_pick_the_sinks_keys():
    d = describe(build_model("residual", 20, layout="cifar", shortcut="B"))
    for stat in SERIES:
        pattern = re.compile(dash.series_pattern(stat))
        mine = (block_keys(d["blocks"], stat) if stat in BLOCK_SERIES
                else layer_keys(d["layers"], stat))
        others = [k for s in SERIES if s != stat for k in (
            block_keys(d["blocks"], s) if s in BLOCK_SERIES else layer_keys(d["layers"], s))]
        assert all(pattern.search(k) for k in mine)
        assert not any(pattern.search(k) for k in others)
    with pytest.raises(ValueError, match="unknown series"):
        dash.series_pattern("grad")


@pytest.mark.slow
def test_sync_uploads_every_offline_run_of_the_sweep_with_wandb_sync(swept, monkeypatch):
    from depthlab.dashboard.sync import offline_folders, sync_command

    sweep_dir, runs = swept
    monkeypatch.setenv("WANDB_DIR", str(sweep_dir.parents[1] / "wandb-dir"))  # as they ran
    folders = offline_folders(dash.read_runs_keys([sweep_dir]), [sweep_dir])
    # the two trained runs and the sweep's report run, each found by its id
    assert sorted(f.name.rsplit("-", 1)[1] for f in folders) == sorted(r.run_id for r in runs)
    assert len(runs) == 3 and {r.job_type for r in runs} == {"plain", JOB_TYPE}
    assert all((f / f"run-{f.name.rsplit('-', 1)[1]}.wandb").exists() for f in folders)
    argv = sync_command(folders, entity="me", project="deep")
    assert argv == [sys.executable, "-m", "wandb", "sync", "--skip-synced", "--entity", "me",
                    "--project", "deep", *map(str, folders)]
    assert sync_command(folders)[5:] == list(map(str, folders))  # else where each run logged
    # W&B's own CLI takes that command line: its dry run names every folder, uploads nothing
    dry = subprocess.run([*argv[:4], "--dry-run", *argv[4:]], capture_output=True, text=True,
                         timeout=120)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert all(f.name in dry.stdout + dry.stderr for f in folders)

    result = cli("dashboard", str(sweep_dir), "--sync")  # WANDB_MODE=offline here
    assert result.exit_code == 1
    assert "offline (WANDB_MODE=offline): --sync needs W&B online" in result.output
    result = cli("dashboard", "--push", "spec.json", "--sync")
    assert result.exit_code == 2 and "give those, not --push" in result.output
