"""scripts/main_job.py's reading of the plan and of the runs' own clocks (no training here:
the script itself runs the README's main job, measured, into results/quick/)."""

from __future__ import annotations

import json

from script_module import script_module


def test_the_plans_durations_read_back_as_seconds():
    with script_module("main_job.py", "depthlab_main_job") as m:
        assert m.seconds_of("1 min 48 s") == 108
        assert m.seconds_of("2 h 03 min") == 7380
        assert m.seconds_of("45 s") == 45


def test_training_time_runs_from_the_first_start_to_the_last_end(tmp_path):
    runs = {"a": ("2026-12-07T03:00:00+00:00", "2026-12-07T03:01:30+00:00"),
            "b": ("2026-12-07T03:00:02+00:00", "2026-12-07T03:02:10+00:00"),
            "c": ("2026-12-07T03:01:31+00:00", "2026-12-07T03:01:50+00:00")}
    for name, (start, end) in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"started_at": start, "finished_at": end}))
    (tmp_path / "d").mkdir()  # a run that never finished does not count
    (tmp_path / "d" / "summary.json").write_text(json.dumps({"started_at": "2026-12-07T02:00:00+00:00"}))
    with script_module("main_job.py", "depthlab_main_job") as m:
        assert m.training_span(tmp_path) == 130.0
        assert m.training_span(tmp_path / "nothing") is None
