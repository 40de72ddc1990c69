"""trainer.precision / channels_last = auto (the CPU fast path), the bf16 step against fp32,
and what a run records of how its numbers were made."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from depthlab import machine
from depthlab.engine.precision import (
    MIN_SPEEDUP,
    FastPath,
    Precision,
    choose_fast_path,
    make_precision,
)
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


def cpu_fp16(**scaler) -> Precision:
    """fp16 autocast with a GradScaler on the CPU (torch has both there; depthlab's own runs
    refuse fp16 off CUDA, where its kernels are slow, not wrong)."""
    return Precision("fp16", lambda: torch.autocast("cpu", dtype=torch.float16),
                     torch.amp.GradScaler("cpu", **scaler))


def fp16_step(precision: Precision, seed: int = 0):
    torch.manual_seed(seed)
    net = build_model("residual", 8, num_classes=10, layout="cifar")
    desc = describe(net, flops=False)
    probe = GradFlowProbe(net, desc["layers"], desc["blocks"])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 10
    before = [p.detach().clone() for p in net.parameters()]
    *_, record = train_step(net, opt, x, y, precision, probe, 0)
    probe.close()
    return net, desc, record, before, (x, y)


def test_an_fp16_step_records_the_backward_signal_of_the_unscaled_loss():
    """The block hooks see the gradient of the scaled loss (unscale_ fixes only the weights'
    gradients): the record divides it by the scale that step used (2^10 here, where nothing
    overflows). Against the same fp16 pass written out by hand, and against fp32."""
    scale = 2.0 ** 10
    net, desc, record, _, (x, y) = fp16_step(cpu_fp16(init_scale=scale))
    assert not record.overflow
    torch.manual_seed(0)
    by_hand = build_model("residual", 8, num_classes=10, layout="cifar")
    modules = dict(by_hand.named_modules())
    outs = {}
    for b in desc["blocks"]:
        modules[b].register_forward_hook(lambda m, i, o, b=b: outs.__setitem__(b, o))
    with torch.autocast("cpu", dtype=torch.float16):
        loss = F.cross_entropy(by_hand(x).float(), y)
    grads = torch.autograd.grad(loss * scale, [outs[b] for b in desc["blocks"]])
    expected = torch.tensor([g.float().norm().item() / scale for g in grads])
    got = torch.tensor(record.back_norm)
    assert torch.allclose(got, expected, rtol=1e-3), (got / expected).tolist()
    *_, fp32, _, _ = fp16_step(make_precision("fp32", CPU))
    assert ((got - torch.tensor(fp32.back_norm)).abs() / torch.tensor(fp32.back_norm)).max() < 0.05
    assert ((torch.tensor(record.grad_norm) - torch.tensor(fp32.grad_norm)).abs()
            / torch.tensor(fp32.grad_norm)).max() < 0.05


def test_an_fp16_step_whose_gradients_overflow_is_marked_not_a_measurement():
    # at a scale of 2^40 the logits' gradient (about 1/16 an element) is past fp16's 65504
    net, _, record, before, _ = fp16_step(cpu_fp16(init_scale=2.0 ** 40))
    assert record.overflow
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before))  # step skipped


def test_an_fp16_run_takes_its_init_record_from_the_first_step_gradscaler_did_not_skip(
        monkeypatch, tmp_path):
    """Step 0 overflows (scale 2^40), then the scale drops to 2^10 and nothing does: the
    record of step 0 is left out, step 1 (the weights are still the initial ones, as the
    skipped step changed nothing) is the init record, and the ratio at init is its ratio."""
    from omegaconf import OmegaConf

    from depthlab import train
    from depthlab.config import compose_config
    from depthlab.engine import setup
    from depthlab.rundir import first_last_ratio

    real = setup.make_precision
    monkeypatch.setattr(setup, "make_precision", lambda name, device: cpu_fp16(
        init_scale=2.0 ** 40, backoff_factor=2.0 ** -30) if name == "fp16" else real(name, device))
    cfg = compose_config(["arch=residual", "depth=8", "data=synthetic", "data.train_size=128",
                          "data.test_size=32", "trainer.batch_size=32", "trainer.epochs=1",
                          "gradflow.every=2", "logger=none", "trainer.precision=fp16",
                          "trainer.device=cpu"])
    s = train.run(OmegaConf.to_container(cfg, resolve=True), tmp_path / "run")
    flow = pd.read_csv(tmp_path / "run" / "gradflow.csv")
    acts = pd.read_csv(tmp_path / "run" / "activations.csv")
    assert sorted(set(flow.step)) == sorted(set(acts.step)) == [1, 2, 3]  # 0 overflowed
    assert np.isfinite(flow.grad_norm).all() and (acts.back_norm > 0).all()
    assert s["status"] == "completed" and s["gradflow_records_skipped"] == 1
    torch.manual_seed(0)
    init = build_model("residual", 8, num_classes=10, layout="cifar", image_size=32)
    first = flow[flow.step == 1]
    modules = dict(init.named_modules())
    assert first.weight_norm.tolist() == pytest.approx(
        [modules[n].weight.norm().item() for n in first.layer], rel=1e-6)  # the initial weights
    layers = describe(init, flops=False)["layers"]
    assert s["grad_ratio_first_last_init"] == pytest.approx(
        first_last_ratio(layers, first.grad_norm.tolist()))
