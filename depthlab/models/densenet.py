"""DenseNet-BC (Huang et al. 2017): every layer sees the concatenation of all
earlier feature maps of its dense block.

Names follow torchvision's `models/densenet.py` (`features.conv0`,
`denseblockN.denselayerM.{norm1,conv1,norm2,conv2}`, `transitionN`, `norm5`,
`classifier`), so parameter counts compare one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import nn

from .blocks import NormLayer


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (bottleneck to bn_size*k) then BN-ReLU-conv3x3 (k new maps)."""

    def __init__(
        self, in_features: int, growth_rate: int, bn_size: int, norm_layer: NormLayer,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(in_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = norm_layer(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.memory_efficient = memory_efficient

    def bottleneck(self, *features: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and any(f.requires_grad for f in features):
            # Recompute concat+BN+conv1 in backward instead of storing it: the
            # concatenations are what makes deep dense nets quadratic in memory.
            out = cp.checkpoint(self.bottleneck, *features, use_reentrant=False)
        else:
            out = self.bottleneck(*features)
        return self.conv2(self.relu2(self.norm2(out)))


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, in_features: int, growth_rate: int, bn_size: int,
                 norm_layer: NormLayer, memory_efficient: bool) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(
                in_features + i * growth_rate, growth_rate, bn_size, norm_layer, memory_efficient
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) then 2x2 average pooling between dense blocks."""

    def __init__(self, in_features: int, out_features: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.norm = norm_layer(in_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_features, out_features, 1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)


class DenseNet(nn.Module):
    def __init__(
        self,
        growth_rate: int,
        repeats: tuple[int, ...],
        stem_width: int,
        *,
        num_classes: int,
        bn_size: int,
        compression: float,
        norm_layer: NormLayer,
        large_stem: bool,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential()
        if large_stem:  # ImageNet: 7x7 stride 2, BN, ReLU, 3x3 max-pool
            self.features.add_module("conv0", nn.Conv2d(3, stem_width, 7, 2, 3, bias=False))
            self.features.add_module("norm0", norm_layer(stem_width))
            self.features.add_module("relu0", nn.ReLU(inplace=True))
            self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        else:  # CIFAR: a single 3x3 conv with 2k maps (DenseNet-BC)
            self.features.add_module("conv0", nn.Conv2d(3, stem_width, 3, 1, 1, bias=False))
        channels = stem_width
        self.num_stages = len(repeats)
        for i, n in enumerate(repeats, start=1):
            self.features.add_module(
                f"denseblock{i}",
                DenseBlock(n, channels, growth_rate, bn_size, norm_layer, memory_efficient),
            )
            channels += n * growth_rate
            if i != len(repeats):
                out = int(channels * compression)
                self.features.add_module(f"transition{i}", Transition(channels, out, norm_layer))
                channels = out
        self.features.add_module("norm5", norm_layer(channels))
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x))
        out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)

    def stage_of(self, name: str) -> str:
        if name.startswith("classifier"):
            return "head"
        part = name.split(".")[1] if name.startswith("features.") else ""
        for prefix in ("denseblock", "transition"):
            if part.startswith(prefix):
                return f"stage{part[len(prefix):]}"
        return "stem"

    def block_names(self) -> list[str]:
        """The repeated unit is the dense layer: its output is the k new maps."""
        return [
            f"features.denseblock{i}.{name}"
            for i in range(1, self.num_stages + 1)
            for name in getattr(self.features, f"denseblock{i}").keys()
        ]

    def is_shortcut(self, name: str) -> bool:
        return False
