"""`logger.wandb.mode: auto` follows W&B's own convention (WANDB_MODE, else online where an
API key is found, else offline); an explicit mode wins. One report run per sweep. All without
network: online attempts go to a closed local port and fall back with one warning."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import wandb
from cli.helpers import TINY, cli
from tracking.test_wandb_sink import FAKE_KEY, drive, make_info
from tracking.wandb_reader import isolate_wandb, read_wandb_run, wandb_files

from depthlab.rundir import read_json
from depthlab.tracking.local import LocalSink
from depthlab.tracking.safe import SafeSink
from depthlab.tracking.wandb_report import ID_FILE, log_report_run
from depthlab.tracking.wandb_sink import WandbConfig, WandbSink, resolve_mode

CLOSED_PORT = "http://127.0.0.1:9"  # nothing listens there: W&B's connection is refused at once


@pytest.fixture
def wb(tmp_path, monkeypatch):
    isolate_wandb(monkeypatch, tmp_path)
    yield tmp_path
    wandb.teardown()


def test_auto_honours_wandb_mode_then_the_api_key(wb, monkeypatch):
    assert WandbConfig().mode == "auto"
    assert resolve_mode("auto") == ("offline", "WANDB_MODE=offline")  # isolate_wandb sets it
    for env, mode in (("online", "online"), ("dryrun", "offline"), ("run", "online"),
                      ("disabled", "disabled"), ("OFFLINE", "offline")):
        monkeypatch.setenv("WANDB_MODE", env)
        assert resolve_mode("auto")[0] == mode, env
    monkeypatch.setenv("WANDB_MODE", "onlin")
    with pytest.raises(ValueError, match=r"WANDB_MODE='onlin' is not a W&B mode; valid: online"):
        resolve_mode("auto")

    monkeypatch.delenv("WANDB_MODE")
    mode, why = resolve_mode("auto")  # no key anywhere (isolate_wandb points NETRC at nothing)
    assert mode == "offline" and "wandb login" in why
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    wandb.teardown()
    assert resolve_mode("auto") == ("online", "W&B found an API key")


def test_an_explicit_mode_wins_over_the_environment(wb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    for mode in ("offline", "online", "disabled"):
        assert resolve_mode(mode) == (mode, f"logger.wandb.mode={mode}")
    run_dir = wb / "runs" / "residual-20-s0"
    sink = SafeSink(WandbSink({"mode": "offline", "dir": str(wb / "wb")}), "W&B")
    drive([LocalSink(run_dir), sink], make_info(run_dir), epochs=1)
    [path] = wandb_files(wb / "wb")
    assert path.parent.name.startswith("offline-run-") and not sink.disabled


def test_auto_with_a_key_goes_online_and_falls_back_with_one_warning(wb, monkeypatch, caplog):
    # a logged-in user (the key) whose W&B server cannot be reached: online is tried, fails
    # within init_timeout, and the run goes on with its local files
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", CLOSED_PORT)
    run_dir = wb / "runs" / "residual-20-s0"
    sink = SafeSink(WandbSink({"init_timeout": 3, "dir": str(wb / "wb")}), "W&B")  # mode: auto
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="depthlab"):
        drive([LocalSink(run_dir), sink], make_info(run_dir), epochs=1)
    assert time.monotonic() - started < 60
    assert sink.sink.mode == "online"
    warnings = [r for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.split(".")[0] == "depthlab"]
    assert len(warnings) == 1 and sink.disabled and "start()" in warnings[0].getMessage()
    assert read_json(run_dir / "summary.json")["status"] == "completed"
    assert not any(p.parent.name.startswith("offline-run-") for p in wandb_files(wb))


def test_auto_without_a_key_is_offline_with_the_hint(wb, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_MODE")
    run_dir = wb / "runs" / "residual-20-s0"
    sink = SafeSink(WandbSink({"dir": str(wb / "wb")}), "W&B")
    with caplog.at_level(logging.INFO, logger="depthlab"):
        drive([LocalSink(run_dir), sink], make_info(run_dir), epochs=1)
    [line] = [r.getMessage() for r in caplog.records if "W&B: offline run" in r.getMessage()]
    assert "no W&B API key: `wandb login` to log online" in line and "wandb sync" in line
    [path] = wandb_files(wb / "wb")
    assert read_wandb_run(path).exit_code == 0


def test_the_environment_reaches_a_trained_run(wb, monkeypatch):
    # WANDB_MODE=online with the default logger: online is tried (no key: one warning)
    monkeypatch.setenv("WANDB_MODE", "online")
    result = cli("train", "arch=plain", *[o for o in TINY if o != "logger=none"])
    assert result.exit_code == 0, result.output
    assert "online mode needs a W&B API key" in " ".join(result.output.split())
    assert not wandb_files(wb)
    monkeypatch.setenv("WANDB_MODE", "nonsense")
    result = cli("train", "arch=plain", *[o for o in TINY if o != "logger=none"], "run.fresh=true")
    assert result.exit_code == 0, result.output  # W&B trouble never stops a run
    assert "WANDB_MODE='nonsense' is not a W&B mode" in " ".join(result.output.split())


VERDICTS_1 = [("degradation", True, "plain degrades", "plain"),
              ("vanishing", False, "no vanishing", "residual")]
VERDICTS_2 = [("degradation", False, "plain: about the same", "plain")]


def test_reporting_a_sweep_again_resumes_its_one_report_run(wb, tmp_path):
    sweep = tmp_path / "runs" / "sweep"
    settings = WandbConfig(mode="auto", dir=str(wb / "wb"))
    first = log_report_run(settings, group="sweep", root=sweep, columns=["a"], rows=[["1"]],
                           verdicts=VERDICTS_1, figures={})
    saved = read_json(sweep / ID_FILE)
    assert saved["step"] == 0 and "verdict/vanishing/residual" in saved["keys"]
    wandb.teardown()
    second = log_report_run(settings, group="sweep", root=sweep, columns=["a"], rows=[["2"]],
                            verdicts=VERDICTS_2, figures={})
    assert first != second
    runs = [read_wandb_run(p) for p in wandb_files(wb / "wb")]
    assert [r.run_id for r in runs] == [saved["id"]] * 2  # one report run, resumed
    assert [[row["_step"] for row in r.history if "comparison/table._type" in row]
            for r in runs] == [[0], [1]]  # each report at its own step: none is ignored
    assert runs[1].summary["verdicts"] == ["plain: about the same"]
    assert runs[1].summary["verdict_holds/degradation/plain"] is False
    # the first report's verdict that is gone is deleted, not left stale
    removed = [rec for rec in runs[1].records if rec.get("type") == "summary"
               and rec["summary"].get("remove")]
    assert removed and "verdict/vanishing/residual" in str(removed)
    assert read_json(sweep / ID_FILE)["step"] == 1


def test_a_broken_report_id_file_starts_a_new_report_run(wb, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / ID_FILE).write_text("{not json")
    log_report_run(WandbConfig(mode="offline", dir=str(wb / "wb")), group="g", root=sweep,
                   columns=["a"], rows=[], verdicts=[], figures={})
    saved = read_json(sweep / ID_FILE)
    assert len(saved["id"]) == 8 and saved["step"] == 0
    assert Path(wandb_files(wb / "wb")[0]).name == f"run-{saved['id']}.wandb"
