"""The captured-CUDA-graph step (trainer.cuda_graphs) against the eager step, the
reference: the same gradient-flow numbers, step by step. The GPU tests skip where there
is no CUDA (scripts/gpu_check.sh runs them on one); the switch's rules run everywhere."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from depthlab.engine.distributed import World
from depthlab.engine.errors import CudaGraphsError
from depthlab.engine.graphs import GraphedStep
from depthlab.engine.precision import make_precision
from depthlab.engine.setup import use_cuda_graphs
from depthlab.engine.step import train_step
from depthlab.gradflow import GradFlowProbe
from depthlab.models import build_model, describe

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cfg(setting, *, arch="residual", layout="cifar", precision="fp32", compile=False, **arch_opts):
    return {"trainer": {"cuda_graphs": setting, "precision": precision, "compile": compile},
            "arch": {"name": arch, "layout": layout, **arch_opts}}


CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def test_auto_is_off_on_the_cpu_and_false_is_off_everywhere():
    assert use_cuda_graphs(cfg("auto"), CPU, World()) is False
    assert use_cuda_graphs(cfg(False), CUDA, World()) is False


def test_auto_on_a_gpu_picks_the_small_launch_bound_nets_only():
    assert use_cuda_graphs(cfg("auto"), CUDA, World()) is True
    assert use_cuda_graphs(cfg("auto", arch="plain", precision="bf16"), CUDA, World()) is True
    assert use_cuda_graphs(cfg("auto", layout="imagenet"), CUDA, World()) is False
    assert use_cuda_graphs(cfg("auto", arch="dense"), CUDA, World()) is False
    assert use_cuda_graphs(cfg("auto", precision="fp16"), CUDA, World()) is False
    assert use_cuda_graphs(cfg("auto", compile=True), CUDA, World()) is False
    assert use_cuda_graphs(cfg("auto"), CUDA, World(rank=0, size=2)) is False
    assert use_cuda_graphs(cfg(True, layout="imagenet"), CUDA, World()) is True  # asked for


@pytest.mark.parametrize("case, device, world, words", [
    ({}, CPU, World(), "needs a CUDA device, and this run is on cpu"),
    ({"compile": True}, CUDA, World(), "trainer.compile=false"),
    ({"precision": "fp16"}, CUDA, World(), "fp32 or bf16"),
    ({}, CUDA, World(rank=0, size=2), "one process"),
    ({"arch": "dense", "memory_efficient": True}, CUDA, World(), "memory_efficient=false"),
])
def test_true_where_it_cannot_run_is_a_one_line_error(case, device, world, words):
    with pytest.raises(CudaGraphsError) as err:
        use_cuda_graphs(cfg(True, **case), device, world)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("trainer.cuda_graphs=true needs ")


def test_a_value_other_than_true_false_auto_is_an_error():
    with pytest.raises(CudaGraphsError, match="must be true, false or auto, got 'yes'"):
        use_cuda_graphs(cfg("yes"), CUDA, World())


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for graphs where there is no CUDA")
def test_depthlab_train_with_graphs_on_the_cpu_is_one_line_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from depthlab.cli import app

    result = CliRunner().invoke(app, ["train", "data=synthetic", "depth=8", "logger=none",
                                      "trainer.device=cpu", "trainer.cuda_graphs=true",
                                      f"paths.runs_dir={tmp_path / 'runs'}"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: trainer.cuda_graphs=true needs a CUDA device, and this run is on cpu; "
                     "use false or auto"]
    assert not (tmp_path / "runs").exists()


def test_the_configs_say_eager_until_a_gpu_has_measured_the_graphs():
    from omegaconf import OmegaConf

    from depthlab.config import compose_config

    assert OmegaConf.select(compose_config([]), "trainer.cuda_graphs") is False
    # trainer=gpu turns it on (auto) once scripts/gpu_check.sh has measured graphs vs eager
    assert OmegaConf.select(compose_config(["trainer=gpu"]), "trainer.cuda_graphs") is False
    assert OmegaConf.select(compose_config(["trainer=gpu", "trainer.cuda_graphs=auto"]),
                            "trainer.cuda_graphs") == "auto"


def test_the_summary_counts_the_graph_replays(tmp_path, monkeypatch):
    """summary.json's cuda_graph_replays, on the CPU: a GraphedStep whose every call runs the
    eager step and counts as a replay stands in for the captured graph."""
    from omegaconf import OmegaConf

    from depthlab.config import compose_config
    from depthlab.engine import setup
    from depthlab.train import run

    class EagerReplays(GraphedStep):
        def __call__(self, optimizer, x, y, precision, probe, step):
            self.replays += 1
            return train_step(self.model, optimizer, x, y, precision, probe, step)

    cfg = OmegaConf.to_container(compose_config(
        ["data=synthetic", "data.train_size=64", "data.test_size=32", "depth=8", "trainer.epochs=2",
         "trainer.batch_size=32", "trainer.device=cpu", "logger=none"]), resolve=True)
    cfg.pop("hydra", None)
    eager = run(cfg, tmp_path / "eager")
    assert "cuda_graph_replays" not in eager  # no graph, no count
    monkeypatch.setattr(setup, "use_cuda_graphs", lambda *args: True)
    monkeypatch.setattr(setup, "GraphedStep", EagerReplays)
    graphed = run(cfg, tmp_path / "graphed")
    assert graphed["steps_completed"] == graphed["cuda_graph_replays"] == 4  # 64 / 32 x 2 epochs
    assert json.loads((tmp_path / "graphed" / "summary.json").read_text())["cuda_graph_replays"] == 4


def test_the_streams_and_the_capture_are_bound_to_the_models_device(monkeypatch):
    """trainer.device=cuda:1: the warm-up's side stream, the stream it waits on, the capture
    stream and the current device are all cuda:1's, not the current device's (cuda:0). On the
    CPU: torch.cuda's stream, device and graph calls are stand-ins that record what device
    each was asked for, around a real eager warm-up and capture of a CPU model."""
    from contextlib import nullcontext

    seen = []

    class Stream:
        def __init__(self, device=None):
            self.device = None if device is None else torch.device(device)
            seen.append(("stream", self.device))

        def wait_stream(self, other):
            seen.append(("wait", other.device))

    class Graph:
        def replay(self):
            seen.append(("replay", None))

    def graph(g, stream=None, **kwargs):
        seen.append(("capture", stream.device if stream is not None else None))
        return nullcontext()

    def device(d):
        seen.append(("device", torch.device(d)))
        return nullcontext()

    def current(device=None):
        s = Stream.__new__(Stream)
        s.device = torch.device(device) if device is not None else None
        seen.append(("current", s.device))
        return s
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", current)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: nullcontext())
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    torch.manual_seed(0)
    model = build_model("residual", 8, num_classes=10, layout="cifar")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    p = make_precision("fp32", CPU)
    net = GraphedStep(model, p, None, warmup=1, device="cuda:1")
    x, y = torch.randn(4, 3, 32, 32), torch.randint(10, (4,))
    for step in range(3):  # warm-up, capture + replay, replay
        loss, _, _ = net(opt, x, y, p, None, step)
        assert torch.isfinite(loss)
    kinds = [k for k, _ in seen]
    assert kinds.count("capture") == 1 and kinds.count("replay") == 2 and "wait" in kinds
    assert kinds.count("device") == 3  # each step runs with cuda:1 current
    assert {d for k, d in seen if k != "replay"} == {torch.device("cuda", 1)}, seen
    assert GraphedStep(model, p, None).device == torch.device("cpu")  # by default: the model's


# --- on a GPU: the graph equals eager ---------------------------------------------------------

def _pair(precision: str, channels_last: bool):
    torch.manual_seed(0)
    model = build_model("residual", 20, num_classes=10, layout="cifar").cuda()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    twin = copy.deepcopy(model)
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)  # noqa: E731
    desc = describe(model, flops=False)
    probes = [GradFlowProbe(m, desc["layers"], desc["blocks"]) for m in (model, twin)]
    return (model, sgd(model), probes[0]), (twin, sgd(twin), probes[1])


@needs_cuda
@pytest.mark.parametrize("precision, channels_last", [("fp32", False), ("bf16", True)])
def test_graph_replays_give_eager_gradient_flow_step_by_step(precision, channels_last, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # eager vs eager is exact then
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    (eager, opt_e, probe_e), (graphed, opt_g, probe_g) = _pair(precision, channels_last)
    p = make_precision(precision, CUDA)
    net = GraphedStep(graphed, p, probe_g, warmup=2)
    g = torch.Generator(device="cuda").manual_seed(1)
    for step in range(8):  # 2 eager warm-up steps, the capture, then replays
        x = torch.randn(32, 3, 32, 32, device="cuda", generator=g)
        y = torch.randint(10, (32,), device="cuda", generator=g)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        recorded = step % 3 != 1  # skipped records must not disturb the next one
        loss_e, correct_e, rec_e = train_step(eager, opt_e, x, y, p, probe_e if recorded else None, step)
        loss_g, correct_g, rec_g = net(opt_g, x, y, p, probe_g if recorded else None, step)
        torch.testing.assert_close(loss_g, loss_e, rtol=1e-6, atol=0)
        assert correct_g.item() == correct_e.item()
        if recorded:
            assert rec_g.step == rec_e.step == step
            for name in ("grad_norm", "weight_norm", "act_std", "back_norm"):
                got, want = getattr(rec_g, name, []), getattr(rec_e, name, [])
                assert len(got) == len(want), name
                torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=0,
                                           msg=lambda m: f"{name} at step {step}: {m}")
            assert rec_g.act_std and all(v > 0 for v in rec_g.act_std)  # the hooks are in the graph
        else:
            assert rec_g is None
    assert net.replays == 6 and net.eager_steps == 2  # it did run as a graph
    for (name, a), b in zip(eager.state_dict().items(), graphed.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7, msg=lambda m: f"{name}: {m}")


@needs_cuda
def test_a_batch_of_another_shape_runs_eagerly_and_the_graph_goes_on():
    (eager, opt_e, probe_e), (graphed, opt_g, probe_g) = _pair("fp32", False)
    p = make_precision("fp32", CUDA)
    net = GraphedStep(graphed, p, probe_g, warmup=1)
    g = torch.Generator(device="cuda").manual_seed(2)
    for step, n in enumerate([16, 16, 16, 8, 16]):
        x = torch.randn(n, 3, 32, 32, device="cuda", generator=g)
        y = torch.randint(10, (n,), device="cuda", generator=g)
        _, _, rec_e = train_step(eager, opt_e, x, y, p, probe_e, step)
        _, _, rec_g = net(opt_g, x, y, p, probe_g, step)
        torch.testing.assert_close(torch.tensor(rec_g.grad_norm), torch.tensor(rec_e.grad_norm),
                                   rtol=1e-4, atol=0)
    assert net.replays == 3 and net.eager_steps == 2


TINY = ["arch=residual", "depth=8", "data=synthetic", "data.train_size=256", "data.test_size=64",
        "trainer.epochs=2", "trainer.batch_size=32", "trainer.eval_batch_size=64",
        "trainer.log_every=2", "gradflow.every=3", "logger=none", "trainer.device=cuda"]


def _run(name: str, *overrides: str) -> Path:
    from typer.testing import CliRunner

    from depthlab.cli import app

    result = CliRunner().invoke(app, ["train", *TINY, f"run.name={name}", *overrides],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return Path("runs") / name


@needs_cuda
@pytest.mark.slow
def test_a_run_with_cuda_graphs_writes_eager_gradient_flow(monkeypatch):
    """The switch end to end: depthlab train, trainer=gpu (bf16, channels_last) with
    trainer.cuda_graphs=true against the same with trainer.cuda_graphs=false (trainer=gpu's
    own setting: eager, the reference)."""
    import pandas as pd

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    graphed = _run("graphed", "trainer=gpu", "trainer.cuda_graphs=true")
    eager = _run("eager", "trainer=gpu", "trainer.cuda_graphs=false")
    for name in ("gradflow.csv", "activations.csv"):
        a, b = pd.read_csv(graphed / name), pd.read_csv(eager / name)
        assert len(a) == len(b) > 0 and list(a.columns) == list(b.columns)
        numbers = a.select_dtypes("number").columns
        pd.testing.assert_frame_equal(a[numbers], b[numbers], rtol=1e-5, check_exact=False)
    a, b = pd.read_csv(graphed / "metrics_steps.csv"), pd.read_csv(eager / "metrics_steps.csv")
    pd.testing.assert_frame_equal(a[["step", "loss", "error", "lr"]], b[["step", "loss", "error", "lr"]],
                                  rtol=1e-5, check_exact=False)  # the graph's loss and hits reach the log
    steps = pd.read_csv(graphed / "gradflow.csv").step.unique().tolist()
    assert steps == [0, 3, 6, 9, 12, 15]  # 16 steps: every 3rd and the last
    s_g, s_e = (json.loads((r / "summary.json").read_text()) for r in (graphed, eager))
    assert s_g["status"] == s_e["status"] == "completed"
    assert s_g["final_test_error"] == pytest.approx(s_e["final_test_error"], abs=1e-9)
    # the graphed run really replayed its graph: 16 steps, the first 3 eager (GraphedStep's
    # warm-up), then the capture and a replay every step; the eager run has no graph at all
    assert s_g["steps_completed"] == 16 and s_g["cuda_graph_replays"] == 16 - 3
    assert "cuda_graph_replays" not in s_e
