"""The speed options (channels_last, bf16 autocast, torch.compile, CUDA) train the same net.

channels_last, bf16 and compile also run on the CPU, so CI checks them against the
plain fp32 run of the same seed; the CUDA tests skip where there is no GPU.
"""

from pathlib import Path

import pytest
import torch
from helpers import TINY, cli, csv, summary

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _train(name: str, *overrides: str) -> Path:
    result = cli("train", "arch=residual", *TINY, f"run.name={name}", *overrides)
    assert result.exit_code == 0, result.output
    run = Path("runs") / name
    assert summary(run)["status"] == "completed"
    return run


def _step0_grad_norms(run: Path) -> list[float]:
    g = csv(run, "gradflow.csv")
    return g[g.step == 0].sort_values("layer_index").grad_norm.tolist()


def test_channels_last_and_bf16_read_the_same_gradients_on_the_cpu():
    eager = _step0_grad_norms(_train("fp32"))
    # the same maths in another memory layout: equal up to float32 summation order
    assert _step0_grad_norms(_train("nhwc", "trainer.channels_last=true")) == \
        pytest.approx(eager, rel=1e-3)
    # bf16 autocast keeps 8 mantissa bits in the convolutions: within a few percent
    bf16 = _train("bf16", "trainer.precision=bf16")
    assert _step0_grad_norms(bf16) == pytest.approx(eager, rel=0.05)
    assert summary(bf16)["device"] == "cpu"


@pytest.mark.slow
def test_compiled_model_reads_its_gradients_outside_the_compiled_graph():
    eager = _train("eager")
    compiled = _train("compiled", "trainer.compile=true")  # about 45 s of compiling on 2 cores
    assert _step0_grad_norms(compiled) == pytest.approx(_step0_grad_norms(eager), rel=1e-4)
    last = csv(compiled, "gradflow.csv").step.max()
    assert last == csv(eager, "gradflow.csv").step.max() == 7
    # block hooks would break the graph: a compiled run records no activation std
    assert not (compiled / "activations.csv").exists() or csv(compiled, "activations.csv").empty
    assert csv(eager, "activations.csv").act_std.notna().all()


@needs_cuda
def test_cuda_bf16_channels_last_with_the_device_resident_loader():
    run = _train("cuda-bf16", "trainer.device=cuda", "trainer.precision=bf16",
                 "trainer.channels_last=true")
    s = summary(run)
    assert s["device"].startswith("cuda")
    g = csv(run, "gradflow.csv")
    assert g.grad_norm.notna().all() and (g.grad_norm > 0).all()
    cpu_run = _train("cpu-fp32", "trainer.device=cpu")  # the reference: on the CPU, in fp32
    assert summary(cpu_run)["device"] == "cpu"
    cpu = _step0_grad_norms(cpu_run)
    assert _step0_grad_norms(run) == pytest.approx(cpu, rel=0.1)


@needs_cuda
@pytest.mark.slow
def test_cuda_compile_matches_cuda_eager():
    eager = _train("cuda-eager", "trainer.device=cuda")
    compiled = _train("cuda-compiled", "trainer.device=cuda", "trainer.compile=true")
    assert _step0_grad_norms(compiled) == pytest.approx(_step0_grad_norms(eager), rel=1e-3)
