"""Norm-free residual branches (arch.branch): each scheme's defining property at
initialisation, exact parameter counts, and the one-line errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.models import ArchitectureError, build_model, describe
from depthlab.models.blocks import FixupBasicBlock, PadShortcut


def shortcut_path(model: nn.Module, x: torch.Tensor, *, relu_after_add: bool) -> torch.Tensor:
    """The net with every residual branch removed, computed here by hand: stem conv + ReLU,
    then each block's shortcut (identity, or option A's subsample-and-pad), pool, classifier."""
    h = F.relu(model.conv1(x))
    for name in model.block_names():
        stage, index = name.split(".")
        block = getattr(model, stage)[int(index)]
        if block.downsample is not None:
            assert isinstance(block.downsample, PadShortcut)
            h = block.downsample(h)
        h = F.relu(h) if relu_after_add else h
    return model.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


@pytest.mark.parametrize("branch,relu_after_add", [("skipinit", True), ("rezero", False)])
@pytest.mark.parametrize("depth", [20, 56])
def test_zero_scalar_branches_start_as_the_shortcut_path(branch, relu_after_add, depth):
    torch.manual_seed(0)
    model = build_model("residual", depth, layout="cifar", norm="none", branch=branch)
    x = torch.randn(4, 3, 32, 32)
    blocks = [m for m in model.modules() if hasattr(m, "alpha")]
    assert len(blocks) == (depth - 2) // 2 and all(b.alpha.item() == 0.0 for b in blocks)
    assert torch.allclose(model(x), shortcut_path(model, x, relu_after_add=relu_after_add),
                          rtol=1e-6, atol=1e-6)
    # the zero is alpha's, not the branch's: opened, the branches change the output
    with torch.no_grad():
        for b in blocks:
            b.alpha.fill_(1.0)
    assert not torch.allclose(model(x), shortcut_path(model, x, relu_after_add=relu_after_add),
                              atol=1e-3)


def test_skipinit_alpha_gets_a_gradient_at_init():
    # the branch weights get none (alpha = 0 multiplies them); alpha itself must, or nothing trains
    torch.manual_seed(0)
    model = build_model("residual", 20, layout="cifar", norm="none", branch="skipinit")
    F.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.arange(8)).backward()
    assert all(m.alpha.grad.abs().item() > 0 for m in model.modules() if hasattr(m, "alpha"))
    assert model.layer2[1].conv2.weight.grad.abs().max().item() == 0.0


@pytest.mark.parametrize("depth,branches", [(20, 9), (56, 27), (110, 54)])
def test_fixup_init_follows_the_formula(depth, branches):
    """Zhang et al. 2019, rules 1-2: the first conv of each branch is the standard (kaiming)
    draw times L^(-1/(2m-2)) (m = 2 layers per basic branch), the last conv and the
    classifier start at 0, scalar biases at 0 and multipliers at 1."""
    torch.manual_seed(0)
    standard = build_model("residual", depth, layout="cifar", norm="none")
    torch.manual_seed(0)
    fixup = build_model("residual", depth, layout="cifar", norm="none", branch="fixup")
    factor = branches ** (-1 / (2 * 2 - 2))
    blocks = [m for m in fixup.modules() if isinstance(m, FixupBasicBlock)]
    assert len(blocks) == branches
    s = dict(standard.named_modules())
    for name, m in fixup.named_modules():
        if not isinstance(m, FixupBasicBlock):
            continue
        assert torch.allclose(m.conv1.weight, s[name].conv1.weight * factor, rtol=1e-6, atol=0)
        assert m.conv2.weight.abs().max().item() == 0.0
        assert [p.item() for p in (m.bias1a, m.bias1b, m.bias2a, m.bias2b)] == [0.0] * 4
        assert m.scale.item() == 1.0
    assert torch.equal(fixup.conv1.weight, standard.conv1.weight)  # the stem keeps kaiming
    assert fixup.fc.weight.abs().max().item() == 0.0 and fixup.fc.bias.abs().max().item() == 0.0
    assert fixup.stem_bias.bias.item() == 0.0 and fixup.head_bias.bias.item() == 0.0
    assert fixup(torch.randn(2, 3, 32, 32)).abs().max().item() == 0.0  # output starts at 0
    # the scaled weights' spread: kaiming fan_out std sqrt(2 / (9 * out)) times the factor
    w = torch.cat([b.conv1.weight.flatten() for b in blocks if b.conv1.out_channels == 64])
    assert w.std().item() == pytest.approx((2 / (9 * 64)) ** 0.5 * factor, rel=0.05)


def test_fixup_trains_from_its_zero_start():
    # after one SGD step the classifier opens and the gradient reaches the stem
    torch.manual_seed(0)
    model = build_model("residual", 20, layout="cifar", norm="none", branch="fixup")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    for _ in range(2):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert model.conv1.weight.grad.abs().max().item() > 0
    assert F.cross_entropy(model(x), y).item() < 2.3026  # below log(10), the zero net's loss


@pytest.mark.parametrize("branch,extra", [("standard", 0), ("skipinit", 1), ("rezero", 1),
                                          ("fixup", 5)])
def test_exact_parameter_counts(branch, extra):
    """ResNet-20 without batch norm: 268,346 = convs 432 + 13,824 + 50,688 + 202,752 and the
    classifier 650; SkipInit/ReZero add one alpha per block (9), Fixup five scalars per block
    and two around the stem and classifier (47). Depth 56 (27 blocks): 848,954 = 432 + 41,472
    + 161,280 + 645,120 + 650."""
    counts = {20: 268_346, 56: 848_954}
    for depth, blocks in ((20, 9), (56, 27)):
        model = build_model("residual", depth, layout="cifar", norm="none", branch=branch)
        expected = counts[depth] + extra * blocks + (2 if branch == "fixup" else 0)
        assert describe(model, flops=False)["params"] == expected
        assert describe(model, flops=False)["depth"] == depth  # scalars are no weighted layers
    with_bn = build_model("residual", 20, layout="cifar", branch="skipinit")
    assert describe(with_bn, flops=False)["params"] == 269_722 + 9


@pytest.mark.parametrize("arch,depth,options,words", [
    ("plain", 20, {"branch": "skipinit"}, "a plain net has none"),
    ("residual", 20, {"branch": "fixup"}, "add arch.norm=none"),
    ("residual", 20, {"branch": "rezero", "preact": True}, "pre-activation"),
    ("residual", 164, {"branch": "skipinit", "block": "bottleneck"}, "bottleneck"),
    ("residual", 20, {"branch": "zero"}, "valid: standard, skipinit, rezero, fixup"),
])
def test_branch_errors_are_one_line(arch, depth, options, words):
    with pytest.raises(ArchitectureError, match=words) as err:
        build_model(arch, depth, layout="cifar", **options)
    assert "\n" not in str(err.value)
