"""Per-layer gradient-flow statistics: the measurement depthlab exists for.

For every weighted layer, in the depth order `describe(model)["layers"]` gives:
the L2 norm of its weight gradient, the L2 norm of its weight, and their ratio;
for every block, the standard deviation of its output (the layer responses of
He et al. 2015, Fig. 7).

Cost: the norms of all layers are computed by one batched `torch._foreach_norm`
on the device and copied to the host once per recorded step, never with a sync
per parameter. Activation hooks only compute when armed for a recorded step.
Read gradients after `backward()`, outside any compiled region.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from depthlab.models import Layer


@dataclass
class GradFlowRecord:
    """One recorded step: row i of each list belongs to layers[i] / blocks[i]."""

    step: int
    grad_norm: list[float]
    weight_norm: list[float]
    act_std: list[float]  # empty when activations were not recorded

    @property
    def ratio(self) -> list[float]:
        return [g / w if w > 0 else float("nan") for g, w in zip(self.grad_norm, self.weight_norm)]


class GradFlowProbe:
    """Collects gradient-flow statistics of `model` for the given layers and blocks."""

    def __init__(self, model: nn.Module, layers: list[Layer], blocks: list[str],
                 *, activations: bool = True) -> None:
        modules = dict(model.named_modules())
        self.layers = layers
        self.blocks = blocks if activations else []
        self.weights = [modules[layer.name].weight for layer in layers]
        self._armed = False
        self._act: list[torch.Tensor | None] = [None] * len(self.blocks)
        self._handles = [
            modules[name].register_forward_hook(self._hook(i)) for i, name in enumerate(self.blocks)
        ]

    def _hook(self, i: int):
        def hook(module, inputs, output):
            if self._armed:
                self._act[i] = output.detach().float().std()
        return hook

    def arm(self) -> None:
        """Record block output statistics during the next forward pass."""
        self._armed = True

    def record(self, step: int) -> GradFlowRecord:
        """Read the current gradients (call after backward, before the optimizer step)."""
        self._armed = False
        zero = self.weights[0].new_zeros(())
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        grad_norm = torch.stack(torch._foreach_norm(grads)).float()
        weight_norm = torch.stack(torch._foreach_norm([w.detach() for w in self.weights])).float()
        parts = [grad_norm, weight_norm]
        if self.blocks:
            parts.append(torch.stack([a if a is not None else zero for a in self._act]).float())
            self._act = [None] * len(self.blocks)
        host = torch.cat(parts).cpu().tolist()  # the one host transfer of this step
        n = len(self.layers)
        return GradFlowRecord(step, host[:n], host[n:2 * n], host[2 * n:])

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def first_last_ratio(layers: list[Layer], grad_norm: list[float]) -> float:
    """Gradient norm of the first main-path layer over that of the last."""
    main = [g for layer, g in zip(layers, grad_norm) if not layer.shortcut]
    return main[0] / main[-1] if main[-1] > 0 else float("inf")
