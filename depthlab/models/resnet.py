"""Plain and residual nets from one builder: `residual=False` is the only switch.

Stage builder in the style of timm's `make_blocks`: widths, repeats and strides
in, a list of stages out. Plain nets get no shortcut modules at all; where a
stage changes shape (stride 2, more channels) the plain block's first conv does
it alone, exactly as in the residual twin's main path.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import BLOCKS, BRANCH_BLOCKS, NormLayer, PadShortcut, ScalarBias, conv1x1


def make_shortcut(
    option: str, inplanes: int, outplanes: int, stride: int, norm_layer: NormLayer
) -> nn.Module | None:
    """Shortcut options of He et al. 2015, Table 3: A zero-pads, B projects only
    where the shape changes, C projects in every block."""
    changes_shape = stride != 1 or inplanes != outplanes
    if option == "A":
        return PadShortcut(inplanes, outplanes, stride) if changes_shape else None
    if option == "B" and not changes_shape:
        return None
    return nn.Sequential(conv1x1(inplanes, outplanes, stride), norm_layer(outplanes))


def make_stages(
    block: type[nn.Module],
    inplanes: int,
    widths: tuple[int, ...],
    repeats: tuple[int, ...],
    strides: tuple[int, ...],
    *,
    residual: bool,
    shortcut: str,
    norm_layer: NormLayer,
) -> tuple[list[nn.Sequential], int]:
    """Return the stages and the number of channels out of the last one."""
    stages = []
    for planes, n, stride in zip(widths, repeats, strides):
        blocks = []
        for i in range(n):
            s = stride if i == 0 else 1
            outplanes = planes * block.expansion
            downsample = (
                make_shortcut(shortcut, inplanes, outplanes, s, norm_layer) if residual else None
            )
            blocks.append(
                block(inplanes, planes, s, downsample, residual=residual, norm_layer=norm_layer)
            )
            inplanes = outplanes
        stages.append(nn.Sequential(*blocks))
    return stages, inplanes


class ResNet(nn.Module):
    """ResNet (residual=True) or its plain counterpart (residual=False).

    Attribute names follow torchvision (`conv1`, `bn1`, `layer1..4`, `fc`), so a
    residual imagenet-layout net loads torchvision's weights.
    """

    def __init__(
        self,
        block_kind: str,
        repeats: tuple[int, ...],
        widths: tuple[int, ...],
        *,
        num_classes: int,
        residual: bool,
        shortcut: str,
        preact: bool,
        norm_layer: NormLayer,
        large_stem: bool,
        branch: str = "standard",
    ) -> None:
        super().__init__()
        block = BLOCKS[(block_kind, preact)] if branch == "standard" else BRANCH_BLOCKS[branch]
        self.preact = preact
        self.branch = branch
        stem_width = widths[0]
        if large_stem:  # 224x224 inputs: 7x7 stride 2, then max-pool (He et al. 2015, Table 1)
            self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:  # 32x32 inputs: one 3x3 conv, no pooling (Sec. 4.2)
            self.conv1 = nn.Conv2d(3, stem_width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        # Pre-activation nets normalise inside each block; their stem is conv only.
        self.bn1 = nn.Identity() if preact else norm_layer(stem_width)
        self.relu = nn.Identity() if preact else nn.ReLU(inplace=True)
        # Fixup's scalar biases after the stem conv and before the classifier
        self.stem_bias = ScalarBias() if branch == "fixup" else nn.Identity()
        self.head_bias = ScalarBias() if branch == "fixup" else nn.Identity()
        strides = (1,) + (2,) * (len(widths) - 1)
        stages, out_ch = make_stages(
            block, stem_width, widths, repeats, strides,
            residual=residual, shortcut=shortcut, norm_layer=norm_layer,
        )
        self.num_stages = len(stages)
        for i, stage in enumerate(stages, start=1):
            self.add_module(f"layer{i}", stage)
        # Pre-activation nets end with BN-ReLU before pooling (He et al. 2016, Fig. 4e).
        self.post_bn = norm_layer(out_ch) if preact else nn.Identity()
        self.post_relu = nn.ReLU(inplace=True) if preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(out_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.stem_bias(self.bn1(self.conv1(x)))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        x = self.post_relu(self.post_bn(x))
        return self.fc(self.head_bias(torch.flatten(self.avgpool(x), 1)))

    def stage_of(self, name: str) -> str:
        top = name.split(".", 1)[0]
        if top.startswith("layer"):
            return f"stage{top[5:]}"
        return "head" if top == "fc" else "stem"

    def block_names(self) -> list[str]:
        return [
            f"layer{i}.{j}"
            for i in range(1, self.num_stages + 1)
            for j in range(len(getattr(self, f"layer{i}")))
        ]

    def is_shortcut(self, name: str) -> bool:
        return ".downsample" in name
