"""trainer.precision / channels_last = auto (the CPU fast path), the bf16 step against fp32,
and what a run records of how its numbers were made."""

from __future__ import annotations

import math

import pytest
import torch

from depthlab import machine
from depthlab.engine.precision import MIN_SPEEDUP, FastPath, choose_fast_path, make_precision
from depthlab.engine.step import train_step
from depthlab.gradflow import GradFlowProbe
from depthlab.models import build_model, describe

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
AUTO = {"precision": "auto", "channels_last": "auto"}


def timer_of(seconds: dict[tuple[str, bool], float]):
    calls = []

    def timer(precision: str, channels_last: bool) -> float:
        calls.append((precision, channels_last))
        return seconds[(precision, channels_last)]
    return timer, calls


def test_auto_on_a_cpu_without_native_bf16_is_fp32_and_times_nothing():
    timer, calls = timer_of({})
    got = choose_fast_path(AUTO, CPU, timer, bf16_instructions=())
    assert (got.precision, got.channels_last) == ("fp32", False)
    assert "no native bf16" in got.reason and calls == []


def test_auto_on_a_cpu_with_native_bf16_takes_bf16_only_where_it_timed_faster():
    fast, calls = timer_of({("bf16", True): 0.5, ("fp32", False): 1.0})
    got = choose_fast_path(AUTO, CPU, fast, bf16_instructions=("avx512_bf16",))
    assert (got.precision, got.channels_last) == ("bf16", True)
    assert got.speedup == pytest.approx(2.0) and "2.00x faster" in got.reason
    assert "avx512_bf16" in got.reason and sorted(calls) == [("bf16", True), ("fp32", False)]
    # a gain under the margin is timing noise, not a reason to leave the reference
    slow, _ = timer_of({("bf16", True): 1.0 / (MIN_SPEEDUP - 0.01), ("fp32", False): 1.0})
    got = choose_fast_path(AUTO, CPU, slow, bf16_instructions=("amx_bf16",))
    assert (got.precision, got.channels_last) == ("fp32", False) and "below" in got.reason


def test_a_typed_setting_is_always_honoured():
    timer, calls = timer_of({})
    assert choose_fast_path({"precision": "fp32", "channels_last": False}, CPU, timer,
                            bf16_instructions=("avx512_bf16",)) == FastPath("fp32", False, "as configured")
    assert calls == []
    # precision typed, memory format auto: only channels_last is timed, at that precision
    timer, calls = timer_of({("fp32", True): 0.5, ("fp32", False): 1.0})
    got = choose_fast_path({"precision": "fp32", "channels_last": "auto"}, CPU, timer,
                           bf16_instructions=("avx512_bf16",))
    assert (got.precision, got.channels_last) == ("fp32", True)
    assert sorted(calls) == [("fp32", False), ("fp32", True)]


def test_auto_on_cuda_means_what_trainer_gpu_means():
    from depthlab.config import compose_config

    gpu = compose_config(["trainer=gpu"]).trainer
    got = choose_fast_path(AUTO, CUDA, None)
    assert (got.precision, got.channels_last) == (gpu.precision, gpu.channels_last) == ("bf16", True)


def test_cpu_bf16_reads_the_processor_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    assert machine.cpu_bf16(info) == ("avx512_bf16",) and machine.cpu_model(info) == "Some CPU"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert machine.cpu_bf16(info) == ()


@pytest.mark.parametrize("arch, depth", [("plain", 20), ("residual", 20)])
def test_a_bf16_cpu_step_gives_fp32_gradient_norms_within_bf16_rounding(arch, depth):
    """The gradient-flow statistics of a bf16 step against the fp32 step of the same net
    on the same batch. The weights and gradients stay fp32 under autocast, but the
    convolutions round their inputs to bf16 (8 bits of mantissa: a relative error of up to
    2^-8 = 0.4% per element), and those errors add up over the depth and the batch; a few
    percent per layer is what bf16 training means. 10% per layer, and the median layer
    within 3%, would still catch a record taken from bf16 tensors of the wrong scale (the
    loss scale, a sum over the batch instead of a mean) or from the wrong layer."""
    torch.manual_seed(0)
    nets = [build_model(arch, depth, num_classes=10, layout="cifar") for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    x, y = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 10
    records = []
    for net, precision in zip(nets, ("fp32", "bf16")):
        desc = describe(net, flops=False)
        probe = GradFlowProbe(net, desc["layers"], desc["blocks"])
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        *_, record = train_step(net, opt, x, y, make_precision(precision, CPU), probe, 0)
        probe.close()
        records.append(record)
    fp32, bf16 = (torch.tensor(r.grad_norm) for r in records)
    rel = ((bf16 - fp32).abs() / fp32)
    assert len(fp32) == depth and torch.isfinite(bf16).all()
    assert rel.max() < 0.10, f"worst layer {rel.argmax().item()}: {rel.max():.3f}"
    assert rel.median() < 0.03
    back32, back16 = (torch.tensor(r.back_norm) for r in records)
    assert ((back16 - back32).abs() / back32).max() < 0.10  # the backward signal too
    ratio32 = math.log10(fp32[0] / fp32[-1])
    assert math.log10(bf16[0] / bf16[-1]) == pytest.approx(ratio32, abs=0.05)


def test_an_auto_run_records_what_it_resolved_to(monkeypatch):
    """Faked: a processor without native bf16 (nothing is timed then); summary.json and
    W&B's config say fp32 and why, config.yaml keeps what was typed."""
    import yaml
    from cli.helpers import TINY, cli, summary
    from tracking.wandb_reader import read_wandb_run, wandb_files

    monkeypatch.setattr(machine, "cpu_bf16", lambda *a: ())
    args = [a for a in TINY if a != "logger=none"]
    result = cli("train", "arch=residual", *args, "trainer.epochs=1", "trainer.device=cpu",
                 "trainer.precision=auto", "trainer.channels_last=auto")
    assert result.exit_code == 0, result.output
    s = summary("runs/residual-8-s0")
    assert (s["precision"], s["channels_last"], s["native_bf16"]) == ("fp32", False, False)
    assert "no native bf16" in s["fast_path"] and s["processor"] == machine.cpu_model()
    assert machine.cpu_model() in s["machine"] and "no native bf16" in s["machine"]
    typed = yaml.safe_load(open("runs/residual-8-s0/config.yaml"))["trainer"]
    assert (typed["precision"], typed["channels_last"]) == ("auto", "auto")
    [path] = wandb_files(".")
    config = read_wandb_run(path).config
    assert config["trainer"]["precision"] == "fp32" and config["trainer"]["channels_last"] is False
    assert config["machine"]["native_bf16"] is False


def test_a_bf16_channels_last_run_says_so():
    from cli.helpers import TINY, cli, summary

    result = cli("train", "arch=plain", *TINY, "trainer.epochs=1", "trainer.device=cpu",
                 "trainer.precision=bf16", "trainer.channels_last=true")
    assert result.exit_code == 0, result.output
    s = summary("runs/plain-8-s0")
    assert (s["precision"], s["channels_last"], s["fast_path"]) == ("bf16", True, "as configured")


def test_a_resumed_auto_run_keeps_what_its_first_sitting_chose(monkeypatch):
    """The choice is read from the earlier summary.json, not timed again (a re-timing could
    come out the other way and switch precision in the middle of a run)."""
    from depthlab.engine.distributed import World
    from depthlab.engine.setup import resolve_fast_path

    def no_timing(*a, **k):
        raise AssertionError("timed although the run had chosen")

    monkeypatch.setattr("depthlab.engine.timing.time_step", no_timing)
    cfg = {"trainer": dict(AUTO)}
    earlier = {"precision": "bf16", "channels_last": True, "fast_path": "auto: measured 1.9x"}
    got = resolve_fast_path(cfg, CPU, World(), 32, 10, earlier)
    assert got == FastPath("bf16", True, "auto: measured 1.9x")
    # a typed setting ignores the earlier sitting (a config change is refused before this)
    typed = resolve_fast_path({"trainer": {"precision": "fp32", "channels_last": False}}, CPU,
                              World(), 32, 10, earlier)
    assert (typed.precision, typed.channels_last) == ("fp32", False)
