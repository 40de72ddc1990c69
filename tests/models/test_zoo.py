"""The architecture zoo: exact sizes against torchvision and the papers, the
plain/residual twin property, depth rules and errors, forward/backward."""

import pytest
import torch
import torchvision
from torch import nn

from depthlab.models import ArchitectureError, build_model, describe, valid_depth

TV_RESNETS = {18: "resnet18", 34: "resnet34", 50: "resnet50", 101: "resnet101", 152: "resnet152"}
TV_DENSENETS = {121: "densenet121", 169: "densenet169", 201: "densenet201"}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", sorted(TV_RESNETS))
def test_residual_imagenet_matches_torchvision(depth):
    ours = build_model("residual", depth, num_classes=1000)
    theirs = getattr(torchvision.models, TV_RESNETS[depth])()
    assert describe(ours, flops=False)["params"] == n_params(theirs)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert all(ours_sd[k].shape == theirs_sd[k].shape for k in ours_sd)
    ours.load_state_dict(theirs_sd)  # torchvision weights load as they are


@pytest.mark.parametrize("depth", sorted(TV_DENSENETS))
def test_dense_imagenet_matches_torchvision(depth):
    ours = build_model("dense", depth, num_classes=1000)
    theirs = getattr(torchvision.models, TV_DENSENETS[depth])()
    assert describe(ours, flops=False)["params"] == n_params(theirs)
    assert describe(ours, flops=False)["depth"] == depth


def randomise_bn_statistics(model: nn.Module, seed: int) -> None:
    """Running means and variances away from 0 and 1, so eval-mode batch norm is no identity
    and a BN loaded into the wrong place would show in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))


@pytest.mark.parametrize("arch,depth,tv_name", [("residual", 18, "resnet18"),
                                                ("residual", 50, "resnet50"),
                                                ("dense", 121, "densenet121")])
def test_imagenet_nets_compute_what_torchvision_computes(arch, depth, tv_name):
    """torchvision's (randomly initialised) weights loaded into depthlab's net give
    torchvision's outputs: same modules, same order of operations, same shortcuts."""
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, tv_name)()
    randomise_bn_statistics(theirs, seed=depth)
    ours = build_model(arch, depth, num_classes=1000)
    ours.load_state_dict(theirs.state_dict())  # strict: every key, every shape
    ours.eval()
    theirs.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape == (2, 1000)
    assert expected.std() > 1e-3  # a real signal, not all zeros
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
    # the tolerance is far below what one changed statistic does to the outputs
    bn = next(m for m in theirs.modules() if isinstance(m, nn.BatchNorm2d))
    bn.running_var.mul_(1.01)
    with torch.no_grad():
        assert not torch.allclose(theirs(x), got, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


# Published sizes: He et al. 2015 Table 6 and Huang et al. 2017 Table 2.
@pytest.mark.parametrize(
    "arch,depth,millions",
    [("residual", 20, 0.27), ("residual", 32, 0.46), ("residual", 44, 0.66),
     ("residual", 56, 0.85), ("residual", 110, 1.7), ("residual", 1202, 19.4),
     ("dense", 100, 0.8)],
)
def test_cifar_sizes_match_papers(arch, depth, millions):
    params = describe(build_model(arch, depth, layout="cifar"), flops=False)["params"]
    assert round(params / 1e6, 2 if millions < 1 else 1) == pytest.approx(millions, abs=0.031)


def test_exact_cifar_counts():
    # Pinned exactly so that any change to the builder shows up.
    assert n_params(build_model("residual", 20, layout="cifar")) == 269_722
    assert n_params(build_model("residual", 56, layout="cifar")) == 853_018
    assert n_params(build_model("dense", 100, layout="cifar")) == 769_162


@pytest.mark.parametrize(
    "depth,layout,options",
    [(34, "imagenet", {}), (50, "imagenet", {}), (56, "cifar", {}), (20, "cifar", {"shortcut": "B"}),
     (20, "cifar", {"shortcut": "C"}), (29, "cifar", {}), (20, "cifar", {"preact": True})],
)
def test_plain_is_residual_without_shortcuts(depth, layout, options):
    plain_model = build_model("plain", depth, layout=layout, **options)
    res_model = build_model("residual", depth, layout=layout, **options)
    plain, res = describe(plain_model, flops=False), describe(res_model, flops=False)
    def main(d):
        return [(l.index, l.name, l.kind, l.stage, l.params) for l in d["layers"] if not l.shortcut]
    assert main(plain) == main(res)
    assert plain["depth"] == res["depth"] == depth
    assert not any(l.shortcut for l in plain["layers"])
    # the residual net has exactly the plain net's parameters plus its shortcut modules'
    shortcut_params = sum(
        p.numel() for name, p in res_model.named_parameters() if ".downsample." in name
    )
    assert res["params"] - plain["params"] == shortcut_params
    assert set(plain_model.state_dict()) == {
        k for k in res_model.state_dict() if ".downsample." not in k
    }


def test_plain_and_residual_share_initial_weights():
    torch.manual_seed(0)
    plain = build_model("plain", 20, layout="cifar")
    torch.manual_seed(0)
    res = build_model("residual", 20, layout="cifar")  # option A has no parameters
    for (k1, v1), (k2, v2) in zip(plain.state_dict().items(), res.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(plain.eval()(x), res.eval()(x))  # only the additions differ


def test_shortcut_options_count_projections():
    a = describe(build_model("residual", 20, layout="cifar", shortcut="A"), flops=False)
    b = describe(build_model("residual", 20, layout="cifar", shortcut="B"), flops=False)
    c = describe(build_model("residual", 20, layout="cifar", shortcut="C"), flops=False)
    assert [l.name for l in a["layers"] if l.shortcut] == []
    assert [l.name for l in b["layers"] if l.shortcut] == ["layer2.0.downsample.0", "layer3.0.downsample.0"]
    assert len([l for l in c["layers"] if l.shortcut]) == 9  # one per block
    assert a["params"] == 269_722
    # B adds 1x1 convs 16->32 and 32->64 and their BNs.
    assert b["params"] - a["params"] == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


def test_layers_are_in_depth_order():
    d = describe(build_model("residual", 18), flops=False)
    main = [l for l in d["layers"] if not l.shortcut]
    assert [l.index for l in main] == list(range(1, 19))
    assert main[0].name == "conv1" and main[0].stage == "stem"
    assert main[-1].name == "fc" and main[-1].kind == "linear" and main[-1].stage == "head"
    assert main[1].name == "layer1.0.conv1" and main[1].stage == "stage1"
    proj = [l for l in d["layers"] if l.shortcut]
    assert [l.name for l in proj] == [f"layer{i}.0.downsample.0" for i in (2, 3, 4)]
    # a projection shares the index of its block's last main-path conv
    by_name = {l.name: l.index for l in d["layers"]}
    assert by_name["layer2.0.downsample.0"] == by_name["layer2.0.conv2"]
    assert d["blocks"][:3] == ["layer1.0", "layer1.1", "layer2.0"] and len(d["blocks"]) == 8


def test_dense_layers_and_blocks():
    d = describe(build_model("dense", 40, layout="cifar"), flops=False)
    assert d["depth"] == 40 and len(d["blocks"]) == 18
    assert d["layers"][0].name == "features.conv0"
    assert d["layers"][-1].name == "classifier" and d["layers"][-1].stage == "head"
    assert {l.stage for l in d["layers"]} == {"stem", "stage1", "stage2", "stage3", "head"}


def test_flops_counted_by_torch():
    d = describe(build_model("residual", 50, num_classes=1000))
    assert d["flops"] == pytest.approx(2 * 4.09e9, rel=0.01)  # ResNet-50: 4.1 GMACs
    d20 = describe(build_model("residual", 20, layout="cifar"))
    assert d20["flops"] == pytest.approx(2 * 41e6, rel=0.05)  # ResNet-20: ~41 MMACs


@pytest.mark.parametrize(
    "arch,depth,layout,message",
    [
        ("residual", 20, "imagenet", "20 is a cifar-layout depth: add arch.layout=cifar"),
        ("plain", 21, "cifar", "basic blocks need 6n+2 (nearest: 20, 26)"),
        ("residual", 35, "imagenet", "valid: 18, 34, 50, 101, 152, 200"),
        ("residual", 18, "cifar", "18 is an imagenet-layout depth: add arch.layout=imagenet"),
        ("dense", 99, "cifar", "needs 6n+4 (nearest: 94, 100)"),
        ("dense", 100, "imagenet", "100 is a cifar-layout depth"),
        ("resnet", 18, "imagenet", "unknown architecture 'resnet'; valid: plain, residual, dense"),
        ("residual", 20, "tiny", "unknown layout 'tiny'; valid: imagenet, cifar"),
    ],
)
def test_invalid_input_names_the_rule(arch, depth, layout, message):
    with pytest.raises(ArchitectureError) as err:
        build_model(arch, depth, layout=layout)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_option_is_an_error():
    with pytest.raises(ArchitectureError, match="unknown option.*growth_rate.*valid: norm"):
        build_model("residual", 20, layout="cifar", growth_rate=12)


def test_valid_depth():
    assert valid_depth("residual", 1202, "cifar") and valid_depth("residual", 1001, "cifar")
    assert not valid_depth("plain", 19, "cifar") and valid_depth("dense", 190, "cifar")


def test_block_choice_for_cifar():
    assert build_model("residual", 1001, layout="cifar").depthlab_info["block"] == "bottleneck"
    r164 = build_model("residual", 164, layout="cifar", block="bottleneck", preact=True)
    assert describe(r164, flops=False)["params"] == pytest.approx(1.7e6, rel=0.03)  # He et al. 2016


def test_zero_init_residual_zeroes_last_bn_only_for_residual():
    res = build_model("residual", 20, layout="cifar", zero_init_residual=True)
    assert torch.count_nonzero(res.layer1[0].bn2.weight) == 0
    assert torch.all(res.layer1[0].bn1.weight == 1)
    plain = build_model("plain", 20, layout="cifar", zero_init_residual=True)
    assert torch.all(plain.layer1[0].bn2.weight == 1)
    assert res.depthlab_info["zero_init_residual"] and not plain.depthlab_info["zero_init_residual"]


def test_init_is_kaiming_fan_out():
    torch.manual_seed(0)
    m = build_model("plain", 56, layout="cifar")
    w = m.layer3[0].conv2.weight  # 64 out channels, 3x3: fan_out = 576
    assert w.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.05)


def test_norm_none_has_no_batchnorm():
    m = build_model("plain", 20, layout="cifar", norm="none")
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    assert describe(m, flops=False)["depth"] == 20


def test_stem_follows_image_size():
    assert build_model("residual", 18).conv1.kernel_size == (7, 7)
    small = build_model("residual", 50, image_size=32)
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, nn.Identity)
    assert build_model("residual", 18, image_size=32, stem="large").conv1.kernel_size == (7, 7)


CASES = [
    ("plain", 18, "imagenet", {"image_size": 64}),
    ("residual", 50, "imagenet", {"image_size": 32}),
    ("residual", 18, "imagenet", {"image_size": 32, "preact": True, "shortcut": "C"}),
    ("dense", 121, "imagenet", {"image_size": 32}),
    ("plain", 20, "cifar", {}),
    ("residual", 110, "cifar", {}),
    ("residual", 29, "cifar", {"preact": True}),
    ("plain", 56, "cifar", {"norm": "none"}),
    ("dense", 40, "cifar", {}),
    ("dense", 40, "cifar", {"memory_efficient": True}),
]


@pytest.mark.parametrize("arch,depth,layout,options", CASES)
def test_forward_backward(arch, depth, layout, options):
    torch.manual_seed(0)
    model = build_model(arch, depth, layout=layout, num_classes=7, **options)
    size = model.depthlab_info["image_size"]
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.conv1.weight.grad.abs().sum() > 0 if hasattr(model, "conv1") else True


def test_memory_efficient_dense_gives_same_gradients():
    torch.manual_seed(0)
    a = build_model("dense", 40, layout="cifar")
    b = build_model("dense", 40, layout="cifar", memory_efficient=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    a(x).sum().backward()
    b(x).sum().backward()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("depth", [20, 56])
def test_the_pre_activation_plain_twin_is_the_plain_net(depth):
    """Without shortcuts the conv-BN-ReLU sequence does not depend on where the block
    boundaries fall: the 2016 block's plain twin (stem conv, then (BN-ReLU-conv) x depth-2,
    a final BN-ReLU) is the 2015 plain net (stem conv-BN-ReLU, (conv-BN-ReLU) x depth-2).
    With the same seed they draw the same weights in the same order and compute the same
    function, in training mode (batch statistics) and in eval mode, and their gradients
    agree: so one set of plain runs serves both blocks (results/cifar10-blocks)."""
    torch.manual_seed(0)
    post = build_model("plain", depth, layout="cifar")
    torch.manual_seed(0)
    pre = build_model("plain", depth, layout="cifar", preact=True)
    def convs(m):
        return [p for n, p in m.named_parameters() if p.dim() == 4]
    assert len(convs(post)) == len(convs(pre)) == depth - 1
    for a, b in zip(convs(post), convs(pre)):
        assert torch.equal(a, b)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    y = torch.arange(8)
    outs = []
    for net in (post, pre):
        out = net.train()(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        outs.append(out)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(convs(post), convs(pre)):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(pre.eval()(x), post.eval()(x), rtol=1e-5, atol=1e-6)
    # and the residual nets of the two blocks are different functions
    torch.manual_seed(0)
    res_post = build_model("residual", depth, layout="cifar")
    torch.manual_seed(0)
    res_pre = build_model("residual", depth, layout="cifar", preact=True)
    assert not torch.allclose(res_pre.eval()(x), res_post.eval()(x))
