"""The sweep-level progress line: run k of N, elapsed, and time left from the plan."""

import time

from depthlab.progress import SweepClock, clock


def test_clock_format():
    assert clock(5) == "0:05" and clock(65) == "1:05" and clock(3725) == "1:02:05"


def test_time_left_follows_the_plan_scaled_by_the_runs_pace():
    c = SweepClock([100.0, 100.0, 200.0], jobs=1, total=400.0, started=time.time() - 150)
    # run 2 half done after 50 s, as planned: 400 - 150 = 250 s left
    text, fraction = c.status(1, 0.5, 50.0)
    assert text.startswith("run 2 of 3, 2:30 elapsed, ~4:1")  # 250 s, give or take the clock
    assert abs(fraction - 150 / 400) < 1e-9
    # the same run going twice as slow as planned: the plan's time doubles
    text, _ = c.status(1, 0.5, 100.0)
    assert "~10:50 left" in text or "~10:49 left" in text or "~10:51 left" in text


def test_never_less_than_the_runs_own_remaining_time():
    c = SweepClock([100.0], jobs=1, total=100.0, started=time.time() - 1000)
    text, _ = c.status(0, 0.5, 50.0)
    assert "~0:50 left" in text or "~0:49 left" in text or "~0:51 left" in text
