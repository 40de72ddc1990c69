"""`depthlab archs`: depth rules and the size of each net, checked against an
independent count (parameters summed by hand, FLOPs from the conv and linear
shapes, torchvision's ResNet-18)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from helpers import cli
from torch import nn

import depthlab.models
from depthlab.models import build_model

# The common depths cut down to one per family, so the test builds few nets.
DEPTHS = {("plain", "cifar"): [20], ("residual", "cifar"): [20], ("dense", "cifar"): [40],
          ("residual", "imagenet"): [18]}


@pytest.fixture
def few_depths(monkeypatch):
    monkeypatch.setattr(depthlab.models, "common_depths",
                        lambda arch, layout: DEPTHS.get((arch, layout), []))


def table_rows(output: str, title: str) -> list[list[str]]:
    """The rows of the rich table under `title`, cells stripped; a wrapped row is joined."""
    lines = output.split(title, 1)[1].splitlines()
    rows: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("└"):
            break
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if rows and not cells[0] and rows[-1] and any(cells):  # continuation of a wrapped cell
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
        elif cells[0] != "family":
            rows.append(cells)
    return rows


def conv_linear_flops(model: nn.Module, size: int) -> int:
    """Forward FLOPs of one image from the layer shapes: 2 x multiply-adds of every
    conv (out pixels x in channels / groups x kernel) and linear layer."""
    total = 0

    def conv(m, inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += 2 * out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear(m, inp, out):
        nonlocal total
        total += 2 * m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_archs_lists_the_depth_rules_and_sizes(few_depths):
    result = cli("archs")
    assert result.exit_code == 0, result.output
    rules = table_rows(result.output, "Depth rules")
    assert [r[:2] for r in rules] == [["plain", "imagenet"], ["residual", "imagenet"],
                                      ["plain", "cifar"], ["residual", "cifar"],
                                      ["dense", "imagenet"], ["dense", "cifar"]]
    by_family = {(r[0], r[1]): r[2] for r in rules}
    assert by_family[("plain", "cifar")] == "6n+2 with basic blocks, 9n+2 with bottlenecks"
    assert by_family[("residual", "imagenet")].startswith("18, 34, 50, 101, 152, 200")
    assert by_family[("dense", "cifar")].startswith("6n+4")
    assert by_family[("dense", "imagenet")] == ("121, 161, 169, 201, 264 (DenseNet-BC, Huang et "
                                                "al. 2017)")

    sizes = table_rows(result.output, "Common depths")
    assert [r[:3] for r in sizes] == [["residual", "imagenet", "18"], ["plain", "cifar", "20"],
                                      ["residual", "cifar", "20"], ["dense", "cifar", "40"]]
    for family, layout, depth, params, gflops, size in sizes:
        classes = 1000 if layout == "imagenet" else 10
        model = build_model(family, int(depth), layout=layout, num_classes=classes)
        side = 224 if layout == "imagenet" else 32
        assert size == f"{side}x{side}"
        assert params == f"{n_params(model) / 1e6:.2f}M", (family, layout, depth)
        assert gflops == f"{conv_linear_flops(model, side) / 1e9:.3f}", (family, layout, depth)
    shown = {(r[0], r[1], r[2]): (r[3], r[4]) for r in sizes}
    # ResNet-18 is torchvision's: 11,689,512 parameters; ResNet-20 (cifar): 269,722 and
    # 40.55 M multiply-adds (He et al. 2015: 0.27 M parameters, ~41 M FLOPs as they count)
    assert n_params(torchvision.models.resnet18()) == 11_689_512
    assert shown[("residual", "imagenet", "18")][0] == "11.69M"
    assert n_params(build_model("residual", 20, layout="cifar")) == 269_722
    assert shown[("residual", "cifar", "20")] == ("0.27M", "0.081")


def test_archs_exact_flops_of_resnet20_equal_the_hand_count():
    """The count the table rounds: describe() against the conv shapes worked out by hand."""
    d = depthlab.models.describe(build_model("residual", 20, layout="cifar"))
    stem = 2 * 3 * 16 * 9 * 32 * 32
    stage1 = 6 * (2 * 16 * 16 * 9 * 32 * 32)
    stage2 = 2 * 16 * 32 * 9 * 16 * 16 + 5 * (2 * 32 * 32 * 9 * 16 * 16)
    stage3 = 2 * 32 * 64 * 9 * 8 * 8 + 5 * (2 * 64 * 64 * 9 * 8 * 8)
    fc = 2 * 64 * 10
    assert d["flops"] == stem + stage1 + stage2 + stage3 + fc == 81_102_080
    assert d["params"] == 269_722


def test_archs_layout_filter_and_bad_layout(few_depths):
    result = cli("archs", "--layout", "cifar", "--no-flops")
    assert result.exit_code == 0, result.output
    rules = table_rows(result.output, "Depth rules")
    assert {r[1] for r in rules} == {"cifar"} and len(rules) == 3
    sizes = table_rows(result.output, "Common depths")
    assert [r[:3] for r in sizes] == [["plain", "cifar", "20"], ["residual", "cifar", "20"],
                                      ["dense", "cifar", "40"]]
    assert all(r[4] == "-" for r in sizes)  # --no-flops
    bad = cli("archs", "--layout", "tiny")
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: unknown layout 'tiny'; valid: imagenet, cifar"
