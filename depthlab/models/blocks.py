"""Building blocks shared by plain and residual nets.

Each block reads top to bottom like torchvision's `models/resnet.py`
(`identity = x`, `out = ...`, `out += identity`) and keeps its layer names
(`conv1/bn1/conv2/bn2/conv3/bn3/downsample`), so state dicts line up with
torchvision's. `residual=False` switches the addition off and nothing else:
a plain block has exactly the main-path layers of its residual twin.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

NormLayer = Callable[[int], nn.Module]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A shortcut (He et al. 2015, Sec. 4.2): subsample by `stride` and
    zero-pad the new channels; parameter-free, so it adds no weighted layer."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra > 0:
            # pad the channel dim: (W_left, W_right, H_top, H_bottom, C_front, C_back)
            x = F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels={self.extra}"


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34, CIFAR ResNets)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        residual: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        return self.bn2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4); stride on the 3x3 as in torchvision (ResNet v1.5)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        residual: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        return self.bn3


class PreActBasicBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv twice, nothing after the add."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        residual: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.bn1 = norm_layer(inplanes)
        self.relu = nn.ReLU(inplace=False)  # the pre-activated input also feeds a projection
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.residual:
            if self.downsample is not None:
                # projections see the pre-activated input, as in the paper's code
                identity = self.downsample(pre)
            out = out + identity
        return out

    def last_norm(self) -> nn.Module:
        return self.bn2


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (He et al. 2016; ResNet-164/1001)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        residual: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.bn1 = norm_layer(inplanes)
        self.relu = nn.ReLU(inplace=False)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(pre)
            out = out + identity
        return out

    def last_norm(self) -> nn.Module:
        return self.bn3


# --------------------------------------------------------------------------- norm-free starts
# Three ways to train a deep residual net without normalisation, each making every block
# start at (or near) its shortcut. They change the residual branch only; basic blocks only.


class _AlphaBranchBlock(BasicBlock):
    """A basic block whose residual branch F(x) is scaled by a learnable scalar `alpha`,
    initialised to 0 (SkipInit and ReZero differ only in what follows the sum)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.alpha = nn.Parameter(torch.zeros(1))

    def scaled_branch_plus_shortcut(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) * self.alpha
        return out + (x if self.downsample is None else self.downsample(x))


class SkipInitBasicBlock(_AlphaBranchBlock):
    """SkipInit (De & Smith 2020, Sec. 4): a learnable scalar `alpha` at the end of the
    residual branch, initialised to 0, so every block starts as relu(its shortcut)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.scaled_branch_plus_shortcut(x))


class ReZeroBasicBlock(_AlphaBranchBlock):
    """ReZero (Bachlechner et al. 2020, Eq. 4): x_{i+1} = x_i + alpha_i F(x_i), alpha_i
    initialised to 0 and nothing after the sum (no ReLU there, unlike He et al. 2015),
    so every block starts as exactly its shortcut."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaled_branch_plus_shortcut(x)


class FixupBasicBlock(BasicBlock):
    """Fixup (Zhang et al. 2019, Sec. 3, and their CIFAR code): a scalar bias before each
    conv and activation, a scalar multiplier `scale` (init 1) after the last conv; the
    rescaled init is applied by models.init.fixup_init (the first conv scaled by
    L^(-1/(2m-2)), the last conv of the branch 0). Meant with arch.norm=none."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bias1a = nn.Parameter(torch.zeros(1))
        self.bias1b = nn.Parameter(torch.zeros(1))
        self.bias2a = nn.Parameter(torch.zeros(1))
        self.scale = nn.Parameter(torch.ones(1))
        self.bias2b = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.bn1(self.conv1(x + self.bias1a))
        out = self.relu(out + self.bias1b)
        out = self.bn2(self.conv2(out + self.bias2a))
        out = out * self.scale + self.bias2b
        if self.downsample is not None:
            identity = self.downsample(x + self.bias1a)  # as the paper's code does
        out += identity
        return self.relu(out)


class ScalarBias(nn.Module):
    """One learnable scalar added to its input (Fixup's biases around the stem and the
    classifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


# arch.branch -> the basic block of that scheme ("standard": BLOCKS below)
BRANCH_BLOCKS = {"skipinit": SkipInitBasicBlock, "rezero": ReZeroBasicBlock,
                 "fixup": FixupBasicBlock}
# residual branches per block, Fixup's m (weighted layers on the branch)
BRANCH_LAYERS = {"basic": 2, "bottleneck": 3}


BLOCKS = {
    ("basic", False): BasicBlock,
    ("bottleneck", False): Bottleneck,
    ("basic", True): PreActBasicBlock,
    ("bottleneck", True): PreActBottleneck,
}
