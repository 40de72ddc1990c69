"""Weight initialisation, in one place."""

from __future__ import annotations

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
