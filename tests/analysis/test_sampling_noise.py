"""Verdicts do not call noise (issue #24, item 4): an error-rate difference within 2 binomial
standard errors of its own sampling noise is "about the same", seeds or not, and the seeds'
spread rule still applies beside it.

The thresholds below are worked out by hand in each test, from sqrt(p (1 - p) / N) per run,
the mean of n seeds having sqrt(sum p (1 - p) / N) / n, and two groups combining as
sqrt(se_a^2 + se_b^2); the code is not asked for them.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from fake_runs import make_run

from depthlab.analysis import NOISE_SE, load_table, verdicts
from depthlab.analysis.groups import images_of as _images


def table_of(root, errors: dict, **summary) -> pd.DataFrame:
    """Runs with the given final training errors, {(arch, depth, seed): error}; `summary`
    adds summary.json keys to every run (train_size, batch_size, ...)."""
    for (arch, depth, seed), err in errors.items():
        make_run(root, arch, depth, seed, train_error=err, test_error=err, log10_ratio_init=-0.5,
                 log10_ratio_end=-0.3, summary=summary)
    return load_table([root])


def only(table, kind, subject=None):
    found = [v for v in verdicts(table) if v.kind == kind and subject in (None, v.subject)]
    assert len(found) == 1, [v.text for v in verdicts(table)]
    return found[0]


def test_the_multiple_is_two():
    assert NOISE_SE == 2


def test_a_tenth_of_a_point_on_3000_images_is_about_the_same_on_one_seed(tmp_path):
    # the user's main job: residual-32 64.7% vs residual-8 64.6%, one seed, 3,000 images.
    # se(64.6%) = sqrt(0.646 * 0.354 / 3000) = sqrt(0.228684 / 3000) = 0.008731
    # se(64.7%) = sqrt(0.647 * 0.353 / 3000) = sqrt(0.228391 / 3000) = 0.008725
    # combined  = sqrt(0.008731^2 + 0.008725^2) = 0.012343; 2 of it = 0.0247 = 2.5 points
    by_hand = 2 * math.sqrt(0.646 * 0.354 / 3000 + 0.647 * 0.353 / 3000)
    assert by_hand == pytest.approx(0.02469, abs=1e-5) and 0.001 < by_hand
    table = table_of(tmp_path, {("residual", 8, 0): 0.646, ("residual", 32, 0): 0.647},
                     train_size=3000, test_size=1000)
    v = only(table, "degradation")
    assert v.holds is None
    assert v.text == (
        "Residual nets: about the same - residual-32 ends at 64.7% training error vs 64.6% for "
        "residual-8 (single seed; the difference of 0.1 points is within 2 standard errors of "
        "sampling noise (2.5 points on 3,000 images each))")


def test_nine_points_on_3000_images_are_called(tmp_path):
    # 2 * sqrt(0.60 * 0.40 / 3000 + 0.69 * 0.31 / 3000) = 2 * sqrt((0.24 + 0.2139) / 3000)
    #   = 2 * 0.012300 = 0.0246, far under the 0.09 difference
    by_hand = 2 * math.sqrt(0.60 * 0.40 / 3000 + 0.69 * 0.31 / 3000)
    assert by_hand == pytest.approx(0.0246, abs=1e-4) and 0.09 > by_hand
    table = table_of(tmp_path, {("residual", 8, 0): 0.60, ("residual", 32, 0): 0.69},
                     train_size=3000, test_size=1000)
    v = only(table, "degradation")
    assert v.holds is True
    # a call that passes the noise rule reads as before it existed
    assert v.text == (
        "Residual nets: deeper is worse - residual-32 ends at 69.0% training error vs 60.0% for "
        "residual-8 (single seed: no spread to judge the difference of 9.0 points against)")


def test_plain_vs_residual_at_a_depth_follows_the_noise_rule(tmp_path):
    table = table_of(tmp_path, {("plain", 8, 0): 0.646, ("residual", 8, 0): 0.647,
                                ("plain", 32, 0): 0.69, ("residual", 32, 0): 0.60},
                     train_size=3000, test_size=1000)
    at8 = only(table, "plain_vs_residual", "residual vs plain @ 8")
    assert at8.holds is None
    assert at8.text == (
        "At depth 8, residual and plain train about the same: residual-8 64.7% vs plain-8 64.6% "
        "training error (single seed; the difference of 0.1 points is within 2 standard errors "
        "of sampling noise (2.5 points on 3,000 images each)); test error 64.7% vs 64.6%")
    at32 = only(table, "plain_vs_residual", "residual vs plain @ 32")
    assert at32.holds is True and at32.text.startswith(
        "At depth 32, residual trains lower than plain: residual-32 60.0% vs plain-32 69.0%")
    plain = only(table, "degradation", "plain")  # 64.6% -> 69.0%: 4.4 points, called
    assert plain.holds is True and plain.text.startswith("Degradation in plain nets: yes - ")


def test_just_either_side_of_the_threshold(tmp_path):
    # one seed each, 10,000 images, 50.0% at depth 20:
    #   vs 51.40%: 2 * sqrt((0.5 * 0.5 + 0.514 * 0.486) / 10000)
    #            = 2 * sqrt((0.25 + 0.249804) / 10000) = 2 * 0.0070697 = 0.0141394 > 0.0140
    #   vs 51.42%: 2 * sqrt((0.25 + 0.5142 * 0.4858) / 10000)
    #            = 2 * sqrt((0.25 + 0.24979836) / 10000) = 2 * 0.0070696 = 0.0141393 < 0.0142
    below = 2 * math.sqrt((0.25 + 0.514 * 0.486) / 10000)
    above = 2 * math.sqrt((0.25 + 0.5142 * 0.4858) / 10000)
    assert below == pytest.approx(0.0141394, abs=1e-7) and 0.0140 < below
    assert above == pytest.approx(0.0141393, abs=1e-7) and 0.0142 > above
    tie = only(table_of(tmp_path / "a", {("plain", 20, 0): 0.50, ("plain", 56, 0): 0.514},
                        train_size=10000, test_size=10000), "degradation")
    assert tie.holds is None and tie.text.startswith("Degradation in plain nets: about the same - ")
    assert "the difference of 1.4 points is within 2 standard errors of sampling noise " \
           "(1.4 points on 10,000 images each)" in tie.text
    called = only(table_of(tmp_path / "b", {("plain", 20, 0): 0.50, ("plain", 56, 0): 0.5142},
                           train_size=10000, test_size=10000), "degradation")
    assert called.holds is True and called.text.startswith("Degradation in plain nets: yes - ")
    assert "sampling noise" not in called.text


def test_means_of_seeds_use_the_standard_error_of_the_mean(tmp_path):
    # 2 seeds each on 10,000 images; depth 20 at 49.9% and 50.1% (mean 50.0%)
    #   var(mean at 20) = (0.499 * 0.501 + 0.501 * 0.499) / 10000 / 2^2 = 0.499998 / 40000
    # depth 56 at 50.8% and 51.0% (mean 50.9%, 0.9 points up):
    #   var(mean at 56) = (0.508 * 0.492 + 0.510 * 0.490) / 40000 = (0.249936 + 0.2499) / 40000
    #   2 * sqrt(0.499998 / 40000 + 0.499836 / 40000) = 2 * 0.0049996 = 0.0099992 > 0.009
    # depth 56 at 51.0% and 51.2% (mean 51.1%, 1.1 points up):
    #   (0.510 * 0.490 + 0.512 * 0.488) / 40000 = (0.2499 + 0.249856) / 40000
    #   2 * sqrt(0.499998 / 40000 + 0.499756 / 40000) = 2 * 0.0049994 = 0.0099988 < 0.011
    # the seeds' spread is 0.2 points on both sides: 0.9 and 1.1 points both exceed it
    tie_noise = 2 * math.sqrt(0.499998 / 40000 + 0.499836 / 40000)
    call_noise = 2 * math.sqrt(0.499998 / 40000 + 0.499756 / 40000)
    assert 0.009 < tie_noise < 0.0100 and 0.011 > call_noise
    size = {"train_size": 10000, "test_size": 10000}
    tie = only(table_of(tmp_path / "a", {("plain", 20, 0): 0.499, ("plain", 20, 1): 0.501,
                                         ("plain", 56, 0): 0.508, ("plain", 56, 1): 0.510}, **size),
               "degradation")
    assert tie.holds is None
    assert tie.text == (
        "Degradation in plain nets: about the same - plain-56 ends at 50.9% training error vs "
        "50.0% for plain-20 (means of 2 seeds each; the difference of 0.9 points is within 2 "
        "standard errors of sampling noise (1.0 points on 10,000 images each), though it exceeds "
        "the seeds' spread (max - min) of 0.2 points)")
    called = only(table_of(tmp_path / "b", {("plain", 20, 0): 0.499, ("plain", 20, 1): 0.501,
                                            ("plain", 56, 0): 0.510, ("plain", 56, 1): 0.512},
                           **size), "degradation")
    assert called.holds is True
    assert called.text == (
        "Degradation in plain nets: yes - plain-56 ends at 51.1% training error vs 50.0% for "
        "plain-20 (means of 2 seeds each; the difference of 1.1 points exceeds the seeds' spread "
        "(max - min) of 0.2 points)")
    # the same 1.1 points on one seed each are within one seed's noise:
    #   2 * sqrt((0.5 * 0.5 + 0.511 * 0.489) / 10000) = 2 * sqrt(0.499879 / 10000) = 0.014140
    assert 2 * math.sqrt((0.25 + 0.511 * 0.489) / 10000) > 0.011
    single = only(table_of(tmp_path / "c", {("plain", 20, 0): 0.500, ("plain", 56, 0): 0.511},
                           **size), "degradation")
    assert single.holds is None and "(1.4 points on 10,000 images each)" in single.text


def test_the_seed_spread_rule_still_holds_beyond_the_noise(tmp_path):
    # 2 seeds on 50,000 images: 30%, 34% at depth 20 and 33%, 35% at depth 56: 2.0 points up,
    # within the spread of 4.0 points, though far beyond the noise:
    #   2 * sqrt((0.30 * 0.70 + 0.34 * 0.66) / 50000 / 4 + (0.33 * 0.67 + 0.35 * 0.65) / 50000 / 4)
    #   = 2 * sqrt((0.4344 + 0.4486) / 200000) = 2 * 0.0021012 = 0.0042 < 0.020
    assert 2 * math.sqrt((0.4344 + 0.4486) / 200000) == pytest.approx(0.0042, abs=1e-4)
    table = table_of(tmp_path, {("plain", 20, 0): 0.30, ("plain", 20, 1): 0.34,
                                ("plain", 56, 0): 0.33, ("plain", 56, 1): 0.35},
                     train_size=50000, test_size=10000)
    v = only(table, "degradation")
    assert v.holds is None
    assert v.text == (
        "Degradation in plain nets: inconclusive - plain-56 ends at 34.0% training error vs "
        "32.0% for plain-20 (means of 2 seeds each; the difference of 2.0 points is within the "
        "seeds' spread (max - min) of 4.0 points)")


def test_within_both_the_noise_and_the_spread_says_both(tmp_path):
    # 3,000 images, 2 seeds: 60%, 64% and 61%, 64%: 0.5 points up, within the 4.0-point spread
    # and within 2 * sqrt((0.6*0.4 + 0.64*0.36) / 3000 / 4 + (0.61*0.39 + 0.64*0.36) / 3000 / 4)
    #   = 2 * sqrt((0.4704 + 0.4683) / 12000) = 2 * 0.0088447 = 0.0177 (1.8 points)
    assert 2 * math.sqrt((0.4704 + 0.4683) / 12000) == pytest.approx(0.0177, abs=1e-4)
    table = table_of(tmp_path, {("residual", 8, 0): 0.60, ("residual", 8, 1): 0.64,
                                ("residual", 32, 0): 0.61, ("residual", 32, 1): 0.64},
                     train_size=3000, test_size=1000)
    v = only(table, "degradation")
    assert v.holds is None
    assert v.text.endswith(
        "(means of 2 seeds each; the difference of 0.5 points is within 2 standard errors of "
        "sampling noise (1.8 points on 3,000 images each) and the seeds' spread (max - min) of "
        "4.0 points)")


def test_n_is_the_images_the_error_was_measured_on():
    row = pd.Series({"train_size": 3000, "test_size": 1000, "train_subset": 3000.0,
                     "steps_completed": 115, "epochs_completed": 5})
    assert _images(row, "final_train_error") == 3000
    assert _images(row, "final_test_error") == 1000
    assert _images(row, "log10_grad_ratio") is None  # not an error rate
    # a run that predates train_size: its train_subset; neither: unknown (seed rule only)
    assert _images(pd.Series({"train_size": None, "train_subset": 5000.0}),
                   "final_train_error") == 5000
    assert _images(pd.Series({"train_size": float("nan")}), "final_train_error") is None
    # with the batch size known: the last epoch's whole batches, 23 * 128 = 2,944 of 3,000
    assert _images(pd.Series({**row, "batch_size": 128}), "final_train_error") == 2944
    # an iterations run that stopped 5 steps into its 6th epoch: 120 - 5 * 23 = 5 steps
    partial = pd.Series({**row, "batch_size": 128, "steps_completed": 120, "epochs_completed": 6})
    assert _images(partial, "final_train_error") == 5 * 128
    assert _images(partial, "final_test_error") == 1000  # the test set is always whole


def test_the_verdict_names_the_images_it_counted(tmp_path):
    # 2 * sqrt((0.646 * 0.354 + 0.647 * 0.353) / 2944) = 2 * sqrt(0.457075 / 2944) = 0.0249
    assert 2 * math.sqrt(0.457075 / 2944) == pytest.approx(0.0249, abs=1e-4)
    table = table_of(tmp_path, {("residual", 8, 0): 0.646, ("residual", 32, 0): 0.647},
                     train_size=3000, test_size=1000, batch_size=128, epochs=5,
                     epochs_completed=5, steps_completed=115)
    assert "(2.5 points on 2,944 images each)" in only(table, "degradation").text
