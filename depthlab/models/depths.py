"""Depth tables as data: which depths each family and layout allows, and how
they map to blocks per stage.

*Depth* is the papers' count: weighted layers (conv and fc) on the longest
path, shortcut projections excluded (ResNet-18 has 18, DenseNet-121 has 121).
"""

from __future__ import annotations

from dataclasses import dataclass


class ArchitectureError(ValueError):
    """A user-facing architecture problem; its message is one line."""


LAYOUTS = ("imagenet", "cifar")

# He et al. 2015, Table 1: depth -> (block, blocks per stage).
RESNET_IMAGENET: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),  # He et al. 2016 (pre-activation paper)
}
RESNET_IMAGENET_WIDTHS = (64, 128, 256, 512)
RESNET_CIFAR_WIDTHS = (16, 32, 64)
# Layers per block on the main path: depth = 2 + layers_per_block * blocks.
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}

# Huang et al. 2017, Table 1 (torchvision's configs): depth -> (growth, blocks, stem width).
DENSENET_IMAGENET: dict[int, tuple[int, tuple[int, ...], int]] = {
    121: (32, (6, 12, 24, 16), 64),
    161: (48, (6, 12, 36, 24), 96),
    169: (32, (6, 12, 32, 32), 64),
    201: (32, (6, 12, 48, 32), 64),
    264: (32, (6, 12, 64, 48), 64),
}

# The ImageNet tables' depths per family: with arch.layout left to depthlab, these
# depths take the imagenet layout on any data (depthlab.config.family_layout).
IMAGENET_DEPTHS: dict[str, tuple[int, ...]] = {
    "plain": tuple(RESNET_IMAGENET), "residual": tuple(RESNET_IMAGENET),
    "dense": tuple(DENSENET_IMAGENET),
}


@dataclass(frozen=True)
class ResNetSpec:
    block: str  # "basic" | "bottleneck"
    repeats: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...]  # planes per stage (before bottleneck expansion)


def _nearest(depth: int, valid: list[int], k: int = 2) -> list[int]:
    return sorted(sorted(valid, key=lambda d: (abs(d - depth), d))[:k])


def _series(step: int, offset: int, upto: int) -> list[int]:
    return [step * n + offset for n in range(1, upto // step + 2)]


def _fmt(depths: list[int]) -> str:
    return ", ".join(str(d) for d in depths)


def resnet_spec(depth: int, layout: str, block: str = "auto") -> ResNetSpec:
    """Blocks per stage for a plain/residual net of `depth`, or an ArchitectureError."""
    _check_layout(layout)
    if block not in ("auto", "basic", "bottleneck"):
        raise ArchitectureError(f"unknown block {block!r}; valid: auto, basic, bottleneck")
    if layout == "imagenet":
        if depth not in RESNET_IMAGENET:
            hint = ""
            if _cifar_resnet_block(depth, block) is not None:
                hint = f"; {depth} is a cifar-layout depth: add arch.layout=cifar"
            raise ArchitectureError(
                f"depth {depth} is not a residual/plain depth for layout imagenet "
                f"(valid: {_fmt(list(RESNET_IMAGENET))}){hint}"
            )
        table_block, repeats = RESNET_IMAGENET[depth]
        if block not in ("auto", table_block):
            raise ArchitectureError(
                f"depth {depth} in layout imagenet uses {table_block} blocks, not {block}; "
                "drop arch.block or set it to auto"
            )
        return ResNetSpec(table_block, repeats, RESNET_IMAGENET_WIDTHS)
    chosen = _cifar_resnet_block(depth, block)
    if chosen is None:
        rules = {"basic": "6n+2", "bottleneck": "9n+2"}
        kinds = ["basic", "bottleneck"] if block == "auto" else [block]
        parts = [
            f"{kind} blocks need {rules[kind]} (nearest: "
            f"{_fmt(_nearest(depth, _series(3 * LAYERS_PER_BLOCK[kind], 2, depth + 20)))})"
            for kind in kinds
        ]
        hint = ""
        if depth in RESNET_IMAGENET:
            hint = f"; {depth} is an imagenet-layout depth: add arch.layout=imagenet"
        raise ArchitectureError(
            f"depth {depth} is not a residual/plain depth for layout cifar: " + "; ".join(parts) + hint
        )
    n = (depth - 2) // (3 * LAYERS_PER_BLOCK[chosen])
    return ResNetSpec(chosen, (n, n, n), RESNET_CIFAR_WIDTHS)


def _cifar_resnet_block(depth: int, block: str) -> str | None:
    """Basic blocks when depth = 6n+2 (ResNet-20 ... 1202), else bottlenecks when 9n+2
    (ResNet-1001). ResNet-164 fits both rules: arch.block=bottleneck gives the
    pre-activation paper's bottleneck version."""
    kinds = ["basic", "bottleneck"] if block == "auto" else [block]
    for kind in kinds:
        per_stage = 3 * LAYERS_PER_BLOCK[kind]
        if depth > 2 and (depth - 2) % per_stage == 0:
            return kind
    return None


@dataclass(frozen=True)
class DenseNetSpec:
    growth_rate: int
    repeats: tuple[int, ...]  # dense layers per dense block
    stem_width: int


def densenet_spec(depth: int, layout: str, growth_rate: int | None = None) -> DenseNetSpec:
    """Dense layers per block for DenseNet-BC of `depth`, or an ArchitectureError."""
    _check_layout(layout)
    if layout == "imagenet":
        if depth not in DENSENET_IMAGENET:
            hint = ""
            if depth > 4 and (depth - 4) % 6 == 0:
                hint = f"; {depth} is a cifar-layout depth: add arch.layout=cifar"
            raise ArchitectureError(
                f"depth {depth} is not a dense depth for layout imagenet "
                f"(valid: {_fmt(list(DENSENET_IMAGENET))}){hint}"
            )
        k, repeats, stem = DENSENET_IMAGENET[depth]
        k = growth_rate or k
        return DenseNetSpec(k, repeats, stem if growth_rate is None else 2 * k)
    # DenseNet-BC for CIFAR: 3 dense blocks of n bottleneck layers (2 convs each),
    # plus the first conv, 2 transitions and the classifier: L = 6n + 4.
    if depth <= 4 or (depth - 4) % 6 != 0:
        hint = ""
        if depth in DENSENET_IMAGENET:
            hint = f"; {depth} is an imagenet-layout depth: add arch.layout=imagenet"
        raise ArchitectureError(
            f"depth {depth} is not a dense (DenseNet-BC) depth for layout cifar: needs 6n+4 "
            f"(nearest: {_fmt(_nearest(depth, _series(6, 4, depth + 12)))}){hint}"
        )
    k = growth_rate or 12
    n = (depth - 4) // 6
    return DenseNetSpec(k, (n, n, n), 2 * k)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ArchitectureError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")


def common_depths(arch: str, layout: str) -> list[int]:
    """The depths the papers report, for tables and defaults."""
    if arch == "dense":
        return list(DENSENET_IMAGENET) if layout == "imagenet" else [40, 100, 190, 250]
    return list(RESNET_IMAGENET) if layout == "imagenet" else [20, 32, 44, 56, 110, 1202]


DEPTH_RULES = {
    ("plain", "imagenet"): "18, 34, 50, 101, 152, 200 (He et al. 2015, Table 1)",
    ("residual", "imagenet"): "18, 34, 50, 101, 152, 200 (He et al. 2015, Table 1)",
    ("plain", "cifar"): "6n+2 with basic blocks, 9n+2 with bottlenecks",
    ("residual", "cifar"): "6n+2 with basic blocks, 9n+2 with bottlenecks",
    ("dense", "imagenet"): "121, 161, 169, 201, 264 (DenseNet-BC, Huang et al. 2017)",
    ("dense", "cifar"): "6n+4 (DenseNet-BC: 40, 100, 190, 250 ...)",
}
