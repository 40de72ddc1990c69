"""Per-layer gradient-flow statistics: the measurement depthlab exists for.

For every weighted layer, in the depth order `describe(model)["layers"]` gives:
the L2 norm of its weight gradient, the L2 norm of its weight, and their ratio;
for every block, the standard deviation of its output h_b (the layer responses of
He et al. 2015, Fig. 7) and the backward signal ||dL/dh_b||, the L2 norm of the
loss gradient with respect to that output (Glorot & Bengio 2010, Sec. 4.2: the
back-propagated gradient, per block). A weight gradient mixes the backward signal
with the block's own input; the backward signal is what reaches the block.

Cost: the norms of all layers are computed by one batched `torch._foreach_norm`
on the device and copied to the host once per recorded step, never with a sync
per parameter. Block hooks only compute when armed for a recorded step: the
forward hook takes the output's std and puts a tensor hook on the output, which
takes the norm of its gradient during `backward()` (kept on the device, read with
the rest). Read gradients after `backward()`, outside any compiled region.

Every statistic is the global batch's. Under DDP (`ranks` > 1) each rank sees its slice
only, so the hooks keep sums that add over the ranks (element count, sum, centred sum of
squares; squared gradient norm) and `record()` all-reduces them, one collective per
recorded step, before taking the std and the norm; weight gradients are averaged by DDP.
Under fp16 the hooks see the gradient of the scaled loss: `record()` divides by the scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    back_norm: list[float] = field(default_factory=list)  # ||dL/dh_b|| per block; empty as act_std
    # fp16: GradScaler found inf/NaN in this step's gradients and skipped the step, so the
    # numbers are not a measurement (the loop logs no such record)
    overflow: bool = False

    @property
    def ratio(self) -> list[float]:
        return [g / w if w > 0 else float("nan") for g, w in zip(self.grad_norm, self.weight_norm)]


class GradFlowProbe:
    """Collects gradient-flow statistics of `model` for the given layers and blocks."""

    def __init__(self, model: nn.Module, layers: list[Layer], blocks: list[str],
                 *, activations: bool = True, ranks: int = 1) -> None:
        """`ranks`: the DDP processes that share each batch (their process group is the
        default one); the block statistics are reduced over them."""
        modules = dict(model.named_modules())
        self.layers = layers
        self.ranks = ranks
        self.blocks = blocks if activations else []
        self.weights = [modules[layer.name].weight for layer in layers]
        self._armed = False
        self._act: list[torch.Tensor | None] = [None] * len(self.blocks)
        self._back: list[torch.Tensor | None] = [None] * len(self.blocks)
        self._handles = [
            modules[name].register_forward_hook(self._hook(i)) for i, name in enumerate(self.blocks)
        ]

    def _hook(self, i: int):
        def hook(module, inputs, output):
            if self._armed:
                out = output.detach()
                self._act[i] = output_std(out) if self.ranks == 1 else output_moments(out)
                if output.requires_grad:  # not under no_grad (evaluation)
                    output.register_hook(self._grad_hook(i))
        return hook

    def _grad_hook(self, i: int):
        def hook(grad):
            # the norm stays on the device: no sync inside backward()
            self._back[i] = torch.linalg.vector_norm(grad.detach().float())
        return hook

    def arm(self) -> None:
        """Record block output statistics during the next forward pass."""
        self._armed = True

    def record(self, step: int, loss_scale: float = 1.0) -> GradFlowRecord:
        """Read the current gradients (call after backward, before the optimizer step).
        `loss_scale`: what the loss was multiplied by before backward (fp16's GradScaler);
        the weight gradients must already be unscaled, the block hooks' are divided here."""
        self._armed = False
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        with torch.no_grad():
            parts = list(torch._foreach_norm(grads + self.weights))  # one batched call, 2n norms
            if self.blocks and self.ranks > 1:
                parts += self._reduced_block_stats()
            elif self.blocks:
                zero = self.weights[0].new_zeros(())
                parts += [a if a is not None else zero for a in self._act]
                # no gradient reached a block whose hook did not fire: its norm is 0
                parts += [b.to(zero.device) if b is not None else zero for b in self._back]
            self._act = [None] * len(self.blocks)
            self._back = [None] * len(self.blocks)
            host = torch.stack(parts).float().cpu().tolist()  # the one host transfer of this step
        n, m = len(self.layers), len(self.blocks)
        back = host[2 * n + m:]
        if loss_scale != 1.0:
            back = [b / loss_scale for b in back]
        return GradFlowRecord(step, host[:n], host[n:2 * n], host[2 * n:2 * n + m], back)

    def _reduced_block_stats(self) -> list[torch.Tensor]:
        """Output std and backward signal of every block over the global batch: the
        ranks' sums, all-reduced in one collective."""
        device = self.weights[0].device
        none = torch.zeros(4, dtype=torch.float64, device=device)
        moments = torch.stack([a.to(device) if a is not None else none for a in self._act])
        # each rank's loss is the mean over its slice and DDP averages over the ranks, so
        # dL/dh of the global mean loss is 1/ranks of what a rank's hook sees
        back_sq = torch.stack([b.to(device).double() ** 2 if b is not None else none[0]
                               for b in self._back])
        sums = torch.cat([moments, back_sq[:, None]], 1)
        torch.distributed.all_reduce(sums)
        std, back = stats_from_sums(sums, self.ranks)
        return [*std.float().unbind(), *back.float().unbind()]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def output_moments(x: torch.Tensor) -> torch.Tensor:
    """(n, sum, centred sum of squares, sum * mean) of x's elements in float64: the terms
    that, summed over the ranks' slices, give the std of the whole batch (record()).
    float64 since un-normalised nets reach 1e19 and 1e-27; no host sync."""
    flat = x.reshape(-1).double()
    n = flat.numel()
    s1 = flat.sum()
    mean = s1 / n
    m2 = torch.linalg.vector_norm(flat - mean) ** 2
    return torch.stack([s1.new_tensor(float(n)), s1, m2, s1 * mean])


def stats_from_sums(sums: torch.Tensor, ranks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(output std, backward signal) per block from the rows (output_moments, squared
    gradient norm) summed over `ranks` slices of the batch."""
    n, s1, m2, s1_mean, sq = sums.double().unbind(1)
    mean = s1 / n.clamp(min=1)
    # Chan et al.: the slices' centred sums of squares plus their means' offsets from the mean
    m2 = (m2 + s1_mean - s1 * mean).clamp(min=0)
    std = torch.where(n > 1, (m2 / (n - 1).clamp(min=1)).sqrt(), torch.zeros_like(n))
    return std, sq.sqrt() / ranks


def output_std(x: torch.Tensor) -> torch.Tensor:
    """Standard deviation of all of x's elements (unbiased), as torch.std gives it.

    On the CPU torch.std's Welford loop costs about 12x a sum plus a vector norm
    (0.6 vs 0.05 ms for a 32x16x32x32 block output on one thread), and this hook
    runs on every block of every recorded step; so the CPU takes the moments from
    one sum and one norm, and falls back to torch.std where float32 squares would
    overflow or underflow (un-normalised nets reach 1e19 and 1e-27) or the mean
    dwarfs the spread (cancellation). A CPU read is no device sync; on other
    devices torch.std is cheap and stays asynchronous.
    """
    x = x.float()
    if x.device.type != "cpu" or x.numel() < 2:
        return x.std()
    flat = x.reshape(-1)
    n = flat.numel()
    mean = flat.sum().item() / n
    mean_sq = torch.linalg.vector_norm(flat).item() ** 2 / n
    var = (mean_sq - mean * mean) * n / (n - 1)
    if not (1e-24 < mean_sq < 1e24) or var < 1e-3 * mean_sq:
        return x.std()
    return torch.tensor(var ** 0.5)
