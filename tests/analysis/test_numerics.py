"""Does the precision change the science? fp32 and bf16 runs of the same nets, side by side."""

from __future__ import annotations

from fake_runs import SWEEP, make_run

from depthlab.analysis import load_table, precision_verdicts, verdicts
from depthlab.analysis.verdict import findings

BF16 = {"precision": "bf16", "channels_last": True}
FP32 = {"precision": "fp32", "channels_last": False}
N = {"train_size": 10_000, "test_size": 10_000, "batch_size": 100}


def _sweep(root, bf16_shift: dict):
    """SWEEP in fp32, and again in bf16 + channels_last with training errors shifted per net."""
    for (arch, depth, seed), (tr, te, ri, re) in SWEEP.items():
        for numerics, shift in ((FP32, 0.0), (BF16, bf16_shift.get((arch, depth), 0.0))):
            make_run(root, arch, depth, seed, train_error=tr + shift, test_error=te,
                     log10_ratio_init=ri, log10_ratio_end=re,
                     name=f"{arch}-{depth}-{numerics['precision']}-s{seed}", summary={**numerics, **N})
    return load_table([root])


def test_bf16_that_trains_as_fp32_stands_in(tmp_path):
    table = _sweep(tmp_path / "sweep", {})
    got = precision_verdicts(table, findings)
    nets = [v for v in got if v.kind == "precision"]
    assert len(nets) == 4 and all(v.holds for v in nets)
    assert nets[0].text.startswith("plain-20: bf16 + channels_last trains as fp32 does - training error 9.8% vs 9.8%")
    [same] = [v for v in got if v.kind == "precision_findings"]
    # degradation x2, plain vs residual at 20 and 56, vanishing x2: the same call in each arm
    assert same.holds and same.text == "Findings, bf16 + channels_last vs fp32: 6 of 6 the same call"
    # ... and they are part of the report's verdicts; an fp32 plain net is never set against
    # a bf16 residual net (precision is one of the settings compared nets must share)
    found = verdicts(table)
    assert same.text in [v.text for v in found]
    pairs = [v.text for v in found if v.kind == "plain_vs_residual"]
    assert len(pairs) == 4  # 2 depths x 2 precisions, not 8
    assert all(t.count("precision=bf16") == 1 or t.count("precision=fp32") == 1 for t in pairs)


def test_a_shift_beyond_spread_and_noise_is_called_and_changes_a_finding(tmp_path):
    # residual-56 in bf16 ends 10 points higher: beyond the 0.2-point spread and the noise
    # (2 x sqrt(2 x 0.06 x 0.94 / 10,000) / ... = 0.5 points at most), and higher than
    # residual-20: the residual nets' depth finding flips from "not worse" to "worse"
    table = _sweep(tmp_path / "sweep", {("residual", 56): 0.10})
    got = precision_verdicts(table, findings)
    by_net = {v.subject: v for v in got if v.kind == "precision"}
    assert not by_net["residual-56 bf16 + channels_last"].holds
    assert "differs from fp32 in train error" in by_net["residual-56 bf16 + channels_last"].text
    assert by_net["plain-56 bf16 + channels_last"].holds
    [changed] = [v for v in got if v.kind == "precision_findings"]
    assert not changed.holds
    assert "degradation residual: fp32 no, bf16 + channels_last yes" in changed.text


def test_a_table_of_one_precision_has_no_precision_verdicts(tmp_path):
    from fake_runs import make_sweep

    table = load_table([make_sweep(tmp_path / "sweep")])
    assert precision_verdicts(table, findings) == []
