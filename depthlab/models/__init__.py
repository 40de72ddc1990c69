"""The architecture zoo: plain, residual and dense CNNs at any valid depth.

    >>> from depthlab.models import build_model, describe
    >>> model = build_model("residual", 20, layout="cifar")
    >>> describe(model)["params"]
    269722

Models know nothing of Hydra: options are plain keyword arguments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .blocks import BRANCH_LAYERS
from .densenet import DenseNet
from .depths import (
    DEPTH_RULES,
    LAYOUTS,
    ArchitectureError,
    common_depths,
    densenet_spec,
    resnet_spec,
)
from .init import fixup_init, init_weights
from .resnet import ResNet

ARCHS = ("plain", "residual", "dense")
NORMS = ("batch", "none")
# The residual branch: He et al. 2015's, or a norm-free start (blocks.BRANCH_BLOCKS)
BRANCHES = ("standard", "skipinit", "rezero", "fixup")

# Options each family accepts, with their defaults ("auto" = chosen from the layout).
_COMMON = {"norm": "batch", "image_size": None, "stem": "auto"}
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {**_COMMON, "block": "auto", "shortcut": "auto", "preact": False,
              "zero_init_residual": False, "branch": "standard"},
    "residual": {**_COMMON, "block": "auto", "shortcut": "auto", "preact": False,
                 "zero_init_residual": False, "branch": "standard"},
    "dense": {**_COMMON, "growth_rate": None, "bn_size": 4, "compression": 0.5,
              "memory_efficient": False},
}

__all__ = [
    "ARCHS", "ArchitectureError", "BRANCHES", "DEPTH_RULES", "LAYOUTS", "Layer", "OPTIONS",
    "build_model", "check_branch", "common_depths", "describe", "valid_depth",
]


def _norm_layer(norm: str):
    if norm == "batch":
        return nn.BatchNorm2d
    if norm == "none":
        # Identity keeps the module tree (and layer names) of the normalised net.
        return lambda channels: nn.Identity()
    raise ArchitectureError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")


def build_model(
    arch: str, depth: int, *, num_classes: int = 10, layout: str = "imagenet", **options: Any
) -> nn.Module:
    """Build a plain, residual or dense net of `depth` weighted layers.

    layout: "imagenet" (4 stages, Table 1 depths) or "cifar" (3 stages, 6n+2 /
    9n+2 / 6n+4). image_size: input side in pixels (default 224 imagenet, 32
    cifar); stem "auto" picks the 7x7-stride-2 + max-pool stem above 64 px and
    the 3x3 stem otherwise. See OPTIONS for every family's options.
    """
    if arch not in ARCHS:
        raise ArchitectureError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    unknown = sorted(set(options) - set(OPTIONS[arch]))
    if unknown:
        raise ArchitectureError(
            f"unknown option(s) {', '.join(unknown)} for {arch}; valid: {', '.join(OPTIONS[arch])}"
        )
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ArchitectureError(f"depth must be an integer, got {depth!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ArchitectureError(f"num_classes must be a positive integer, got {num_classes!r}")
    opts = {**OPTIONS[arch], **options}
    image_size = opts["image_size"] or (224 if layout == "imagenet" else 32)
    if opts["stem"] not in ("auto", "large", "small"):
        raise ArchitectureError(f"unknown stem {opts['stem']!r}; valid: auto, large, small")
    large_stem = opts["stem"] == "large" or (opts["stem"] == "auto" and layout == "imagenet"
                                             and image_size > 64)
    norm_layer = _norm_layer(opts["norm"])

    if arch == "dense":
        spec = densenet_spec(depth, layout, opts["growth_rate"])
        if not 0 < opts["compression"] <= 1:
            raise ArchitectureError(f"compression must be in (0, 1], got {opts['compression']}")
        model: nn.Module = DenseNet(
            spec.growth_rate, spec.repeats, spec.stem_width, num_classes=num_classes,
            bn_size=opts["bn_size"], compression=opts["compression"], norm_layer=norm_layer,
            large_stem=large_stem, memory_efficient=bool(opts["memory_efficient"]),
        )
        opts["growth_rate"] = spec.growth_rate
        init_weights(model)
    else:
        spec = resnet_spec(depth, layout, opts["block"])
        shortcut = opts["shortcut"]
        if shortcut == "auto":  # the paper's choices: A on CIFAR, B on ImageNet
            shortcut = "A" if layout == "cifar" else "B"
        if shortcut not in ("A", "B", "C"):
            raise ArchitectureError(f"unknown shortcut {shortcut!r}; valid: auto, A, B, C")
        residual = arch == "residual"
        branch = check_branch(opts, arch, spec.block)
        model = ResNet(
            spec.block, spec.repeats, spec.widths, num_classes=num_classes, residual=residual,
            shortcut=shortcut, preact=bool(opts["preact"]), norm_layer=norm_layer,
            large_stem=large_stem, branch=branch,
        )
        opts.update(block=spec.block, shortcut=shortcut)
        # Zero-init only makes sense where there is an identity path to fall back on.
        opts["zero_init_residual"] = bool(opts["zero_init_residual"]) and residual
        init_weights(model, zero_init_residual=opts["zero_init_residual"])
        if branch == "fixup":
            fixup_init(model, branches=sum(spec.repeats), branch_layers=BRANCH_LAYERS[spec.block])
    opts.update(image_size=image_size, stem="large" if large_stem else "small")
    model.depthlab_info = {"arch": arch, "depth": depth, "layout": layout,
                           "num_classes": num_classes, **opts}
    return model


def check_branch(opts: dict[str, Any], arch: str, block: str) -> str:
    """arch.branch, checked: the norm-free branches are residual basic blocks, post-activation,
    and Fixup takes no normalisation (its init does the normalising)."""
    branch = opts.get("branch", "standard")
    if branch not in BRANCHES:
        raise ArchitectureError(f"unknown branch {branch!r}; valid: {', '.join(BRANCHES)}")
    if branch == "standard":
        return branch
    if arch != "residual":
        raise ArchitectureError(f"branch {branch} scales a residual branch; a {arch} net has none "
                                "(use arch=residual)")
    if block != "basic" or opts.get("preact"):
        raise ArchitectureError(f"branch {branch} is built for basic post-activation blocks only "
                                f"(this depth has {'pre-activation' if opts.get('preact') else block} "
                                "blocks)")
    if branch == "fixup" and opts.get("norm", "batch") != "none":
        raise ArchitectureError("branch fixup replaces normalisation: add arch.norm=none")
    return branch


def valid_depth(arch: str, depth: int, layout: str) -> bool:
    try:
        (densenet_spec if arch == "dense" else resnet_spec)(depth, layout)
    except ArchitectureError:
        return False
    return True


@dataclass(frozen=True)
class Layer:
    """A weighted layer along the network, in forward order."""

    index: int  # position along the depth, 1..depth; a shortcut projection shares
    #             the index of the main-path layer it runs beside (its block's last)
    name: str  # module path, e.g. "layer2.0.conv1"
    kind: str  # "conv" | "linear"
    stage: str  # "stem", "stage1".., "head"
    shortcut: bool  # a shortcut projection (not on the main path)
    params: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def weighted_layers(model: nn.Module) -> list[Layer]:
    layers, index = [], 0
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        shortcut = model.is_shortcut(name)
        if not shortcut:
            index += 1
        layers.append(Layer(
            index=index, name=name, kind="conv" if isinstance(module, nn.Conv2d) else "linear",
            stage=model.stage_of(name), shortcut=shortcut,
            params=sum(p.numel() for p in module.parameters()),
        ))
    return layers


def count_flops(model: nn.Module, image_size: int) -> int:
    """Forward FLOPs for one image, counted by torch.utils.flop_counter (a
    multiply-add counts 2; the papers' "FLOPs" are multiply-adds = flops / 2)."""
    param = next(model.parameters())
    x = torch.zeros(1, 3, image_size, image_size, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def describe(model: nn.Module, *, flops: bool = True) -> dict[str, Any]:
    """What a model is: depth, parameters, FLOPs and its weighted layers in depth order."""
    info = getattr(model, "depthlab_info", None)
    if info is None:
        raise ArchitectureError("describe() needs a model made by depthlab.models.build_model")
    layers = weighted_layers(model)
    main = [layer for layer in layers if not layer.shortcut]
    return {
        **info,
        "depth": len(main),
        "params": sum(p.numel() for p in model.parameters()),
        "flops": count_flops(model, info["image_size"]) if flops else None,
        "layers": layers,
        "blocks": model.block_names(),
    }
