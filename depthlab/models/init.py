"""Weight initialisation, in one place."""

from __future__ import annotations

import torch
from torch import nn


def init_weights(model: nn.Module, *, zero_init_residual: bool = False) -> None:
    """He et al. 2015 ("Delving deep into rectifiers"): kaiming normal, fan_out,
    for every conv, as torchvision does; BN scale 1, shift 0; linear bias 0.

    zero_init_residual (Goyal et al. 2017) zeroes the last BN scale of each
    residual branch so every block starts as the identity. It changes the
    gradients at initialisation, so the builder records it in `depthlab_info`.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if getattr(m, "residual", False) and hasattr(m, "last_norm"):
                norm = m.last_norm()
                if isinstance(norm, nn.BatchNorm2d):
                    nn.init.zeros_(norm.weight)


def fixup_init(model: nn.Module, *, branches: int, branch_layers: int) -> None:
    """Fixup (Zhang et al. 2019, Sec. 3, rules 1-2, on top of the kaiming init above):
    with L = `branches` residual branches of m = `branch_layers` weighted layers each,
    scale the first conv of every branch by L^(-1/(2m-2)), start the branch's last conv
    and the classifier (weights and bias) at 0; scalar biases 0 and multipliers 1 are
    the blocks' own. Every block then starts as its shortcut, and the net's output as 0."""
    from .blocks import FixupBasicBlock

    factor = branches ** (-1.0 / (2 * branch_layers - 2))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FixupBasicBlock):
                m.conv1.weight.mul_(factor)
                nn.init.zeros_(m.conv2.weight)
        nn.init.zeros_(model.fc.weight)
        nn.init.zeros_(model.fc.bias)
