"""Gradient-flow probe against an independent per-layer computation."""

import pytest
import torch
import torch.nn.functional as F

from depthlab.gradflow import GradFlowProbe, output_moments, output_std, stats_from_sums
from depthlab.models import build_model, describe
from depthlab.rundir import first_last_ratio


@pytest.mark.parametrize("arch,depth,options", [("residual", 20, {"shortcut": "B"}),
                                                ("plain", 14, {}), ("dense", 16, {})])
def test_probe_matches_per_parameter_norms(arch, depth, options):
    torch.manual_seed(0)
    model = build_model(arch, depth, layout="cifar", **options)
    d = describe(model, flops=False)
    probe = GradFlowProbe(model, d["layers"], d["blocks"])
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    probe.arm()
    F.cross_entropy(model(x), y).backward()
    record = probe.record(step=0)

    modules = dict(model.named_modules())
    expected = [modules[l.name].weight.grad.norm().item() for l in d["layers"]]
    weights = [modules[l.name].weight.norm().item() for l in d["layers"]]
    assert record.grad_norm == pytest.approx(expected, rel=1e-5)
    assert record.weight_norm == pytest.approx(weights, rel=1e-5)
    assert record.ratio == pytest.approx([g / w for g, w in zip(expected, weights)], rel=1e-5)

    # block output std, recomputed with our own hooks
    outs = {}
    handles = [modules[b].register_forward_hook(
        lambda m, i, o, b=b: outs.__setitem__(b, o.detach().std().item())) for b in d["blocks"]]
    probe.close()
    model(x)
    for h in handles:
        h.remove()
    # the CPU takes the std from one sum and one norm in float32 (output_std): 1e-4
    assert record.act_std == pytest.approx([outs[b] for b in d["blocks"]], rel=1e-4)

    main = [g for l, g in zip(d["layers"], expected) if not l.shortcut]
    assert first_last_ratio(d["layers"], record.grad_norm) == pytest.approx(main[0] / main[-1])


def test_unarmed_forward_records_no_activations():
    model = build_model("residual", 8, layout="cifar")
    d = describe(model, flops=False)
    probe = GradFlowProbe(model, d["layers"], d["blocks"])
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.zeros(4, dtype=torch.long)).backward()
    record = probe.record(step=5)
    assert record.step == 5 and record.act_std == [0.0] * len(d["blocks"])
    assert all(g > 0 for g in record.grad_norm)


def test_activations_off():
    model = build_model("plain", 8, layout="cifar")
    d = describe(model, flops=False)
    probe = GradFlowProbe(model, d["layers"], d["blocks"], activations=False)
    probe.arm()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    record = probe.record(0)
    assert record.act_std == [] and record.back_norm == []


@pytest.mark.parametrize("arch,depth,options", [
    ("residual", 20, {}), ("residual", 14, {"preact": True, "shortcut": "B"}),
    ("residual", 14, {"norm": "none"}), ("plain", 14, {}), ("dense", 16, {})])
def test_back_norm_equals_autograd_grad_on_block_outputs(arch, depth, options):
    # ||dL/dh_b|| of every block, against torch.autograd.grad on the block outputs
    torch.manual_seed(0)
    model = build_model(arch, depth, layout="cifar", **options)
    d = describe(model, flops=False)
    probe = GradFlowProbe(model, d["layers"], d["blocks"])
    modules = dict(model.named_modules())
    outs = {}
    handles = [modules[b].register_forward_hook(lambda m, i, o, b=b: outs.__setitem__(b, o))
               for b in d["blocks"]]
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    probe.arm()
    loss = F.cross_entropy(model(x), y)
    for h in handles:
        h.remove()
    grads = torch.autograd.grad(loss, [outs[b] for b in d["blocks"]], retain_graph=True)
    expected = [g.double().norm().item() for g in grads]
    loss.backward()
    record = probe.record(step=0)
    assert len(record.back_norm) == len(d["blocks"])
    # float32 sums against float64 ones: 1e-4 (a wrong tensor or block is off by far more)
    assert record.back_norm == pytest.approx(expected, rel=1e-4)
    # the signal differs from block to block: a probe that wrote one number everywhere fails
    assert len({round(v, 12) for v in record.back_norm}) > 1


def test_back_norm_only_on_armed_steps():
    torch.manual_seed(0)
    model = build_model("residual", 8, layout="cifar")
    d = describe(model, flops=False)
    probe = GradFlowProbe(model, d["layers"], d["blocks"])
    x, y = torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)
    F.cross_entropy(model(x), y).backward()
    assert probe.record(1).back_norm == [0.0] * len(d["blocks"])  # not armed: nothing measured
    probe.arm()
    with torch.no_grad():  # an armed forward without autograd (evaluation) hooks nothing
        model(x)
    probe.arm()
    F.cross_entropy(model(x), y).backward()
    assert all(v > 0 for v in probe.record(2).back_norm)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()  # disarmed by record(): the old values are gone
    assert probe.record(3).back_norm == [0.0] * len(d["blocks"])


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (3.0, 0.1), (1e19, 3e19), (1e-27, 0.0),
                                         (1.0, 1e4), (0.0, 2.0)])
def test_output_std_equals_torch_std_in_float64(scale, shift):
    # the fast path, both overflow/underflow fallbacks, cancellation, a constant
    torch.manual_seed(0)
    x = torch.relu(torch.randn(4, 16, 8, 8)) * scale + shift
    expected = x.double().std().item()
    assert output_std(x).item() == pytest.approx(expected, rel=1e-4, abs=1e-45)


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (3.0, 0.1), (1e19, 3e19), (1e-27, 0.0),
                                         (1.0, 1e4), (0.0, 2.0)])
def test_block_statistics_summed_over_slices_are_the_whole_batch_s(scale, shift):
    """What each DDP rank's hooks keep, summed as all_reduce sums them, against the whole
    batch in float64: the std of the block output, and the backward signal of the mean loss
    over the whole batch (each rank's loss is its slice's mean, so its gradient is `ranks`
    times the global one). Slices of unequal means and sizes, the extremes of output_std's."""
    torch.manual_seed(0)
    x = torch.relu(torch.randn(12, 16, 8, 8)) * scale + shift
    x[:5] *= 2  # the slices' means differ
    g = torch.randn_like(x) * 1e-3
    sums = torch.zeros(1, 5, dtype=torch.float64)
    for part, grad in zip(x.split([5, 7]), g.split([5, 7])):
        sq = torch.linalg.vector_norm(2 * grad).double() ** 2
        sums += torch.cat([output_moments(part), sq[None]])[None]
    std, back = stats_from_sums(sums, ranks=2)
    assert std.item() == pytest.approx(x.double().std().item(), rel=1e-7, abs=1e-45)
    assert back.item() == pytest.approx(g.double().norm().item(), rel=1e-6)
    none, _ = stats_from_sums(torch.zeros(1, 5), ranks=2)  # a block whose hook did not fire
    assert none.item() == 0.0
